"""Bounded exponential backoff, the one retry policy of the runtime, the webhook forwarder and
the watchdog's alerts.

Attempts are numbered from 1. After failed attempt n, the caller waits
`base_s * 2 ** (n - 1)` seconds, at most `cap_s`, and tries again while n < max_attempts.
There is no jitter: each caller retries one thing at a time, so there is no herd to spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    cap_s: float = math.inf

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return min(self.cap_s, self.base_s * 2 ** (attempt - 1))

    def retries_after(self, attempt: int) -> bool:
        """Whether failed attempt number `attempt` (1-based) gets another try."""
        return attempt < self.max_attempts

    def attempts(self) -> range:
        """The attempt numbers, 1 to max_attempts."""
        return range(1, self.max_attempts + 1)
