"""PIN brute force at the front panel."""

from __future__ import annotations

from .base import Check, Scenario, ScenarioResult, event_is
from .device import AttackRig

TRIES = 8
VICTIM = "biomed1"  # not the clinician the other scenarios use: a lockout here must not leak into them


def brute_force(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("pin-brute-force", "brute-forced PIN at the keypad")
    chk = Check(rig, res)
    real = rig.pins.get(VICTIM, "")
    guesses = [f"{(int(real or '0') + 7919 * (i + 1)) % 10**6:06d}" for i in range(TRIES)]
    guesses = [g for g in guesses if g != real]
    reasons: list[str] = []
    for g in guesses:
        ok, why = rig._act("login", [("user", VICTIM), ("pin", g), ("login", "")], timeout=15.0)
        reasons.append(why)
        # stopped only by auth's refusal: silence (no outcome) is not a checked refusal
        chk.expect(f"login {VICTIM} with guessed PIN {g}", not ok and "no outcome" not in why, f"auth: {why}"[:80],
                   "logged in" if ok else f"no answer from auth ({why})")
    locked = [r for r in reasons if "lock" in r.lower()]
    chk.expect(f"{TRIES} guesses in a row", bool(locked), "lockout with back-off after 3 failures "
               f"({len(locked)} of {len(reasons)} refused unchecked)", "no lockout: guessing is unlimited")
    # while locked, even the right PIN is refused (so a lucky guess during the lockout gains nothing)
    ok, why = rig._act("login", [("user", VICTIM), ("pin", real), ("login", "")], timeout=15.0)
    chk.expect("the right PIN during the lockout", not ok or "lock" not in reasons[-1].lower(),
               f"auth: {why}"[:80], "accepted while locked")
    ok, why = rig._act("login", [("user", "nobody"), ("pin", "135790"), ("login", "")], timeout=15.0)
    chk.expect("an unknown user", not ok and "no outcome" not in why,
               "auth: same answer as a wrong PIN (no user oracle)", why)
    return chk.finish(event_is("auth.login-failed", partition="auth", contains=VICTIM),
                      names=("auth.login-failed",))


SCENARIOS = [
    Scenario("pin-brute-force", "PIN brute force through the front panel",
             f"{TRIES} wrong PINs for one user, the right PIN during the lockout, an unknown user",
             "argon2id check, lockout with exponential back-off (3 free attempts), no user oracle", brute_force),
]
