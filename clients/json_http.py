"""JSON over HTTP to a peer: kept-alive connections, one time budget, bounded retries,
Decimal-safe bodies.

A request that was never sent is repeated for any call. Only calls the caller declares
idempotent are repeated after a lost answer (a timeout, a dropped connection) or a 5xx: a
repeat of such a call cannot double an effect. Any other answer goes back
to the client, which checks it with `JsonAnswer.raise_for_status` (or maps statuses itself).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit

from clients import metrics
from clients.keepalive import AnswerLost, KeepAlive, NotSent
from clients.retries import call_with_retries, may_repeat
from foundation.errors import TypedError


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
    """One peer's base URL plus the transport policy for it (`clients.retries`).

    Requests go over the kept-alive connections of `clients.keepalive`, the transport the
    woody clients use too: a peer call costs a tenth of the CPU a general-purpose client
    spends on it (`benchmarks/transport_bench.py`).
    """

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
        self._http = KeepAlive(self.base_url)
        self._prefix = urlsplit(self.base_url).path

    def post(self, path: str, body: Any, *, idempotent: bool) -> JsonAnswer:
        return self._call("POST", path, dumps(body), idempotent=idempotent)

    def get(self, path: str, params: dict[str, str]) -> JsonAnswer:
        query = f"?{urlencode(params)}" if params else ""
        return self._call("GET", path + query, None, idempotent=True)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: bytes | None, *,
              idempotent: bool) -> JsonAnswer:
        what = f"{method} {self.base_url}{path}"
        try:
            with metrics.peer_call(metrics.json_peer_name(self._unavailable), f"{method} {path}"):
                return call_with_retries(
                    lambda timeout_s: self._attempt(method, path, body, timeout_s),
                    what=what, idempotent=idempotent, attempts=self._attempts,
                    timeout_s=self._timeout_s, backoff_s=self._backoff_s,
                    retry_on=lambda failure: _may_repeat(failure, idempotent))
        except (NotSent, AnswerLost, _ServerFailed) as failure:
            raise self._unavailable(f"{what}: {_describe(failure)}") from failure

    def _attempt(self, method: str, path: str, body: bytes | None,
                 timeout_s: float) -> JsonAnswer:
        if timeout_s <= 0:
            raise NotSent("the call's time ran out before this attempt")
        headers = _JSON_HEADERS if body is not None else {}
        answer = self._http.request(method, (self._prefix + path) or "/", body, headers,
                                    timeout_s)
        if answer.status >= 500:
            raise _ServerFailed(f"HTTP {answer.status}")
        if not answer.body:
            return JsonAnswer(answer.status, None)
        try:
            return JsonAnswer(answer.status, loads(answer.body))
        except ValueError as exc:
            if answer.status >= 400:
                # An error page (say, from a proxy): its status still says what happened.
                return JsonAnswer(answer.status, None)
            raise PeerBadAnswer(
                f"{method} {self.base_url}{path}: HTTP {answer.status} with a body that is not "
                "JSON") from exc


_JSON_HEADERS = {"Content-Type": "application/json"}


class _ServerFailed(Exception):
    """A 5xx: the peer answered that it failed; repeated like a lost answer."""


def _may_repeat(failure: BaseException, idempotent: bool) -> bool:
    return may_repeat(failure, idempotent) or (idempotent and isinstance(failure, _ServerFailed))


def _describe(failure: BaseException) -> str:
    """The transport failure in the words the peer errors have always used."""
    if isinstance(failure, NotSent):
        return f"ConnectionError (not sent): {failure}"
    if isinstance(failure, AnswerLost):
        kind = "ReadTimeout" if failure.timed_out else "ConnectionError"
        return f"{kind} (answer lost): {failure}"
    return str(failure)
