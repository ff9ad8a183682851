"""Kernel enforcement for one partition process.

- ``seccomp``:  the system-call allow-list, per partition from the model (groups with reasons; clone only
  for threads, no namespaces, exec, ptrace, memfd, io_uring or kernel-admin calls; no socket() at all
  unless the partition has network, and then only AF_INET/AF_INET6); ``syscalls_x86_64`` numbers them
- ``landlock``: the filesystem rules (read-only code and system directories, read-write only the
  partition's data directory; signals and abstract sockets scoped to the partition)
- ``netns``:    a private network namespace with no interfaces for partitions without network
- ``identity``: a distinct uid/gid per partition, leased from a high range
- ``limits``:   rlimits and cgroup limits from the model's ``resources``
- ``disk``:     the data folder as its own size-capped, loop-mounted ext4 filesystem (``disk_mb``)
- ``probe``:    what this host can enforce (``septum run --explain``, tests)
- ``spawn``:    the ``preexec_fn`` that applies the pre-exec parts in the forked child
"""
