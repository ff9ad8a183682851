"""Replay protection for remote commands: a per-sender sequence window plus an expiry, bounded memory.

Each command carries its sender, a sequence number (increasing per sender) and ``issued_at``/``expires_at``
(sender's wall clock, seconds). A command is accepted once: the highest sequence seen and a 64-wide bitmap
behind it (the IPsec/DTLS anti-replay window) allow mild reordering without storing every number. Expiry
bounds how long a captured command is worth anything at all, and ``started_at`` closes the gap a restart
would open: commands issued before this guard started are refused, since its memory of them is gone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReplayVerdict:
    ok: bool
    reason: str = ""


@dataclass
class _Window:
    highest: int
    bits: int  # bit i set: highest - i was seen


class ReplayGuard:
    def __init__(self, *, started_at: float, max_lifetime_s: float = 30.0, clock_skew_s: float = 5.0,
                 window: int = 64, max_senders: int = 256) -> None:
        self.started_at = started_at
        self.max_lifetime_s = max_lifetime_s
        self.clock_skew_s = clock_skew_s
        self.window = window
        self.max_senders = max_senders
        self._senders: dict[str, _Window] = {}

    def check(self, sender: str, seq: int, issued_at: float, expires_at: float, now: float) -> ReplayVerdict:
        """Accept (and remember) or refuse with a reason. ``now`` is this device's wall clock."""
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63:
            return ReplayVerdict(False, "malformed sequence number")
        if not expires_at > issued_at:
            return ReplayVerdict(False, "expiry is not after issue time")
        if expires_at - issued_at > self.max_lifetime_s:
            return ReplayVerdict(False, f"lifetime longer than {self.max_lifetime_s:.0f} s")
        if issued_at > now + self.clock_skew_s:
            return ReplayVerdict(False, "issued in the future (clock skew?)")
        if now > expires_at + self.clock_skew_s:
            return ReplayVerdict(False, "expired")
        if issued_at < self.started_at - self.clock_skew_s:
            return ReplayVerdict(False, "issued before this device's replay guard started; resend")
        w = self._senders.get(sender)
        if w is None:
            if len(self._senders) >= self.max_senders:
                # Fail closed: forgetting a sender would let its recent commands be replayed.
                return ReplayVerdict(False, "too many senders")
            self._senders[sender] = _Window(seq, 1)
            return ReplayVerdict(True)
        if seq > w.highest:
            shift = seq - w.highest
            w.bits = ((w.bits << shift) | 1) & ((1 << self.window) - 1) if shift < self.window else 1
            w.highest = seq
            return ReplayVerdict(True)
        age = w.highest - seq
        if age >= self.window:
            return ReplayVerdict(False, f"sequence {seq} is too old (latest {w.highest})")
        if w.bits >> age & 1:
            return ReplayVerdict(False, f"replayed command (sequence {seq} already seen)")
        w.bits |= 1 << age
        return ReplayVerdict(True)
