"""One retry policy: how often, how long between attempts, and what never retries.

Machines (a transient step failure), STQ jobs (a job that raised) and the peer clients (an
attempt that failed on the wire) all wait `delay(n)` after the n-th failed attempt and stop at
`limit` attempts. The clients hand the policy to tenacity as its `wait` and `stop`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_MAX_DOUBLINGS = 64  # past this every delay is at its cap; keeps 2 ** n a small float


def retry_everything(exc: BaseException) -> bool:
    return True


def retry_nothing(exc: BaseException) -> bool:
    return False


def backoff(attempt: int, *, initial_s: float, max_s: float, jitter: float = 0.0,
            uniform: Callable[[float, float], float] = random.uniform) -> float:
    """The pause after the `attempt`-th failed attempt (1-based): `initial_s` doubling with
    each attempt, scaled by a random factor in [1 - jitter, 1 + jitter] (so failures that
    happened together do not retry together), never above `max_s`."""
    if attempt < 1:
        raise ValueError(f"attempts count from 1, got {attempt}")
    base = min(max_s, initial_s * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS))
    factor = uniform(1 - jitter, 1 + jitter) if jitter else 1.0
    return min(max_s, base * factor)


@dataclass(frozen=True)
class RetryPolicy:
    limit: int  # attempts in all, the first included
    initial_s: float
    max_s: float
    jitter: float = 0.0  # the relative spread of each pause (0.1: +-10 %)
    retryable: Callable[[BaseException], bool] = field(default=retry_everything)
    # Failures retried past the limit, however long they last (a peer that is down).
    outlasts_limit: Callable[[BaseException], bool] = field(default=retry_nothing)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("a retry policy allows at least one attempt")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")

    def delay(self, attempt: int) -> float:
        """The pause after the `attempt`-th failed attempt."""
        return backoff(attempt, initial_s=self.initial_s, max_s=self.max_s, jitter=self.jitter)

    def retries(self, attempt: int, exc: BaseException) -> bool:
        """Whether to try again after the `attempt`-th attempt failed with `exc`."""
        return self.retryable(exc) and (attempt < self.limit or self.outlasts_limit(exc))

    # tenacity takes any callable of its retry state as `wait` and `stop`.

    def wait(self, state: Any) -> float:
        return self.delay(state.attempt_number)

    def stop(self, state: Any) -> bool:
        return state.attempt_number >= self.limit
