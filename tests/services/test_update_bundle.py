"""Signed bundles: unsigned, tampered, wrong-key, wrong-target and older bundles are refused and the
running version keeps running; a version that fails its health check is rolled back."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from septum.cli import cli
from septum.crypto.keys import load_public_key
from septum.services import update_bundle as ub
from septum.services.update_bundle import BundleError, SlotInstaller, VersionStore, make_bundle, verify_bundle

FILES = {"main.py": b"print('v')\n", "lib/drugs.json": b'{"morphine": 1}'}


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _bundle(key: Ed25519PrivateKey, version: str, files: dict[str, bytes] | None = None,
            target: str = "pump_control") -> bytes:
    return make_bundle(key, target=target, kind="partition", version=version, files=files or FILES)


def _installer(tmp_path: Path, key: Ed25519PrivateKey) -> SlotInstaller:
    return SlotInstaller(tmp_path / "updates", "pump_control", [key.public_key()],
                         VersionStore(tmp_path / "versions.json"))


def _reframe(bundle: bytes, **changes: object) -> bytes:
    box = msgspec.msgpack.decode(bundle[len(ub.MAGIC):], type=ub._Container)
    return ub.MAGIC + msgspec.msgpack.encode(msgspec.structs.replace(box, **changes))


def test_roundtrip(key: Ed25519PrivateKey) -> None:
    v = verify_bundle(_bundle(key, "1.2.0"), [key.public_key()], expect_target="pump_control")
    assert v.manifest_version == (1, 2, 0) and v.files == FILES
    assert v.manifest.files["main.py"].size == len(FILES["main.py"])


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b, k: b"PK\x03\x04" + b[4:], "bad magic"),
        (lambda b, k: b[: len(b) // 2], "malformed bundle"),
        (lambda b, k: _reframe(b, signature=b""), "unsigned"),
        (lambda b, k: _reframe(b, files={**FILES, "main.py": b"evil()"}), "does not match its signed hash"),
        (lambda b, k: _reframe(b, files={**FILES, "extra.so": b"x"}), "not in the signed manifest"),
        (lambda b, k: _reframe(b, files={"main.py": FILES["main.py"]}), "not in the bundle"),
        (lambda b, k: _reframe(b, manifest=_manifest(b).replace(b"1.0.0", b"9.0.0")), "bad signature"),
        (lambda b, k: _bundle(Ed25519PrivateKey.generate(), "1.0.0"), "not a trusted update key"),
        (lambda b, k: _bundle(k, "1.0.0", target="network"), "is for 'network'"),
        (lambda b, k: _bundle(k, "1.0.0", files={"../etc/passwd": b"x"}), None),
    ],
)
def test_bad_bundles_are_refused(key: Ed25519PrivateKey, mutate, reason: str | None) -> None:  # type: ignore[no-untyped-def]
    good = _bundle(key, "1.0.0")
    if reason is None:
        with pytest.raises(BundleError, match="not a plain relative path"):
            mutate(good, key)
        return
    with pytest.raises(BundleError, match=reason):
        verify_bundle(mutate(good, key), [key.public_key()], expect_target="pump_control")


def _manifest(bundle: bytes) -> bytes:
    return msgspec.msgpack.decode(bundle[len(ub.MAGIC):], type=ub._Container).manifest


def test_path_traversal_in_a_signed_manifest_is_refused(key: Ed25519PrivateKey) -> None:
    # Sign a manifest naming '../x' directly (make_bundle would refuse): verify must refuse it too.
    m = ub.Manifest(format=1, target="pump_control", kind="partition", version="1.0", created=0.0,
                    key_id=ub.key_id(key.public_key()).hex(), files={"../x": ub.FileEntry("00", 1)})
    raw = msgspec.msgpack.encode(m)
    data = ub.MAGIC + msgspec.msgpack.encode(ub._Container(raw, key.sign(ub.SIGN_DOMAIN + raw), {"../x": b"x"}))
    with pytest.raises(BundleError, match="plain relative path"):
        verify_bundle(data, [key.public_key()])


@pytest.mark.parametrize("bad", ["", "1..2", "v1", "1.2.3.4.5", "-1", "1.2a"])
def test_bad_versions(bad: str) -> None:
    with pytest.raises(BundleError, match="version"):
        ub.parse_version(bad)


def test_versions_compare_numerically() -> None:
    assert ub.parse_version("1.10") > ub.parse_version("1.9")


def test_install_switch_and_anti_rollback(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    inst = _installer(tmp_path, key)
    assert inst.install(_bundle(key, "1.0.0"), lambda p: True).status == "installed"
    r = inst.install(_bundle(key, "1.1.0", {"main.py": b"v11"}), lambda p: (p / "main.py").read_bytes() == b"v11")
    assert (r.status, r.version) == ("installed", "1.1.0")
    assert inst.current_version() == "1.1.0"
    assert (inst.current_link / "main.py").read_bytes() == b"v11"
    for old in ("1.0.0", "1.1.0", "0.9"):
        r = inst.install(_bundle(key, old), lambda p: True)
        assert r.status == "refused" and "anti-rollback" in r.reason
        assert inst.current_version() == "1.1.0"


@pytest.mark.parametrize("how", ["false", "raises"])
def test_failed_health_check_returns_to_previous(tmp_path: Path, key: Ed25519PrivateKey, how: str) -> None:
    inst = _installer(tmp_path, key)
    inst.install(_bundle(key, "1.0.0"), lambda p: True)
    seen: list[str] = []

    def health(path: Path) -> bool:
        seen.append(inst.current_version() or "")  # the switch happened before the check ran
        if how == "raises":
            raise RuntimeError("watchdog saw no heartbeat")
        return False

    r = inst.install(_bundle(key, "2.0.0"), health)
    assert seen == ["2.0.0"]
    assert (r.status, r.version) == ("rolled-back", "1.0.0")
    assert inst.current_version() == "1.0.0" and (inst.current_link / "main.py").read_bytes() == FILES["main.py"]
    # The failed version did not raise the floor: a fixed 2.0.0 may still be installed later.
    assert inst.install(_bundle(key, "2.0.0"), lambda p: True).status == "installed"


def test_refused_bundle_leaves_running_version_alone(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    inst = _installer(tmp_path, key)
    inst.install(_bundle(key, "1.0.0"), lambda p: True)
    before = sorted(p.name for p in inst.slots.iterdir())
    tampered = _reframe(_bundle(key, "3.0.0"), files={**FILES, "main.py": b"evil"})
    r = inst.install(tampered, lambda p: pytest.fail("health check must not run"))
    assert r.status == "refused" and "signed hash" in r.reason and r.version == "1.0.0"
    assert sorted(p.name for p in inst.slots.iterdir()) == before


def test_boot_check_after_power_loss_mid_install(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    inst = _installer(tmp_path, key)
    inst.install(_bundle(key, "1.0.0"), lambda p: True)
    # Simulate a power loss right after the switch to 2.0.0, before its health check finished.
    inst._stage(verify_bundle(_bundle(key, "2.0.0"), [key.public_key()]))
    inst._point(inst.current_link, "2.0.0")
    r = inst.boot_check(lambda p: False)
    assert (r.status, r.version) == ("rolled-back", "1.0.0") and inst.current_version() == "1.0.0"


def test_corrupt_anti_rollback_state_fails_closed(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    inst = _installer(tmp_path, key)
    (tmp_path / "versions.json").write_text("{not json")
    r = inst.install(_bundle(key, "1.0.0"), lambda p: True)
    assert r.status == "refused" and "anti-rollback state unreadable" in r.reason


# ------------------------------------------------------------------ malformed file sets (issue 12, part 5)


def _signed(key: Ed25519PrivateKey, files: dict[str, bytes], *, manifest_files: dict[str, ub.FileEntry] | None = None,
            raw: bytes | None = None, version: str = "2.0.0") -> bytes:
    """A bundle signed by a trusted key whose manifest names ``files`` exactly as given: what a compromised
    build machine or a buggy packer could produce (make_bundle itself refuses these)."""
    entries = manifest_files if manifest_files is not None else {
        n: ub.FileEntry(hashlib.sha256(d).hexdigest(), len(d)) for n, d in files.items()}
    m = ub.Manifest(format=1, target="pump_control", kind="partition", version=version, created=0.0,
                    key_id=ub.key_id(key.public_key()).hex(), files=entries)
    raw = raw if raw is not None else msgspec.msgpack.encode(m)
    return ub.MAGIC + msgspec.msgpack.encode(ub._Container(raw, key.sign(ub.SIGN_DOMAIN + raw), files))


def _dup_map(pairs: list[tuple[str, object]]) -> bytes:
    """A msgpack map with the given (possibly repeated) keys; msgspec would silently keep the last one."""
    assert len(pairs) < 16
    return bytes([0x80 | len(pairs)]) + b"".join(msgspec.msgpack.encode(k) + msgspec.msgpack.encode(v)
                                                 for k, v in pairs)


def _manifest_with_duplicate(key: Ed25519PrivateKey, a: bytes, b: bytes) -> bytes:
    entry = {"sha256": hashlib.sha256(a).hexdigest(), "size": len(a)}
    entry2 = {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)}
    head = {"format": 1, "target": "pump_control", "kind": "partition", "version": "2.0.0", "created": 0.0,
            "key_id": ub.key_id(key.public_key()).hex()}
    raw = bytes([0x80 | 7]) + b"".join(msgspec.msgpack.encode(k) + msgspec.msgpack.encode(v)
                                       for k, v in head.items())
    raw += msgspec.msgpack.encode("files") + _dup_map([("main.py", entry), ("main.py", entry2)])
    return _signed(key, {"main.py": b}, raw=raw)


MALFORMED = [
    ({"a": b"1", "a/b": b"2"}, "'a' is a file, but 'a/b' needs it to be a folder"),
    ({"lib": b"1", "lib/x/y.py": b"2"}, "'lib' is a file, but 'lib/x/y.py' needs it to be a folder"),
    ({"A": b"1", "a/b": b"2"}, "'A' is a file, but 'a/b' needs it to be a folder"),
    ({"Main.py": b"1", "main.py": b"2"}, "differ only in case"),
    ({"Lib/a.py": b"1", "lib/b.py": b"2"}, "folders 'Lib' and 'lib' differ only in case"),
    ({"x/Lib/a.py": b"1", "x/lib/b.py": b"2"}, "folders 'x/Lib' and 'x/lib' differ only in case"),
    ({"/etc/passwd": b"x"}, "not a plain relative path"),
    ({"../x": b"x"}, "not a plain relative path"),
    ({"a/../../x": b"x"}, "not a plain relative path"),
    ({"": b"x"}, "not a plain relative path"),
    ({"a//b": b"x"}, "not a plain relative path"),
    ({"a/": b"x"}, "not a plain relative path"),
    ({".hidden": b"x"}, "not a plain relative path"),
    ({"main.py\n": b"x"}, "not a plain relative path"),
    ({"caf\u00e9.py": b"x"}, "not a plain relative path"),  # non-ASCII: no normalisation-form clashes
    ({"m\u0430in.py": b"x"}, "not a plain relative path"),  # Cyrillic a, a look-alike
    ({"/".join(["d"] * 17) + "/f": b"x"}, "nested deeper than 16 folders"),
]


@pytest.mark.parametrize(("files", "reason"), MALFORMED)
def test_malformed_file_sets_refused_before_anything_is_written(
        tmp_path: Path, key: Ed25519PrivateKey, files: dict[str, bytes], reason: str) -> None:
    inst = _installer(tmp_path, key)
    assert inst.install(_bundle(key, "1.0.0"), lambda p: True).status == "installed"
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    bundle = _signed(key, files)
    with pytest.raises(BundleError, match=re.escape(reason)):
        verify_bundle(bundle, [key.public_key()])
    r = inst.install(bundle, lambda p: pytest.fail("health check must not run"))
    assert r.status == "refused" and reason in r.reason and r.version == "1.0.0"
    # nothing written, nothing left behind (no staging folder), the running version untouched
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert (inst.current_link / "main.py").read_bytes() == FILES["main.py"]
    with pytest.raises(BundleError, match=re.escape(reason)):
        make_bundle(key, target="pump_control", kind="partition", version="2.0.0", files=files)


def test_duplicate_names_in_the_signed_manifest_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    bundle = _manifest_with_duplicate(key, b"benign", b"evil")
    with pytest.raises(BundleError, match="names a file more than once"):
        verify_bundle(bundle, [key.public_key()])
    inst = _installer(tmp_path, key)
    r = inst.install(bundle, lambda p: True)
    assert r.status == "refused" and "more than once" in r.reason and not list(inst.slots.iterdir())


def test_duplicate_names_in_the_container_refused(key: Ed25519PrivateKey) -> None:
    good = _bundle(key, "1.0.0", {"main.py": b"x"})
    box = msgspec.msgpack.decode(good[len(ub.MAGIC):], type=ub._Container)
    raw = bytes([0x83]) + msgspec.msgpack.encode("manifest") + msgspec.msgpack.encode(box.manifest) \
        + msgspec.msgpack.encode("signature") + msgspec.msgpack.encode(box.signature) \
        + msgspec.msgpack.encode("files") + _dup_map([("main.py", b"evil"), ("main.py", b"x")])
    with pytest.raises(BundleError, match="names a file more than once"):
        verify_bundle(ub.MAGIC + raw, [key.public_key()])


@pytest.mark.parametrize(("entry", "reason"), [
    (ub.FileEntry("00", 1), "is not a SHA-256 hash"),
    (ub.FileEntry("A" * 64, 1), "is not a SHA-256 hash"),
    (ub.FileEntry("0" * 64, -1), "negative size"),
    (ub.FileEntry("0" * 64, ub.MAX_BUNDLE + 1), "more than the"),
])
def test_bad_entries_refused(key: Ed25519PrivateKey, entry: ub.FileEntry, reason: str) -> None:
    with pytest.raises(BundleError, match=reason):
        verify_bundle(_signed(key, {"main.py": b"x"}, manifest_files={"main.py": entry}), [key.public_key()])


def test_too_many_files_refused(key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch) -> None:
    from septum.crypto import manifest

    monkeypatch.setattr(manifest, "MAX_FILES", 3)
    files = {f"f{i}": b"x" for i in range(4)}
    with pytest.raises(BundleError, match=r"too many files \(4 > 3\)"):
        verify_bundle(_signed(key, files), [key.public_key()])
    with pytest.raises(BundleError, match="too many files"):
        make_bundle(key, target="pump_control", kind="partition", version="1.0", files=files)


def test_staging_failure_leaves_nothing_behind(tmp_path: Path, key: Ed25519PrivateKey,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # what only the file system can refuse (a full disk): the staging folder is removed, a refusal returned
    inst = _installer(tmp_path, key)
    real_open = open
    calls = {"n": 0}

    def failing_open(path, mode="r", *a, **kw):  # type: ignore[no-untyped-def]
        if mode == "xb":
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(28, "No space left on device")
        return real_open(path, mode, *a, **kw)

    monkeypatch.setattr("builtins.open", failing_open)
    r = inst.install(_bundle(key, "1.0.0"), lambda p: True)
    assert r.status == "refused" and "No space left on device" in r.reason
    assert calls["n"] == 2 and not list(inst.slots.iterdir()) and inst.current_version() is None


# ------------------------------------------------------------------ update make: only what was named


@pytest.fixture
def signer(tmp_path: Path) -> Path:
    (tmp_path / "keys").mkdir()
    code, _, err = _cli("update", "keygen", "--out-dir", str(tmp_path / "keys"))
    assert code == 0, err
    return tmp_path / "keys" / "update.key"


def _cli(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), f"traceback: {r.exception!r}"
    return r.exit_code, r.stdout, r.stderr


def _make(signer: Path, out: Path, *files: Path, base: Path | None = None) -> tuple[int, str, str]:
    extra = ["--base", str(base)] if base is not None else []
    return _cli("update", "make", "--key", str(signer), "--target", "pump_control", "--version", "1.0",
                *extra, "-o", str(out), *map(str, files))


def test_update_make_refuses_a_symlinked_file(tmp_path: Path, signer: Path) -> None:
    src = tmp_path / "app"
    src.mkdir()
    (src / "main.py").write_text("x = 1\n")
    secret = tmp_path / "outside_secret"
    secret.write_text("root:x:0:0\n")
    (src / "passwd").symlink_to(secret)
    out = tmp_path / "b.sup"
    for base in (None, src):
        code, _, err = _make(signer, out, src / "main.py", src / "passwd", base=base)
        assert code != 0 and "is a symbolic link" in err and "Traceback" not in err
        assert not out.exists()
    # a symlink pointing inside the folder is refused too: a bundle holds regular files only
    (src / "alias.py").symlink_to(src / "main.py")
    code, _, err = _make(signer, out, src / "alias.py", base=src)
    assert code != 0 and "is a symbolic link" in err and not out.exists()


def test_update_make_refuses_a_symlinked_folder(tmp_path: Path, signer: Path) -> None:
    src = tmp_path / "app"
    src.mkdir()
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "shadow").write_text("secret\n")
    (src / "conf").symlink_to(outside)
    out = tmp_path / "b.sup"
    code, _, err = _make(signer, out, src / "conf" / "shadow", base=src)
    assert code != 0 and "goes through 'conf', which is a symbolic link" in err and not out.exists()


def test_update_make_refuses_files_outside_base_and_special_files(tmp_path: Path, signer: Path) -> None:
    src = tmp_path / "app"
    src.mkdir()
    (src / "main.py").write_text("x = 1\n")
    (tmp_path / "other.py").write_text("y\n")
    out = tmp_path / "b.sup"
    code, _, err = _make(signer, out, src / "main.py", tmp_path / "other.py", base=src)
    assert code != 0 and "not under --base" in err and not out.exists()
    code, _, err = _make(signer, out, src / ".." / "other.py", base=src)
    assert code != 0 and "not under --base" in err and not out.exists()
    fifo = src / "pipe"
    os.mkfifo(fifo)
    code, _, err = _make(signer, out, fifo, base=src)
    assert code != 0 and "not a regular file" in err and not out.exists()
    code, _, err = _make(signer, out, Path("/dev/zero"))
    assert code != 0 and "not a regular file" in err and not out.exists()
    code, _, err = _make(signer, out, src)
    assert code != 0 and "is a folder" in err and not out.exists()
    code, _, err = _make(signer, out, src / "missing.py", base=src)
    assert code != 0 and "no such file" in err and not out.exists()


def test_update_make_packs_regular_files(tmp_path: Path, signer: Path) -> None:
    src = tmp_path / "app"
    (src / "lib").mkdir(parents=True)
    (src / "main.py").write_text("x = 1\n")
    (src / "lib" / "util.py").write_text("y = 2\n")
    out = tmp_path / "b.sup"
    code, _, err = _make(signer, out, src / "main.py", src / "lib" / "util.py", base=src)
    assert code == 0, err
    pub = load_public_key(signer.with_suffix(".pub"))
    v = verify_bundle(out.read_bytes(), [pub])
    assert v.files == {"main.py": b"x = 1\n", "lib/util.py": b"y = 2\n"}
