"""One base for every error Septum raises to its user.

``except SeptumError`` catches any refusal or failure that Septum reports about the user's input, the device
or its environment; the ``septum`` command prints the message and exits 2 for any that no command handled.
Each subclass also keeps the built-in base it had before (``ValueError``, ``RuntimeError``, ``OSError``), so
code that catches those still does. None of them is meant to carry a traceback to the user: the message says
what is wrong and, where it can, what to do.

    SeptumError
    ├── model (septum.model, septum.runtime.codec)
    │   ├── ModelError            the model file cannot be loaded; holds every issue with its location
    │   └── CodecError            (ValueError) a message schema cannot be turned into a codec
    ├── code generation (septum.gen)
    │   ├── MappingError          the model cannot be laid out on Microkit/CAmkES (limits, name clashes)
    │   ├── ScheduleError         (ValueError) the time reservations cannot be honoured
    │   └── SdfSyntaxError        an SDF file given to validate-sdf is not well-formed XML
    ├── runtime (septum.runtime)
    │   ├── RefusedToRun          (RuntimeError) the run gate refused the model; carries the findings
    │   ├── SetupError            (RuntimeError) the model cannot be launched as written
    │   ├── PartitionFailed       (RuntimeError) the device could not become ready, or went safe
    │   ├── CodeUpdateError       an activation of new partition code is refused
    │   ├── SeccompError          (RuntimeError) the seccomp filter cannot be built or installed
    │   ├── LandlockError         (RuntimeError) the Landlock ruleset cannot be built or enforced
    │   ├── IdentityError         (RuntimeError) a partition's user/group identity cannot be set up
    │   └── DiskError             (OSError) a partition's bounded disk cannot be set up
    ├── seL4 target (septum.sel4)
    │   ├── BuildError            (RuntimeError) an image cannot be built (source, compiler, Microkit tool)
    │   │   └── ModelRefused      the model's analysis has blocking findings: nothing was built
    │   ├── QemuError             (RuntimeError) QEMU missing, or the expected serial line never came
    │   └── SdkError              the Microkit SDK cannot be found or built from the sources given
    ├── services (septum.services)
    │   ├── AuditError            a record or call the audit writer refuses
    │   │   ├── AuditLogDamaged   the audit log is damaged beyond a torn tail; carries the damage
    │   │   └── RetentionError    a compaction (retention policy, or the log it is asked to compact) is refused
    │   ├── AnchorError           (ValueError) an audit anchor file is unreadable or not an anchor
    │   ├── BundleError           an update bundle (or a request to make one) is refused
    │   ├── KeyFileError          a key file is missing, unreadable or not an Ed25519 key
    │   ├── CredentialError       provisioning input or a provisioning file is refused
    │   ├── ProvisioningError     the device cannot be provisioned as asked
    │   ├── MtlsError             a TLS peer is refused, or the mTLS provisioning is unusable
    │   ├── RequestRefused        a signed machine request is refused
    │   ├── RoutingError          (ValueError) the model and the auth config disagree on where things go
    │   └── ServiceSetupError     (RuntimeError) a service cannot run as provisioned
    └── compliance (septum.compliance)
        ├── ThreatRuleError       (ValueError) a threat-rule file cannot be used
        ├── OsvError              (ValueError) malformed or unreadable OSV vulnerability input
        ├── VersionError          (ValueError) a version string the ecosystem's ordering cannot parse
        └── SbomError             (RuntimeError) the SBOM cannot be produced

Deliberately not SeptumErrors: ``septum.gen.microkit.GenerationError`` (the generator failed its own
checks: a bug, which must keep its traceback), ``septum.runtime.control_guard.Refused`` (internal to the
supervisor's control channel, never raised to a user), ``InvariantBroken`` (an internal invariant does not
hold: a bug, reported with its traceback; used instead of ``assert``, which ``python -O`` removes) and private
helpers such as the loader's size guard.
"""

from __future__ import annotations

__all__ = ["InvariantBroken", "SeptumError"]


class SeptumError(Exception):
    """Base of every error Septum reports to its user (see the module docstring for the hierarchy)."""


class InvariantBroken(RuntimeError):
    """An internal invariant does not hold: a bug in Septum, never the user's input. Raised by explicit
    checks where code used ``assert`` (which ``python -O`` strips), so the check survives every interpreter
    flag; the trusted base must not run on with a broken invariant."""
