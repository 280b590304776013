"""JSON over HTTP to a peer: keep-alive session, timeouts, bounded retries, Decimal-safe bodies.

Only calls the caller declares idempotent are retried, and only on a connection error, a
timeout or a 5xx: a repeat of such a call cannot double an effect. Any other answer goes back
to the client, which checks it with `JsonAnswer.raise_for_status` (or maps statuses itself).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception

from clients import metrics
from foundation.errors import TypedError
from foundation.retry import RetryPolicy

log = logging.getLogger(__name__)


class PeerError(TypedError):
    """Base of every JSON client error; `code` is machine-readable."""

    code = "peer_error"


class PeerUnavailable(PeerError):
    """The peer could not be reached, timed out or kept failing (5xx): try again later.

    The request may have been applied (e.g. a read timeout), so only a repeat with the same
    idempotency key is safe.
    """

    code = "peer_unavailable"
    transient = True


class PeerBadAnswer(PeerError):
    """The peer answered something this client does not understand (status or body)."""

    code = "peer_bad_answer"


class PeerRejected(PeerError):
    """The peer refused the request itself (a 4xx other than 429): repeating it will not help.

    `status` is the HTTP status, `peer_code` the `code` of the peer's error body, if any.
    """

    code = "peer_rejected"

    def __init__(self, message: str, *, status: int, peer_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.peer_code = peer_code


class _Retryable(Exception):
    """An attempt that may succeed when repeated; carries why, for the final error."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Retryable)


@dataclass(frozen=True)
class JsonAnswer:
    status: int
    body: Any  # the decoded JSON (floats as Decimal); None for an empty or non-JSON error body

    def raise_for_status(self, what: str, *, rejected: type[PeerRejected] = PeerRejected,
                         unavailable: type[PeerUnavailable] = PeerUnavailable) -> None:
        """Return on a 2xx; 429 (rate limited: later) raises `unavailable`, another 4xx
        `rejected`, anything else PeerBadAnswer. `what` names the call in the message."""
        if 200 <= self.status < 300:
            return
        peer_code = self.body.get("code") if isinstance(self.body, dict) else None
        message = self.body.get("message") if isinstance(self.body, dict) else None
        detail = f"{what}: HTTP {self.status}" + "".join(
            f" {part}" for part in (peer_code, message) if isinstance(part, str))
        if self.status == 429:
            raise unavailable(f"{detail} (rate limited)")
        if 400 <= self.status < 500:
            raise rejected(detail, status=self.status,
                           peer_code=peer_code if isinstance(peer_code, str) else None)
        raise PeerBadAnswer(detail)


def to_wire(amount: Decimal) -> str:
    """A Decimal as the plain decimal string peers expect ("100", never "1E+2")."""
    if not amount.is_finite():
        raise ValueError(f"amount must be finite, got {amount}")
    return format(amount, "f")


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return to_wire(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _refuse_floats(value: Any) -> None:
    # json.dumps writes floats itself (no `default` hook); none of our peers' fields is one,
    # so a float here is a money amount that lost precision somewhere.
    if isinstance(value, float):
        raise TypeError(f"cannot send float {value!r}: use int or Decimal")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


def dumps(body: Any) -> bytes:
    """JSON bytes with every Decimal as a decimal string; floats are refused."""
    _refuse_floats(body)
    return json.dumps(body, default=_encode, separators=(",", ":")).encode()


def loads(raw: bytes) -> Any:
    """JSON with every number that has a fraction parsed as Decimal, never float."""
    return json.loads(raw, parse_float=Decimal)


class JsonHttp:
    """One peer's base URL plus the transport policy for it."""

    def __init__(self, base_url: str, *, timeout_s: float, attempts: int = 3,
                 backoff_s: float = 0.05,
                 unavailable: type[PeerUnavailable] = PeerUnavailable) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._unavailable = unavailable
        self._session = requests.Session()
        # Peers are addressed directly; reading proxy settings from the environment on every
        # request costs about a millisecond of CPU per call.
        self._session.trust_env = False
        self._session.mount("http://", HTTPAdapter(pool_maxsize=16, max_retries=0))
        self._session.mount("https://", HTTPAdapter(pool_maxsize=16, max_retries=0))

    def post(self, path: str, body: Any, *, idempotent: bool) -> JsonAnswer:
        return self._call("POST", path, idempotent=idempotent, data=dumps(body),
                          headers={"Content-Type": "application/json"})

    def get(self, path: str, params: dict[str, str]) -> JsonAnswer:
        return self._call("GET", path, idempotent=True, params=params)

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, path: str, *, idempotent: bool, **kwargs: Any) -> JsonAnswer:
        url = self.base_url + path
        # Pauses of backoff_s, doubling, at most a second.
        policy = RetryPolicy(limit=self._attempts if idempotent else 1,
                             initial_s=self._backoff_s, max_s=1.0, retryable=_retryable)
        retrying = Retrying(
            stop=policy.stop,
            wait=policy.wait,
            retry=retry_if_exception(policy.retryable),
            before_sleep=_log_retry,
            reraise=False,
        )
        try:
            with metrics.peer_call(metrics.json_peer_name(self._unavailable), f"{method} {path}"):
                return retrying(self._attempt, method, url, **kwargs)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise self._unavailable(f"{method} {url}: {cause}") from cause

    def _attempt(self, method: str, url: str, **kwargs: Any) -> JsonAnswer:
        try:
            response = self._session.request(method, url, timeout=self._timeout_s, **kwargs)
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}")
        if not response.content:
            return JsonAnswer(response.status_code, None)
        try:
            return JsonAnswer(response.status_code, loads(response.content))
        except ValueError as exc:
            if not response.ok:
                # An error page (say, from a proxy): its status still says what happened.
                return JsonAnswer(response.status_code, None)
            raise PeerBadAnswer(
                f"{method} {url}: HTTP {response.status_code} with a body that is not JSON"
            ) from exc


def _log_retry(state: RetryCallState) -> None:
    method, url = state.args[0], state.args[1]
    error = state.outcome.exception() if state.outcome is not None else None
    log.warning("retrying %s %s after attempt %d: %s", method, url, state.attempt_number, error)
