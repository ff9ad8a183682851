"""Every exception class Septum defines for its users is a SeptumError (and keeps its old built-in base).

The lists are explicit: a new exception class anywhere under septum/ makes this test fail until it is put in
one of them, so "can a user catch it as a SeptumError?" is decided on purpose, not by accident.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from septum.errors import SeptumError

PACKAGE = Path(__file__).resolve().parents[1] / "septum"

# module, class, the built-in base it had before SeptumError (still caught by ``except <base>``)
USER_FACING: list[tuple[str, str, type[BaseException]]] = [
    ("septum.model.errors", "ModelError", Exception),
    ("septum.sel4.sdk", "SdkError", Exception),
    ("septum.services.audit_retention", "RetentionError", Exception),
    ("septum.runtime.codec", "CodecError", ValueError),
    ("septum.gen.layout", "MappingError", Exception),
    ("septum.gen.schedule", "ScheduleError", ValueError),
    ("septum.gen.sdf_parse", "SdfSyntaxError", Exception),
    ("septum.runtime.gate", "RefusedToRun", RuntimeError),
    ("septum.runtime.plan", "SetupError", RuntimeError),
    ("septum.runtime.supervisor", "PartitionFailed", RuntimeError),
    ("septum.runtime.code_update", "CodeUpdateError", Exception),
    ("septum.runtime.sandbox.seccomp", "SeccompError", RuntimeError),
    ("septum.runtime.sandbox.landlock", "LandlockError", RuntimeError),
    ("septum.runtime.sandbox.identity", "IdentityError", RuntimeError),
    ("septum.runtime.sandbox.disk", "DiskError", OSError),
    ("septum.services.audit_log", "AuditError", Exception),
    ("septum.services.audit_log", "AuditLogDamaged", Exception),
    ("septum.services.audit_anchor", "AnchorError", ValueError),
    ("septum.crypto.manifest", "BundleError", Exception),
    ("septum.crypto.keys", "KeyFileError", Exception),
    ("septum.services.credentials", "CredentialError", Exception),
    ("septum.services.provisioning", "ProvisioningError", Exception),
    ("septum.services.mtls", "MtlsError", Exception),
    ("septum.services.signed_requests", "RequestRefused", Exception),
    ("septum.crypto.secrets_at_rest", "SecretsError", ValueError),
    ("septum.services.decommission", "DecommissionError", ValueError),
    ("septum.sel4.wire", "Refusal", ValueError),
    ("septum.sel4.build", "BuildError", RuntimeError),
    ("septum.sel4.build", "ModelRefused", RuntimeError),
    ("septum.sel4.qemu", "QemuError", RuntimeError),
    ("septum.services.auth_routing", "RoutingError", ValueError),
    ("septum.services.service_io", "ServiceSetupError", RuntimeError),
    ("septum.compliance.threat_rules", "ThreatRuleError", ValueError),
    ("septum.knowledge.osv", "OsvError", ValueError),
    ("septum.knowledge.versions", "VersionError", ValueError),
    ("septum.compliance.sbom", "SbomError", RuntimeError),
]

# deliberately not SeptumErrors (see septum/errors.py): a generator bug keeps its traceback, the rest never
# reach a user (or are click's own exceptions, which click already turns into a message and an exit code)
NOT_SEPTUM_ERRORS: list[tuple[str, str]] = [
    ("septum.errors", "SeptumError"),
    ("septum.errors", "InvariantBroken"),
    ("septum.gen.microkit", "GenerationError"),
    ("septum.runtime.control_guard", "Refused"),
    ("septum.model.loader", "_TooLarge"),
    ("septum.cli.compliance", "_UserError"),
    ("septum.cli.services", "UserError"),
    ("septum.cli.services", "Failed"),
    ("septum.cli.decommission", "UserError"),
    ("septum.cli.error_exit", "SeptumErrorExit"),
    ("septum.sel4.scenarios", "ScenarioFailed"),
]

_EXCEPTION_BASES = {"Exception", "ValueError", "RuntimeError", "OSError", "ClickException", "SeptumError"}


def _defined_exception_classes() -> set[tuple[str, str]]:
    """(module, class) of every class under septum/ whose bases name an exception (read as source)."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases]
                found[(module, node.name)] = bases
    names = {cls for (_, cls), bases in found.items() if set(bases) & _EXCEPTION_BASES}
    while True:  # subclasses of those (AuditLogDamaged(AuditError), ...)
        more = {cls for (_, cls), bases in found.items() if set(bases) & names} - names
        if not more:
            break
        names |= more
    return {key for key in found if key[1] in names}


def test_every_exception_class_under_septum_is_classified() -> None:
    listed = {(m, c) for m, c, _ in USER_FACING} | set(NOT_SEPTUM_ERRORS)
    defined = _defined_exception_classes()
    assert sorted(defined - listed) == [], "new exception classes: add them to USER_FACING or NOT_SEPTUM_ERRORS"
    assert sorted(listed - defined) == [], "listed but no longer defined"


@pytest.mark.parametrize(("module", "name", "old_base"), USER_FACING, ids=[c for _, c, _ in USER_FACING])
def test_user_facing_exception_is_a_septum_error_and_keeps_its_base(
        module: str, name: str, old_base: type[BaseException]) -> None:
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, SeptumError)
    assert issubclass(cls, old_base)


@pytest.mark.parametrize(("module", "name"), NOT_SEPTUM_ERRORS[1:], ids=[c for _, c in NOT_SEPTUM_ERRORS[1:]])
def test_internal_exceptions_stay_outside_the_hierarchy(module: str, name: str) -> None:
    assert not issubclass(getattr(importlib.import_module(module), name), SeptumError)
