"""`septum` commands for the services area: ``septum audit ...`` and ``septum update ...``.

Exit codes: 0 success; 1 the thing checked is bad (a damaged log, a refused bundle), naming why;
2 the command was misused (missing file, unreadable key, bad option value), with a one-line message.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from septum.crypto.keys import KeyFileError, generate_keypair, key_id, load_private_key, load_public_key
from septum.services import audit_export as ax
from septum.services import update_bundle as ub
from septum.services.audit_anchor import Anchor, AnchorError, load_anchor
from septum.services.audit_log import AuditError, read_entries, verify


class UserError(click.ClickException):
    """A mistake in how the command was called: one line on stderr, exit code 2."""

    exit_code = 2


class Failed(click.ClickException):
    """The checked object is bad: one line on stderr, exit code 1."""

    exit_code = 1


def _existing(path: str, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such {what}")
    return p


def _public_key(path: str) -> object:
    try:
        return load_public_key(_existing(path, "key file"))
    except KeyFileError as exc:
        raise UserError(str(exc)) from None


# ---------------------------------------------------------------------------------------------- audit


@click.group("audit")
def audit() -> None:
    """Verify, read and export the hash-chained audit log."""


@audit.command("keygen")
@click.option("--out-dir", "out_dir", default=".", show_default=True, help="Where to write audit.key/.pub.")
@click.option("--name", default="audit", show_default=True, help="Base name of the key files.")
def audit_keygen(out_dir: str, name: str) -> None:
    """Create the Ed25519 key pair that signs audit checkpoints (one per device)."""
    _keygen(out_dir, name)


@audit.command("verify")
@click.argument("log")
@click.option("--key", "key", required=True, help="Public key (PEM) of the device's audit signing key.")
@click.option("--head", "head", default=None, help="Head file to check truncation against [default: LOG.head].")
@click.option("--no-head", is_flag=True, help="Do not check for truncation against a head file.")
@click.option("--anchor", "anchors", multiple=True,
              help="Anchor file from 'septum audit anchor': its seal must be in the log (repeatable).")
@click.option("--allow-unsealed-tail", is_flag=True,
              help="Report records after the last seal as a warning instead of failing (they are NOT authenticated).")
def audit_verify(log: str, key: str, head: str | None, no_head: bool, anchors: tuple[str, ...],
                 allow_unsealed_tail: bool) -> None:
    """Check every record, link, seal, the head and any anchors; name the first bad record (exit 1) if any."""
    if head and no_head:
        raise UserError("--head and --no-head exclude each other")
    path = _existing(log, "audit log")
    public = _public_key(key)
    head_arg: Path | str | None = "auto"
    if no_head:
        head_arg = None
    elif head:
        head_arg = _existing(head, "head file")
    loaded = []
    for a in anchors:
        try:
            loaded.append(load_anchor(_existing(a, "anchor file")))
        except AnchorError as exc:
            raise UserError(str(exc)) from None
    try:
        result = verify(path, public, head=head_arg, anchors=loaded,  # type: ignore[arg-type]
                        allow_unsealed_tail=allow_unsealed_tail)
    except AuditError as exc:
        raise UserError(str(exc)) from None
    if no_head:
        click.echo("warning: --no-head: records cut off after a seal would not be noticed", err=True)
    for note in result.notes:
        if note.startswith("compacted: "):  # not a warning: what compaction removed, as it signed it
            click.echo(f"{log}: {note}")
        else:
            click.echo(f"warning: {note}", err=True)
    if result.damage is not None:
        raise Failed(f"{log}: {result.damage.describe()}")
    head_text = f", head at seq {result.head_seq}" if result.head_seq is not None else ""
    anchor_text = f", {result.anchors_checked} anchor(s) found" if result.anchors_checked else ""
    click.echo(
        f"{log}: ok: {result.records} records, {result.checkpoints} seals, "
        f"last seq {result.last_seq}{head_text}{anchor_text}"
    )


@audit.command("anchor")
@click.argument("log")
@click.option("--key", "key", required=True, help="Public key (PEM) of the device's audit signing key.")
@click.option("-o", "--output", default=None, help="Write the anchor here instead of stdout.")
def audit_anchor(log: str, key: str, output: str | None) -> None:
    """Export the last seal of a log that verifies, to keep off the device ('verify --anchor' checks it)."""
    path = _existing(log, "audit log")
    public = _public_key(key)
    try:
        result = verify(path, public)  # type: ignore[arg-type]
    except AuditError as exc:
        raise UserError(str(exc)) from None
    if result.damage is not None:
        raise Failed(f"{log}: not anchored, the log does not verify: {result.damage.describe()}")
    anchor = Anchor(result.last_checkpoint_seq, result.last_checkpoint_digest, key_id(public),  # type: ignore[arg-type]
                    result.last_checkpoint_time, result.records)
    text = anchor.to_json()
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{output}: cannot write ({exc.strerror})") from None
    click.echo(f"wrote {output}: seal seq {anchor.seq} ({result.records} records)", err=True)


def _filter_options(fn: Callable[..., None]) -> Callable[..., None]:
    fn = click.option("--partition", "partitions", multiple=True, help="Only this partition (repeatable).")(fn)
    fn = click.option("--severity", default=None,
                      help="Only this severity and more severe (emergency ... debug).")(fn)
    fn = click.option("--since", default=None, help="ISO 8601 time (UTC if no zone) or Unix seconds.")(fn)
    fn = click.option("--until", default=None, help="ISO 8601 time (UTC if no zone) or Unix seconds.")(fn)
    fn = click.option("--event", "event_prefix", default=None, help="Only events starting with this.")(fn)
    return fn


def _make_filter(partitions: tuple[str, ...], severity: str | None, since: str | None, until: str | None,
                 event_prefix: str | None) -> ax.RecordFilter:
    try:
        return ax.RecordFilter(
            partitions=frozenset(partitions),
            min_severity=severity,
            since=ax.parse_time(since) if since else None,
            until=ax.parse_time(until) if until else None,
            event_prefix=event_prefix,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _records(log: str, flt: ax.RecordFilter, render: Callable[[int, object], str], out: object) -> None:
    path = _existing(log, "audit log")
    try:
        entries, damage = read_entries(path)
    except AuditError as exc:
        raise UserError(str(exc)) from None
    write = out.write  # type: ignore[attr-defined]
    for seq, rec in ax.select(entries, flt):
        write(render(seq, rec) + "\n")
    if damage is not None:
        # Never present a damaged log as complete: what follows the damage is not shown.
        raise Failed(f"{log}: stopped at {damage.describe()}; run 'septum audit verify'")


@audit.command("show")
@click.argument("log")
@_filter_options
def audit_show(log: str, **filters: object) -> None:
    """Print records as text (integrity is checked by 'verify', not here)."""
    _records(log, _make_filter(**filters), ax.to_text, sys.stdout)  # type: ignore[arg-type]


@audit.command("export")
@click.argument("log")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "syslog"]), default="jsonl", show_default=True)
@click.option("--hostname", default="-", help="HOSTNAME field for syslog (default: nil).")
@click.option("-o", "--output", default=None, help="Write here instead of stdout.")
@_filter_options
def audit_export(log: str, fmt: str, hostname: str, output: str | None, **filters: object) -> None:
    """Export records as JSON lines or RFC 5424 syslog messages (one per line)."""
    flt = _make_filter(**filters)  # type: ignore[arg-type]
    render: Callable[[int, object], str]
    if fmt == "jsonl":
        render = ax.to_json_line  # type: ignore[assignment]
    else:
        def render(seq: int, rec: object) -> str:
            return ax.to_syslog(seq, rec, hostname=hostname)  # type: ignore[arg-type]
    if output is None:
        _records(log, flt, render, sys.stdout)
        return
    try:
        with open(output, "w", encoding="utf-8") as out:
            _records(log, flt, render, out)
    except OSError as exc:
        raise UserError(f"{output}: cannot write ({exc.strerror})") from None


# ---------------------------------------------------------------------------------------------- update


@audit.command("compact")
@click.argument("log")
@click.option("--signing-key", "signing_key", required=True,
              help="The device's audit signing key (PEM, private): it signs the compaction record.")
@click.option("--policy", default=None, help="Retention policy (JSON) [default: the built-in one, see docs].")
@click.option("--now", "now", type=float, default=None, help="Judge retention as of this Unix time [default: now].")
@click.option("--archive", default=None, help="Copy the log here, as it was, before compacting.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@click.option("--device-key", "device_key", default=None,
              help="Device key file: opens a signing key sealed at rest (audit.key.sealed).")
def audit_compact(log: str, signing_key: str, policy: str | None, now: float | None, archive: str | None,
                  dry_run: bool, device_key: str | None) -> None:
    """Remove records past their class's retention, replacing the prefix by a signed compaction record."""
    import time

    from septum.services.audit_retention import RetentionError, RetentionPolicy, compact

    path = _existing(log, "audit log")
    key_path = _existing(signing_key, "key file")
    try:
        if device_key is not None:  # the audit key as provisioning leaves it: sealed under the device key
            from septum.crypto.keys import parse_private_key
            from septum.crypto.secrets_at_rest import SecretsError, load_device_key

            try:
                pem = load_device_key(_existing(device_key, "device key file")).unseal(
                    key_path.read_bytes(), "audit", key_path.name.removesuffix(".sealed"))
            except (SecretsError, OSError) as exc:
                raise UserError(str(exc)) from None
            key = parse_private_key(pem, str(key_path))
        else:
            key = load_private_key(key_path)
    except KeyFileError as exc:
        raise UserError(str(exc)) from None
    try:
        rules = RetentionPolicy.load(_existing(policy, "policy file") if policy else None)
    except RetentionError as exc:
        raise UserError(str(exc)) from None
    try:
        report = compact(path, key, rules, time.time() if now is None else now,
                         archive=Path(archive) if archive else None, dry_run=dry_run)
    except RetentionError as exc:
        raise Failed(str(exc)) from None
    except (AuditError, OSError) as exc:
        raise UserError(f"{log}: {exc}") from None
    click.echo(f"{log}: {report.message}")


def _keygen(out_dir: str, name: str) -> None:
    directory = Path(out_dir)
    if not directory.is_dir():
        raise UserError(f"{out_dir}: no such directory")
    priv, pub = directory / f"{name}.key", directory / f"{name}.pub"
    try:
        generate_keypair(priv, pub)
    except KeyFileError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"wrote {priv} (private, mode 0600) and {pub}")


@click.group("update")
def update() -> None:
    """Make and verify signed update bundles."""


@update.command("keygen")
@click.option("--out-dir", "out_dir", default=".", show_default=True, help="Where to write the key files.")
@click.option("--name", default="update", show_default=True, help="Base name of the key files.")
def update_keygen(out_dir: str, name: str) -> None:
    """Create an Ed25519 key pair for signing update bundles (keep the .key offline)."""
    _keygen(out_dir, name)


@update.command("make")
@click.option("--key", "key", required=True, help="Private signing key (PEM).")
@click.option("--target", required=True, help="Partition or data item the bundle installs into.")
@click.option("--kind", type=click.Choice(["partition", "data"]), default="partition", show_default=True)
@click.option("--version", "version", required=True, help="Dotted integers, e.g. 1.4.2; must only go up.")
@click.option("--base", default=None, help="Directory the file names are relative to [default: each file's dir].")
@click.option("-o", "--output", required=True, help="Bundle file to write.")
@click.argument("files", nargs=-1, required=True)
def update_make(key: str, target: str, kind: str, version: str, base: str | None, output: str,
                files: tuple[str, ...]) -> None:
    """Sign FILES into a bundle for TARGET at VERSION."""
    try:
        private = load_private_key(_existing(key, "key file"))
    except KeyFileError as exc:
        raise UserError(str(exc)) from None
    try:
        data = ub.make_bundle_from_paths(
            private, target=target, kind=kind, version=version,
            paths=[Path(f) for f in files], base=Path(base) if base else None,
        )
    except ub.BundleError as exc:
        raise UserError(str(exc)) from None
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise UserError(f"{output}: cannot write ({exc.strerror})") from None
    click.echo(f"wrote {output}: {target} {version}, {len(files)} file(s)")


@update.command("verify")
@click.argument("bundle")
@click.option("--key", "key", required=True, help="Trusted public key (PEM).")
@click.option("--target", default=None, help="Refuse a bundle for any other target.")
@click.option("--installed", default=None, help="Installed version: refuse anything not newer.")
def update_verify(bundle: str, key: str, target: str | None, installed: str | None) -> None:
    """Check signature, file hashes, target and version; exit 1 with the reason if refused."""
    public = _public_key(key)
    data = _existing(bundle, "bundle").read_bytes()
    try:
        floor = ub.parse_version(installed) if installed else None
    except ub.BundleError as exc:
        raise UserError(f"--installed: {exc}") from None
    try:
        verified = ub.verify_bundle(data, [public], expect_target=target)  # type: ignore[list-item]
        if floor is not None and verified.manifest_version <= floor:
            raise ub.BundleError(
                f"version {verified.manifest.version} is not newer than installed {installed} (anti-rollback)"
            )
    except ub.BundleError as exc:
        raise Failed(f"{bundle}: refused: {exc}") from None
    m = verified.manifest
    click.echo(f"{bundle}: ok: {m.kind} {m.target} {m.version}, {len(m.files)} file(s), key {m.key_id}")


COMMANDS: list[click.Command] = [audit, update]


# ---------------------------------------------------------------------------------------------- provision


@click.command("provision")
@click.argument("model")
@click.option("--out", "out", required=True, help="Folder to create (one sub-folder per partition).")
@click.option("--clinician", "clinicians", multiple=True, help="Clinician to provision with a new PIN (repeatable).")
@click.option("--biomed", "biomeds", multiple=True, help="Biomed to provision with a new PIN (repeatable).")
@click.option("--hospital-ca", "hospital_ca", default=None, help="PEM of the hospital CA machine principals chain to.")
@click.option("--pin-identity", "pins", multiple=True, metavar="IDENTITY=ROLE",
              help="Certificate identity pinned to a machine role (repeatable; needs --hospital-ca).")
@click.option("--drug-library", "library", default=None, help="Initial drug library (YAML with an integer version).")
@click.option("--manufacturer-key", "mkey", default=None,
              help="Ed25519 update-signing key (PEM); generated into OUT/manufacturer/ when not given.")
@click.option("--device-key", "device_key", default=None,
              help="Seal the audit key and credentials under this device key file (root-only; created if absent). "
                   "Keep it outside OUT; run the device with it (Supervisor(device_key=...)).")
def provision(model: str, out: str, clinicians: tuple[str, ...], biomeds: tuple[str, ...], hospital_ca: str | None,
              pins: tuple[str, ...], library: str | None, mkey: str | None, device_key: str | None) -> None:
    """Provision a device from its model; prints the generated PINs once (they are stored only hashed)."""
    import yaml

    from septum.model import ModelError, load
    from septum.services.provisioning import ProvisioningError, provision_device

    try:
        m = load(model)[0]
    except ModelError as exc:
        raise UserError(f"{model}: cannot load the model ({exc})") from None
    table: dict[str, str] = {}
    for item in pins:
        identity, sep, role = item.partition("=")
        if not sep or not identity or not role:
            raise UserError(f"--pin-identity {item!r}: expected IDENTITY=ROLE")
        table[identity] = role
    drug = None
    if library is not None:
        data = _existing(library, "drug library").read_bytes()
        try:
            version = yaml.safe_load(data).get("version")
        except (yaml.YAMLError, AttributeError):
            version = None
        if not isinstance(version, int):
            raise UserError(f"{library}: not a drug library with an integer 'version'")
        drug = (data, version)
    try:
        dkey = None
        if device_key is not None:
            from septum.crypto.secrets_at_rest import create_device_key, load_device_key

            if Path(device_key).resolve().is_relative_to(Path(out).resolve()):
                raise UserError(f"--device-key {device_key}: keep the device key outside {out}")
            dkey = load_device_key(device_key) if Path(device_key).exists() else create_device_key(device_key)
        result = provision_device(
            m, out, clinicians=clinicians, biomeds=biomeds, machine_pins=table or None, drug_library=drug,
            hospital_ca_pem=_existing(hospital_ca, "CA file") if hospital_ca else None,
            manufacturer_key=_existing(mkey, "key file") if mkey else None, device_key=dkey,
        )
    except (ProvisioningError, KeyFileError, ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    click.echo(f"provisioned {m.device.name} into {result.out_dir}")
    for part, folder in sorted(result.folders.items()):
        click.echo(f"  {part}: {folder}")
    if result.audit_public_key:
        click.echo(f"audit public key (for septum audit verify): {result.audit_public_key}")
    if result.manufacturer_key:
        click.echo(f"generated manufacturer key (keep it off the device): {result.manufacturer_key}")
    for user, pin in sorted(result.pins.items()):
        click.echo(f"PIN for {user}: {pin}   (shown once; only its hash is stored)")


COMMANDS.append(provision)
