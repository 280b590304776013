"""One time budget and one retry rule for every peer call, woody or JSON.

A call has one deadline: `timeout_s` after it starts, or the deadline its woody context
carries if that comes first. An idempotent call splits the time left evenly over the
attempts left, so a timed-out attempt still leaves room for another; any other call gives
each attempt all the time left. Attempts pause 50 ms, doubling to at most a second, and no
attempt starts once the pause would reach the deadline.

What may be repeated follows from the transport's failure vocabulary (`clients.keepalive`):
a request that was not sent may always be repeated; one whose answer was lost only when the
call is idempotent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import tenacity

from clients.keepalive import AnswerLost, NotSent
from foundation.retry import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 1.0


def may_repeat(failure: BaseException, idempotent: bool) -> bool:
    """Not sent: nothing ran, always safe. Answer lost: it may have run, so only when the
    call is idempotent. Anything else is an answer, which the caller judges itself."""
    return isinstance(failure, NotSent) or (idempotent and isinstance(failure, AnswerLost))


def call_with_retries(attempt: Callable[[float], T], *, what: str, idempotent: bool,
                      attempts: int, timeout_s: float, deadline: datetime | None = None,
                      retry_on: Callable[[BaseException], bool],
                      backoff_s: float = BACKOFF_FIRST_S) -> T:
    """`attempt(seconds it may take)` until it returns, `retry_on` refuses its failure, the
    attempts run out or the deadline comes; the last failure is raised as it was. An attempt
    may be handed zero or less seconds when the deadline has passed: it must not send then.
    """
    ends_at = time.monotonic() + timeout_s
    if deadline is not None:
        ends_at = min(ends_at, time.monotonic() + (deadline - datetime.now(UTC)).total_seconds())

    policy = RetryPolicy(limit=attempts, initial_s=backoff_s, max_s=BACKOFF_MAX_S,
                         retryable=retry_on)

    def stop(state: tenacity.RetryCallState) -> bool:
        out_of_time = time.monotonic() + state.upcoming_sleep >= ends_at
        return policy.stop(state) or out_of_time

    def note(state: tenacity.RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome is not None else None
        log.warning("%s: attempt %d failed (%s), retrying", what, state.attempt_number, failure)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(policy.retryable), stop=stop, wait=policy.wait,
        before_sleep=note, reraise=True)
    for started in retrying:
        with started:
            number = started.retry_state.attempt_number
            left = ends_at - time.monotonic()
            return attempt(left / (attempts - number + 1) if idempotent else left)
    raise AssertionError("tenacity returns or raises")  # pragma: no cover
