"""The ``service: update`` partition: reassembles, verifies and installs signed bundles; publishes the drug
library.

* ``UpdateChunk`` messages (``bundle_id``, ``index``, ``total``, ``data``) on the channels into this
  partition are reassembled per bundle, bounded in size (``max_bundle_bytes``, default 16 MiB), in chunks
  per bundle (the message's own bound) and in bundles in progress (``max_pending``, default 4); a bundle
  not complete within ``assembly_timeout_s`` device-seconds (default 60) is dropped with an answer.
* A complete bundle is verified against the provisioned ``manufacturer.pub`` and installed with
  ``SlotInstaller`` (anti-rollback by ``VersionStore``, staged, atomic switch, health check, automatic return).
* The drug library (target ``drug_library``: ``drug_library.yaml`` + its detached Ed25519 signature
  ``drug_library.sig``) is published as ``DrugLibrary(version, data, signature)`` on every channel to a
  receiving partition, at start and after each installed update, so receivers verify it themselves.
* A bundle for a partition (kind ``partition``) is staged and switched to here, then the supervisor is asked
  to run it (``Partition.request_activation``): it re-checks the signature and the staged files itself,
  restarts the partition with the new code and health-checks it (ready in time, then alive for a few
  heartbeat periods). Only when it answers ``activated`` does the anti-rollback floor rise; otherwise the
  slot switches back and the answer carries the supervisor's reason.
* Every outcome is answered with ``UpdateResult`` (on the channel back to the sender, if any) and audited.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from septum.crypto.keys import KeyFileError, load_public_key
from septum.runtime import protocol as proto
from septum.runtime.code_update import STAGED_ROOT
from septum.runtime.partition import Partition

from .provisioning import DRUG_LIBRARY, INITIAL_DIR, LIBRARY_FILE, MANUFACTURER_PUB, SIGNATURE_FILE
from .service_io import Auditor, ServiceSetupError, build, service_model
from .update_bundle import (
    BundleError,
    InstallResult,
    SlotInstaller,
    Staged,
    VersionStore,
    parse_version,
    verify_bundle,
)

MAX_REASON = 200


@dataclass
class Partial:
    total: int
    started: float
    sender_channel: str
    chunks: dict[int, bytes] = field(default_factory=dict)
    size: int = 0


@dataclass
class PendingCode:
    """A partition code bundle staged here and handed to the supervisor, awaiting its health check."""

    channel: str | None
    bundle_id: str
    installer: SlotInstaller
    staged: Staged


class UpdateService:
    def __init__(self, p: Partition) -> None:
        self.p = p
        self.model = service_model(p)
        self.audit = Auditor(p, self.model)
        try:
            self.key: Ed25519PublicKey = load_public_key(p.data_dir / MANUFACTURER_PUB)
        except KeyFileError as exc:
            raise ServiceSetupError(f"manufacturer key not provisioned: {exc} (run septum provision)") from None
        cfg = p.config
        self.max_bytes = int(cfg.get("max_bundle_bytes", 16 * 1024 * 1024))
        self.max_pending = int(cfg.get("max_pending", 4))
        self.timeout = float(cfg.get("assembly_timeout_s", 60))
        self.store = VersionStore(p.data_dir / "versions.json")
        self.root = p.data_dir / STAGED_ROOT  # the supervisor reads staged partition code from here
        self.activations: dict[str, PendingCode] = {}  # request id -> code waiting for the supervisor
        self.partial: dict[str, Partial] = {}
        chunk_msgs = {"bundle_id", "index", "total", "data"}
        self.inputs = [ch for ch in self.model.channels if ch.dst == p.name and ch.name in p.inputs
                       and chunk_msgs <= set(self.model.message_fields(ch.message))]
        self.library_out = [ch.name for ch in self.model.channels if ch.src == p.name and ch.name in p.outputs
                            and {"version", "data", "signature"} <= set(self.model.message_fields(ch.message))]
        self.replies = {ch.name: next((o.name for o in self.model.channels if o.src == p.name and o.dst == ch.src
                                       and "installed" in self.model.message_fields(o.message)), None)
                        for ch in self.inputs}
        self.known_targets = {DRUG_LIBRARY, *self.model.partitions}

    # ------------------------------------------------------------------ answers
    def result(self, channel: str | None, bundle_id: str, installed: bool, reason: str, version: str | None) -> None:
        self.audit("update.installed" if installed else "update.refused", "notice" if installed else "warning",
                   bundle_id=bundle_id, version=version or "", reason=reason)
        reply = self.replies.get(channel) if channel else None
        if reply is None:
            return
        major = parse_version(version)[0] if version else 0
        try:
            msg = build(self.p, reply, bundle_id=bundle_id, installed=installed, version=min(major, 2**32 - 1),
                        reason=reason[:MAX_REASON])
        except msgspec.ValidationError as exc:
            self.audit("update.reply-unbuildable", "error", error=str(exc)[:200])
            return
        if not self.p.send(reply, msg):
            self.audit("update.reply-dropped", "warning", bundle_id=bundle_id)

    # ------------------------------------------------------------------ reassembly
    def on_chunk(self, channel: str, msg: Any) -> None:
        bid, index, total, data = msg.bundle_id, msg.index, msg.total, msg.data
        if not bid:
            self.result(channel, bid, False, "chunk without a bundle_id", None)
            return
        part = self.partial.get(bid)
        if part is None:
            if len(self.partial) >= self.max_pending:
                self.result(channel, bid, False, f"{self.max_pending} bundles already in progress; retry later", None)
                return
            part = self.partial[bid] = Partial(total, self.p.now(), channel)
        if total != part.total:
            del self.partial[bid]
            self.result(channel, bid, False, f"chunk says {total} chunks, the bundle began with {part.total}", None)
            return
        if not 0 <= index < total:
            del self.partial[bid]
            self.result(channel, bid, False, f"chunk index {index} outside 0..{total - 1}", None)
            return
        if index in part.chunks:
            if part.chunks[index] != data:
                del self.partial[bid]
                self.result(channel, bid, False, f"chunk {index} sent twice with different data", None)
            return  # an identical resend is harmless
        if part.size + len(data) > self.max_bytes:
            del self.partial[bid]
            self.result(channel, bid, False, f"bundle larger than {self.max_bytes} bytes", None)
            return
        part.chunks[index] = data
        part.size += len(data)
        if len(part.chunks) == total:
            del self.partial[bid]
            self.install(channel, bid, b"".join(part.chunks[i] for i in range(total)))

    def expire(self) -> None:
        now = self.p.now()
        for bid, part in list(self.partial.items()):
            if now - part.started > self.timeout:
                del self.partial[bid]
                self.result(part.sender_channel, bid, False,
                            f"incomplete: {len(part.chunks)} of {part.total} chunks after {self.timeout:g} s", None)

    # ------------------------------------------------------------------ installation
    def installer(self, target: str) -> SlotInstaller:
        return SlotInstaller(self.root, target, [self.key], self.store)

    def health(self, target: str) -> Any:
        def check(slot: Path) -> bool:
            if target == DRUG_LIBRARY:
                self.read_library(slot)  # raises with the reason
            return True
        return check

    def read_library(self, slot: Path) -> tuple[int, bytes, bytes]:
        data = (slot / LIBRARY_FILE).read_bytes()
        sig = (slot / SIGNATURE_FILE).read_bytes()
        try:
            self.key.verify(sig, data)
        except InvalidSignature:
            raise BundleError("drug library signature does not verify with the manufacturer key") from None
        doc = yaml.safe_load(data)
        version = doc.get("version") if isinstance(doc, dict) else None
        if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**32:
            raise BundleError("drug library has no integer version")
        if slot.name != str(version):
            raise BundleError(f"drug library says version {version}, its bundle {slot.name}")
        return version, data, sig

    def install(self, channel: str | None, bid: str, bundle: bytes) -> InstallResult | None:
        try:
            manifest = verify_bundle(bundle, [self.key]).manifest
        except BundleError as exc:
            self.result(channel, bid, False, str(exc), None)
            return None
        target = manifest.target
        if target not in self.known_targets:
            self.result(channel, bid, False, f"bundle target {target!r} is not part of this device", None)
            return None
        want = "data" if target == DRUG_LIBRARY else "partition"
        if manifest.kind != want:
            self.result(channel, bid, False, f"a {manifest.kind} bundle for {target}, which takes {want}", None)
            return None
        if want == "partition":
            self.install_code(channel, bid, bundle, target)
            return None
        try:
            res = self.installer(target).install(bundle, self.health(target))
        except (BundleError, OSError) as exc:
            self.result(channel, bid, False, f"install failed: {exc}", None)
            return None
        installed = res.status == "installed"
        note = res.reason or f"{target} {res.version} installed"
        self.result(channel, bid, installed, note, res.version)
        if installed and target == DRUG_LIBRARY:
            self.publish()
        return res

    def install_code(self, channel: str | None, bid: str, bundle: bytes, target: str) -> None:
        if any(a.installer.target == target for a in self.activations.values()):
            self.result(channel, bid, False, f"an update of {target} is already being activated; retry later", None)
            return
        inst = self.installer(target)
        try:
            staged = inst.begin(bundle)
        except (BundleError, OSError) as exc:
            self.result(channel, bid, False, f"install failed: {exc}", None)
            return
        if isinstance(staged, InstallResult):
            self.result(channel, bid, False, staged.reason, staged.version)
            return
        v = staged.verified
        rid = secrets.token_hex(8)
        self.activations[rid] = PendingCode(channel, bid, inst, staged)
        self.audit("update.activation-requested", "notice", bundle_id=bid, target=target,
                   version=v.manifest.version)
        if not self.p.request_activation(rid, target, v.manifest.version, v.manifest_bytes, v.signature):
            del self.activations[rid]
            res = inst.finish(staged, False, "the supervisor could not be asked to activate it")
            self.result(channel, bid, False, res.reason, res.version)

    def on_activation(self, msg: proto.ActivateResult) -> None:
        pending = self.activations.pop(msg.request_id, None)
        if pending is None:  # not ours (or from before a restart of this service): nothing to finish
            self.audit("update.activation-unknown", "warning", request_id=msg.request_id[:64],
                       target=msg.target, status=msg.status, reason=msg.reason[:MAX_REASON])
            return
        ok = msg.status == "activated"
        try:
            res = pending.installer.finish(pending.staged, ok, f"supervisor: {msg.status}: {msg.reason}")
        except (BundleError, OSError) as exc:
            self.result(pending.channel, pending.bundle_id, False, f"install failed: {exc}", None)
            return
        installed = ok and res.status == "installed"
        note = f"{msg.target} {msg.version} running" if installed else res.reason
        self.result(pending.channel, pending.bundle_id, installed, note, res.version)

    def publish(self) -> None:
        inst = self.installer(DRUG_LIBRARY)
        path = inst.current_path()
        if path is None:
            self.audit("update.no-drug-library", "warning", reason="no drug library installed")
            return
        try:
            version, data, sig = self.read_library(path)
        except (OSError, BundleError) as exc:
            self.audit("update.drug-library-unreadable", "error", reason=str(exc)[:200])
            return
        for ch in self.library_out:
            if not self.p.send(ch, version=version, data=data, signature=sig):
                self.audit("update.publish-dropped", "warning", channel=ch, version=version)
        self.audit("update.drug-library-published", "notice", version=version, to=",".join(self.library_out))

    def start(self) -> None:
        inst = self.installer(DRUG_LIBRARY)
        res = inst.boot_check(self.health(DRUG_LIBRARY))
        if res.status == "rolled-back":
            self.audit("update.boot-rollback", "warning", reason=res.reason)
        initial = self.p.data_dir / INITIAL_DIR / f"{DRUG_LIBRARY}.sup"
        if inst.current_version() is None and initial.exists():
            self.install(None, "initial", initial.read_bytes())
            return  # install() published it
        if self.library_out:
            self.publish()


def main(p: Partition) -> None:
    svc = UpdateService(p)
    p.on_activation_result(svc.on_activation)
    for ch in svc.inputs:
        p.on(ch.name, functools.partial(svc.on_chunk, ch.name))
    p.every(max(0.5, svc.timeout / 10), svc.expire)
    p.after(0.0, svc.start)
