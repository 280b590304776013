"""The peer-call histogram (`celgate_peer_request_duration_seconds`, docs/contract.md).

It lives with the clients so they need nothing of `workers`, whose import builds the Celery
app. The metric has labels, so its storage is created on first use: a worker that turns on
prometheus_client's multiprocess mode before its pool forks (workers.metrics) gets it too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Histogram

# Peer calls take milliseconds to a few seconds.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

PEER_DURATION = Histogram(
    "celgate_peer_request_duration_seconds",
    "Time a call to a peer took, retries included, by outcome: ok, a woody error class "
    "(resource_unavailable, result_unknown, result_unexpected), business_error, or for a JSON "
    "peer unavailable, rejected or bad_answer.",
    ["peer", "method", "outcome"], buckets=_BUCKETS)


@contextmanager
def peer_call(peer: str, method: str) -> Iterator[None]:
    """Time a peer call; its outcome is `ok` or the class of the error that left the block."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except BaseException as exc:
        outcome = peer_outcome(exc)
        raise
    finally:
        PEER_DURATION.labels(peer, method, outcome).observe(time.perf_counter() - started)


def peer_outcome(exc: BaseException) -> str:
    """A small, fixed vocabulary: woody's error classes (resource_unavailable, result_unknown,
    result_unexpected), business_error (a declared Thrift exception), and for JSON peers
    unavailable, rejected (a 4xx answer) or bad_answer; else the error's class name."""
    error_class = getattr(exc, "error_class", None)  # woody: "resource unavailable", ...
    if isinstance(error_class, str):
        return error_class.replace(" ", "_")
    kinds = {cls.__name__ for cls in type(exc).__mro__}
    for kind, outcome in _PEER_ERRORS:
        if kind in kinds:
            return outcome
    return _snake(type(exc).__name__)


_PEER_ERRORS = (("BusinessError", "business_error"), ("PeerUnavailable", "unavailable"),
                ("PeerRejected", "rejected"), ("PeerBadAnswer", "bad_answer"))


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower()
                   for i, c in enumerate(name))


def json_peer_name(unavailable: type) -> str:
    """A JSON peer's label from its client's error class: `ProviderUnavailable` -> provider."""
    return unavailable.__name__.removesuffix("Unavailable").lower() or "peer"
