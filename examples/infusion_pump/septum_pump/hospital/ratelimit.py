"""The sender's side of ``orders_in``'s rate bound, and a bounded audit of what it refuses.

The model limits ``orders_in`` (network -> auth) with a token bucket that the *receiving* end applies:
auth drops an order beyond the rate and counts it, but nobody answers the hospital for it, so without a
check here the hospital would be told "pending" (202 / ``CA``) for an order that will never be processed.
``OrderRate`` applies the same bucket before forwarding so that such an order is refused at once, with a
reason and a time to retry, and never forwarded. The receiving end stays the authority (this partition is
not trusted); this check only keeps the hospital's answers true.

Thread-safe: the transports' connection threads call ``take``/``refund`` concurrently.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from septum.runtime.token_bucket import TokenBucket, default_capacity

Clock = Callable[[], float]


class OrderRate:
    """Admits orders at the channel's declared rate, in the same clock the receiving end uses.

    Both sides use the runtime's one ``septum.runtime.token_bucket.TokenBucket``. The receiver's holds
    ``default_capacity(rate)`` tokens (one second's worth) and refills at ``rate`` per second of device time.
    Ours refills at the same rate but holds one token less (never under one): an order waits in the channel
    queue for a moment before auth reads it, and if an earlier burst waited longer than a later order, the
    receiver would see them closer together than we sent them and drop the later one. One token of headroom
    absorbs up to ``1/rate`` seconds of such queueing jitter, so an order we forward is an order auth does not
    drop for its rate.
    """

    def __init__(self, rate_per_s: float, *, clock: Clock = time.monotonic,
                 to_real: Callable[[float], float] = lambda s: s) -> None:
        if (isinstance(rate_per_s, bool) or not isinstance(rate_per_s, (int, float))
                or not math.isfinite(rate_per_s) or rate_per_s <= 0):
            raise ValueError(f"orders rate must be a positive number of orders per second, not {rate_per_s!r}")
        self.rate = float(rate_per_s)
        self.receiver_capacity = default_capacity(self.rate)
        self.capacity = max(1.0, self.receiver_capacity - 1.0)
        self._clock = clock
        self._to_real = to_real  # device seconds -> real seconds, for the hospital's Retry-After
        self._lock = threading.Lock()
        self._bucket = TokenBucket(self.rate, clock(), capacity=self.capacity)

    def take(self) -> float | None:
        """Take a token: None if the order may be forwarded, else the real seconds until one is free."""
        with self._lock:
            if self._bucket.admit(self._clock()):
                return None
            wait = self._bucket.wait()
        return self._to_real(wait)

    def refund(self) -> None:
        """Give back a token whose order never entered the channel (it was full), so it cost auth nothing."""
        with self._lock:
            self._bucket.refund()


def retry_after_s(real_seconds: float) -> int:
    """HTTP ``Retry-After`` is whole seconds; round up so a client that obeys it finds a token."""
    return max(1, math.ceil(real_seconds))


class RefusalSummary:
    """Audits the first refusal of each second in full and counts the rest into one summary record.

    A hospital (or an attacker with a hospital certificate) sending far above the rate must not spend the
    link's whole audit budget on identical records and crowd out the others (``tls_refused``, ...): this
    bounds the volume to two records per second per kind, and every refusal is still counted.
    """

    def __init__(self, audit: Callable[[str, str, str], None], event: str, *, window_s: float = 1.0,
                 clock: Clock = time.monotonic) -> None:
        self.audit = audit
        self.event = event
        self.window_s = window_s
        self._clock = clock  # real time: this bounds audit records per real second
        self._lock = threading.Lock()
        self._window_start = -math.inf
        self._counted = 0
        self.total = 0

    def __call__(self, detail: str) -> None:
        now = self._clock()
        with self._lock:
            self.total += 1
            fresh = now - self._window_start >= self.window_s
            if fresh:
                self._window_start = now
                pending, self._counted = self._counted, 0
            else:
                self._counted += 1
                pending = 0
        self._emit_summary(pending)
        if fresh:
            self.audit(self.event, "warning", detail)

    def flush(self) -> None:
        """Report what the current window counted (the partition calls this every second)."""
        with self._lock:
            pending, self._counted = self._counted, 0
        self._emit_summary(pending)

    def _emit_summary(self, pending: int) -> None:
        if pending:
            self.audit(self.event, "warning", f"{pending} more order(s) refused by the rate limit "
                       f"(summarised; each was answered with the reason and not forwarded)")
