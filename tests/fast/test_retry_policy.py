"""The one backoff function and the retry policy machines, STQ jobs and peer clients share."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from foundation.retry import RetryPolicy, backoff


def lowest(low: float, high: float) -> float:
    return low


def highest(low: float, high: float) -> float:
    return high


@pytest.mark.parametrize("attempt, initial_s, max_s, jitter, uniform, expected", [
    (1, 1.0, 1800.0, 0.0, highest, 1.0),  # the first pause is the initial one
    (2, 1.0, 1800.0, 0.0, highest, 2.0),  # then it doubles
    (5, 1.0, 1800.0, 0.0, highest, 16.0),
    (11, 1.0, 1800.0, 0.0, highest, 1024.0),
    (12, 1.0, 1800.0, 0.0, highest, 1800.0),  # capped
    (10_000, 1.0, 1800.0, 0.0, highest, 1800.0),  # far past the cap: no overflow
    (1, 0.05, 1.0, 0.0, highest, 0.05),  # the peer clients' pauses
    (6, 0.05, 1.0, 0.0, highest, 1.0),
    (3, 1.0, 600.0, 0.1, lowest, 3.6),  # jitter scales the pause down by up to 10 %
    (3, 1.0, 600.0, 0.1, highest, 4.4),  # and up by up to 10 %
    (12, 1.0, 600.0, 0.1, lowest, 540.0),  # jitter spreads pauses below the cap
    (12, 1.0, 600.0, 0.1, highest, 600.0),  # but never above it
])
def test_backoff_doubles_from_the_initial_pause_jitters_and_never_passes_the_cap(
        attempt, initial_s, max_s, jitter, uniform, expected):
    assert backoff(attempt, initial_s=initial_s, max_s=max_s, jitter=jitter,
                   uniform=uniform) == pytest.approx(expected)


def test_random_jitter_stays_in_its_range():
    pauses = [backoff(4, initial_s=1.0, max_s=600.0, jitter=0.1) for _ in range(2000)]

    assert all(7.2 <= pause <= 8.8 for pause in pauses)
    assert max(pauses) - min(pauses) > 1.0, "spread over the range, not one value"


def test_attempts_count_from_one():
    with pytest.raises(ValueError):
        backoff(0, initial_s=1.0, max_s=10.0)


@pytest.mark.parametrize("limit, jitter", [(0, 0.0), (3, 1.0), (3, -0.1)])
def test_a_policy_that_cannot_work_is_refused(limit, jitter):
    with pytest.raises(ValueError):
        RetryPolicy(limit=limit, initial_s=1.0, max_s=10.0, jitter=jitter)


def test_a_policy_retries_below_its_limit_and_never_what_it_calls_final():
    policy = RetryPolicy(limit=3, initial_s=1.0, max_s=10.0,
                         retryable=lambda exc: not isinstance(exc, KeyError))

    assert [policy.retries(n, ValueError()) for n in (1, 2, 3, 4)] == [True, True, False, False]
    assert not policy.retries(1, KeyError())


def test_what_outlasts_the_limit_is_retried_past_it_unless_it_never_retries():
    policy = RetryPolicy(limit=2, initial_s=1.0, max_s=10.0,
                         retryable=lambda exc: not isinstance(exc, KeyError),
                         outlasts_limit=lambda exc: isinstance(exc, LookupError))

    assert policy.retries(50, IndexError())  # a LookupError: past the limit too
    assert not policy.retries(2, ValueError())
    assert not policy.retries(1, KeyError())  # a LookupError, but one that never retries


def test_a_policy_gives_tenacity_its_wait_and_stop():
    policy = RetryPolicy(limit=3, initial_s=0.5, max_s=1.5)

    def state(n: int) -> SimpleNamespace:
        return SimpleNamespace(attempt_number=n)

    assert [policy.wait(state(n)) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]
    assert [policy.stop(state(n)) for n in (1, 2, 3)] == [False, False, True]
