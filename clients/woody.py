"""Woody: Thrift RPC over HTTP, the dialect Accounter (Shumway) and Limiter speak.

One call is one HTTP POST whose body is a strict binary Thrift message. Failures are sorted
the way the Erlang woody client sorts them (docs/wire.md 1.2/1.3), because the sort decides
what may be retried:

- `ResourceUnavailable`: the peer certainly did not execute the call; always safe to retry.
- `ResultUnknown`: it may or may not have run; retried only for calls marked idempotent.
- `ResultUnexpected`: a contract violation or a bug; never retried.
- `BusinessError`: a declared Thrift exception, a deterministic answer; never retried.
"""

from __future__ import annotations

import itertools
import logging
import re
import struct
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import tenacity
import thriftpy2
from thriftpy2.protocol.cybin import ProtocolError as CyProtocolError
from thriftpy2.protocol.cybin import TCyBinaryProtocol
from thriftpy2.protocol.exc import TProtocolException
from thriftpy2.thrift import TApplicationException, TDecodeException, TException, TMessageType
from thriftpy2.transport import TTransportException
from thriftpy2.transport.buffered import TCyBufferedTransport
from thriftpy2.transport.memory import TCyMemoryBuffer, TMemoryBuffer

from clients import metrics
from clients.keepalive import Answer, AnswerLost, KeepAlive, NotSent
from foundation.errors import TypedError
from foundation.retry import RetryPolicy

log = logging.getLogger(__name__)

IDL_DIR = Path(__file__).parent / "idl"
THRIFT_CONTENT_TYPE = "application/x-thrift"

TRACE_ID_HEADER = "woody.trace-id"
SPAN_ID_HEADER = "woody.span-id"
PARENT_ID_HEADER = "woody.parent-id"
DEADLINE_HEADER = "woody.deadline"
META_HEADER_PREFIX = "woody.meta."
ERROR_CLASS_HEADER = "woody.error-class"
ERROR_REASON_HEADER = "woody.error-reason"

# The parent id of a call that starts a trace.
ROOT_PARENT_ID = "undefined"
MAX_ID_BYTES = 64

_DEADLINE_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]00:00)$"
)


def load_idl(name: str) -> ModuleType:
    """The Thrift module of `clients/idl/<name>.thrift` (thriftpy2 caches it per name)."""
    return thriftpy2.load(
        str(IDL_DIR / f"{name}.thrift"), module_name=f"{name}_thrift", include_dirs=[str(IDL_DIR)]
    )


# --- errors ---------------------------------------------------------------------------------


class WoodyError(TypedError):
    """A system failure of a woody call, classified as woody classifies it."""

    code = "woody_error"
    error_class: ClassVar[str] = "result unexpected"

    def __init__(self, reason: str, *, trace_id: str | None = None) -> None:
        super().__init__(f"{self.error_class}: {reason}")
        self.reason = reason
        self.trace_id = trace_id


class ResourceUnavailable(WoodyError):
    """The call was not executed (refused, overloaded, deadline already reached)."""

    code = "resource_unavailable"
    transient = True
    error_class = "resource unavailable"


class ResultUnknown(WoodyError):
    """The call may or may not have been executed (timeout, dropped connection, 504)."""

    code = "result_unknown"
    transient = True  # a repeat with the same idempotency key is safe
    error_class = "result unknown"


class ResultUnexpected(WoodyError):
    """The peer broke the contract or failed unexpectedly (500, 4xx, undecodable reply)."""

    code = "result_unexpected"
    error_class = "result unexpected"


_ERROR_CLASSES: dict[str, type[WoodyError]] = {
    cls.error_class: cls for cls in (ResourceUnavailable, ResultUnknown, ResultUnexpected)
}


class BusinessError(TypedError):
    """A Thrift exception the method declares: the peer's deterministic answer.

    `name` is the unqualified Thrift type name; `exception` the decoded Thrift object when the
    error came off the wire.
    """

    code = "business_error"

    def __init__(self, name: str, exception: TException | None = None, *,
                 detail: str | None = None, trace_id: str | None = None) -> None:
        super().__init__(f"{name}: {detail}" if detail else name)
        self.name = name
        self.exception = exception
        self.trace_id = trace_id


class InvalidRequest(BusinessError):
    """`base.InvalidRequest`, which Accounter and Limiter both declare: the request itself is
    wrong (an unknown plan or operation, a change already final); `errors` says how."""

    code = "invalid_request"

    def __init__(self, errors: Sequence[str], **kwargs: Any) -> None:
        self.errors = list(errors)
        super().__init__("InvalidRequest", detail="; ".join(self.errors), **kwargs)


# --- trace context and deadline -------------------------------------------------------------


def new_id() -> str:
    return uuid.uuid4().hex


def format_deadline(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. `2026-05-18T12:29:11.123Z`."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_deadline(text: str) -> datetime:
    """Parse a `woody.deadline` value; only UTC offsets are accepted, as by the Erlang server."""
    match = _DEADLINE_RE.match(text.strip())
    if match is None:
        raise ValueError(f"bad woody deadline {text!r}")
    whole, fraction, _ = match.groups()
    micros = int(((fraction or ".")[1:] + "000000")[:6])
    try:
        moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    except ValueError as exc:
        raise ValueError(f"bad woody deadline {text!r}") from exc
    return moment.replace(microsecond=micros, tzinfo=UTC)


def _check_id(kind: str, value: str) -> None:
    if not value or len(value.encode()) > MAX_ID_BYTES:
        raise ValueError(f"woody {kind} must be 1..{MAX_ID_BYTES} bytes, got {value!r}")


@dataclass(frozen=True)
class WoodyContext:
    """Where a call sits in a trace: outgoing calls get a fresh span whose parent is `span_id`.

    `WoodyContext.new()` starts a trace (parent id `undefined`); a server handling a request
    uses `from_headers` so its own calls continue the caller's trace. `deadline` and `meta`
    travel to every call made with this context.
    """

    trace_id: str
    span_id: str = ROOT_PARENT_ID
    deadline: datetime | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_id("trace id", self.trace_id)
        _check_id("span id", self.span_id)
        if self.deadline is not None and self.deadline.tzinfo is None:
            raise ValueError("a woody deadline must be timezone-aware")

    @classmethod
    def new(cls, *, deadline: datetime | None = None,
            meta: Mapping[str, str] | None = None) -> WoodyContext:
        return cls(trace_id=new_id(), deadline=deadline, meta=dict(meta or {}))

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> WoodyContext:
        """The context of an incoming request; ValueError when its woody headers are bad."""
        lowered = {name.lower(): value for name, value in headers.items()}
        ids = [lowered.get(h) for h in (TRACE_ID_HEADER, SPAN_ID_HEADER, PARENT_ID_HEADER)]
        if any(value is None for value in ids):
            raise ValueError("bad woody id header")
        for kind, value in zip(("trace id", "span id", "parent id"), ids, strict=True):
            _check_id(kind, value or "")
        raw_deadline = lowered.get(DEADLINE_HEADER)
        meta = {name[len(META_HEADER_PREFIX):]: value for name, value in lowered.items()
                if name.startswith(META_HEADER_PREFIX)}
        return cls(trace_id=ids[0] or "", span_id=ids[1] or "",
                   deadline=parse_deadline(raw_deadline) if raw_deadline else None, meta=meta)

    def outgoing_headers(self, span_id: str) -> dict[str, str]:
        headers = {
            TRACE_ID_HEADER: self.trace_id,
            SPAN_ID_HEADER: span_id,
            PARENT_ID_HEADER: self.span_id,
        }
        if self.deadline is not None:
            headers[DEADLINE_HEADER] = format_deadline(self.deadline)
        for key, value in self.meta.items():
            headers[META_HEADER_PREFIX + key] = value
        return headers


# --- Thrift message codec -------------------------------------------------------------------
# thriftpy2's Cython protocol: about ten times cheaper than the pure-Python one, and the same
# bytes. Decoding reads through the buffered transport, which raises at the end of the body;
# the bare Cython memory buffer would hand out whatever lies past a truncated body instead.


def encode_message(name: str, message_type: int, seqid: int, payload: Any) -> bytes:
    """One strict (versioned) binary Thrift message."""
    buffer = TCyMemoryBuffer()
    protocol = TCyBinaryProtocol(buffer, strict_write=True)
    protocol.write_message_begin(name, message_type, seqid)
    protocol.write_struct(payload)
    protocol.write_message_end()
    return buffer.getvalue()


@dataclass(frozen=True)
class DecodedMessage:
    name: str
    message_type: int
    seqid: int
    protocol: TCyBinaryProtocol  # positioned at the message's struct


# What a malformed or truncated Thrift body raises while being decoded. Besides the Thrift
# errors: a bad header is the Cython protocol's own ProtocolError, a negative length a
# SystemError, a length past anything the buffer could hold a MemoryError (it refuses to grow).
DECODE_ERRORS = (TProtocolException, TTransportException, CyProtocolError, struct.error,
                 UnicodeDecodeError, EOFError, ValueError, TypeError, RecursionError,
                 SystemError, MemoryError)


def open_message(body: bytes) -> DecodedMessage:
    """Read a message header (strict only); the caller then reads the struct."""
    transport = TCyBufferedTransport(TMemoryBuffer(body))
    protocol = TCyBinaryProtocol(transport, strict_read=True, decode_response=True)
    name, message_type, seqid = protocol.read_message_begin()
    return DecodedMessage(name, message_type, seqid, protocol)


# --- client ---------------------------------------------------------------------------------


# Pauses between attempts: 50 ms, doubling, at most a second (and never past the deadline).
_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 1.0


def _may_retry(exc: WoodyError, idempotent: bool) -> bool:
    """Nothing ran: always safe to repeat. It may have run: only an idempotent call."""
    return isinstance(exc, ResourceUnavailable) or (idempotent and isinstance(exc, ResultUnknown))


def _http_error(answer: Answer, trace_id: str) -> WoodyError:
    reason = answer.headers.get(ERROR_REASON_HEADER) or f"HTTP {answer.status}"
    status = answer.status
    if status == 503:
        return ResourceUnavailable(reason, trace_id=trace_id)
    if status == 504:
        return ResultUnknown(reason, trace_id=trace_id)
    if status == 502:
        declared = (answer.headers.get(ERROR_CLASS_HEADER) or "").strip().lower()
        return _ERROR_CLASSES.get(declared, ResultUnexpected)(reason, trace_id=trace_id)
    return ResultUnexpected(f"HTTP {status}: {reason}", trace_id=trace_id)


class WoodyClient:
    """Calls one woody service at one URL.

    `timeout_s` bounds a whole call, retries included (a context deadline may shorten it).
    An idempotent call splits the time left evenly over the attempts left, so a timed-out
    attempt still leaves room to retry; other calls give every attempt all the time left.
    Keeps its HTTP connections open between calls; share a client within a process, not
    across forks.
    """

    def __init__(self, url: str, service: Any, *, timeout_s: float = 5.0,
                 attempts: int = 3) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.url = url
        self.service = service
        self.timeout_s = timeout_s
        self.attempts = attempts
        self._http = KeepAlive(url)
        self._seqids = itertools.count(1)

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, args: Mapping[str, Any] | None = None, *, idempotent: bool,
             context: WoodyContext | None = None) -> Any:
        """Call `method` with `args` (argument name -> value); return its result (None: void).

        Raises BusinessError for a declared exception, WoodyError subclasses otherwise.
        """
        if method not in self.service.thrift_services:
            raise ValueError(f"{self.service.__name__} has no method {method!r}")
        context = context or WoodyContext.new()
        seqid = next(self._seqids) & 0x7FFFFFFF
        body = self._encode_call(method, args or {}, seqid)
        ends_at = self._ends_at(context)
        policy = RetryPolicy(
            limit=self.attempts, initial_s=_BACKOFF_FIRST_S, max_s=_BACKOFF_MAX_S,
            retryable=lambda exc: isinstance(exc, WoodyError) and _may_retry(exc, idempotent))
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(policy.retryable),
            stop=self._stop(policy, ends_at),
            wait=policy.wait,
            before_sleep=lambda state: log.warning(
                "woody %s %s: attempt %d failed (%s), retrying", self.url, method,
                state.attempt_number, state.outcome.exception() if state.outcome else None),
            reraise=True,
        )
        with metrics.peer_call(self.service.__name__.lower(), method):
            for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    per_attempt = self._attempt_timeout(ends_at, number, idempotent)
                    return self._exchange(method, seqid, body, context, per_attempt)
        raise AssertionError("tenacity returns or raises")  # pragma: no cover

    def _encode_call(self, method: str, args: Mapping[str, Any], seqid: int) -> bytes:
        args_cls = getattr(self.service, f"{method}_args")
        known = {spec[1] for spec in args_cls.thrift_spec.values()}
        unknown = set(args) - known
        if unknown:
            raise ValueError(f"{method} takes no arguments named {sorted(unknown)}")
        try:
            return encode_message(method, TMessageType.CALL, seqid, args_cls(**args))
        except (TDecodeException, struct.error, TypeError, AttributeError, ValueError) as exc:
            # The Cython protocol reports a value of the wrong type as TDecodeException.
            raise ValueError(f"cannot encode {method} arguments: {exc}") from exc

    def _ends_at(self, context: WoodyContext) -> float:
        ends_at = time.monotonic() + self.timeout_s
        if context.deadline is not None:
            left = (context.deadline - datetime.now(UTC)).total_seconds()
            ends_at = min(ends_at, time.monotonic() + left)
        return ends_at

    @staticmethod
    def _stop(policy: RetryPolicy,
              ends_at: float) -> Callable[[tenacity.RetryCallState], bool]:
        def stop(state: tenacity.RetryCallState) -> bool:
            out_of_time = time.monotonic() + state.upcoming_sleep >= ends_at
            return policy.stop(state) or out_of_time
        return stop

    def _attempt_timeout(self, ends_at: float, number: int, idempotent: bool) -> float:
        left = ends_at - time.monotonic()
        return left / (self.attempts - number + 1) if idempotent else left

    def _exchange(self, method: str, seqid: int, body: bytes, context: WoodyContext,
                  timeout_s: float) -> Any:
        if timeout_s <= 0:
            # Nothing is sent once the deadline has passed, so nothing was executed.
            raise ResourceUnavailable("deadline reached", trace_id=context.trace_id)
        span_id = new_id()
        headers = {
            "content-type": THRIFT_CONTENT_TYPE,
            "accept": THRIFT_CONTENT_TYPE,
            **context.outgoing_headers(span_id),
        }
        log.debug("woody call %s %s trace=%s span=%s parent=%s", self.url, method,
                  context.trace_id, span_id, context.span_id)
        try:
            answer = self._http.request("POST", self._http.target, body, headers, timeout_s)
        except NotSent as exc:
            raise ResourceUnavailable(str(exc), trace_id=context.trace_id) from exc
        except AnswerLost as exc:
            raise ResultUnknown(str(exc), trace_id=context.trace_id) from exc
        if answer.status != 200:
            raise _http_error(answer, context.trace_id)
        return self._decode_reply(method, seqid, answer.body, context.trace_id)

    def _decode_reply(self, method: str, seqid: int, body: bytes, trace_id: str) -> Any:
        result_cls = getattr(self.service, f"{method}_result")
        try:
            message = open_message(body)
            if message.message_type == TMessageType.EXCEPTION:
                app_error = TApplicationException()
                message.protocol.read_struct(app_error)
                raise ResultUnexpected(f"application exception: {app_error}", trace_id=trace_id)
            if message.message_type != TMessageType.REPLY:
                raise ResultUnexpected(f"message type {message.message_type} is not a reply",
                                       trace_id=trace_id)
            if message.name != method or message.seqid != seqid:
                raise ResultUnexpected(
                    f"reply to {message.name!r}/{message.seqid}, expected {method!r}/{seqid}",
                    trace_id=trace_id)
            result = result_cls()
            message.protocol.read_struct(result)
        except DECODE_ERRORS as exc:
            raise ResultUnexpected(f"undecodable reply: {exc!r}", trace_id=trace_id) from exc
        for field_id, spec in result_cls.thrift_spec.items():
            declared = getattr(result, spec[1])
            if field_id != 0 and declared is not None:
                raise BusinessError(type(declared).__name__, declared, trace_id=trace_id)
        if 0 not in result_cls.thrift_spec:
            return None
        if result.success is None:
            raise ResultUnexpected(f"{method} reply carries no result", trace_id=trace_id)
        return result.success
