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

import copy
import itertools
import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

from thriftpy2.thrift import TApplicationException, TDecodeException, TException, TMessageType

from clients import metrics
from clients.keepalive import Answer, AnswerLost, KeepAlive, NotSent
from clients.retries import call_with_retries
from clients.thrift_codec import DECODE_ERRORS, encode_message, open_message
from clients.woody_wire import (
    ERROR_CLASS_HEADER,
    ERROR_REASON_HEADER,
    THRIFT_CONTENT_TYPE,
    WoodyContext,
    new_id,
)
from foundation.errors import TypedError

log = logging.getLogger(__name__)

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


# --- client ---------------------------------------------------------------------------------


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
        with metrics.peer_call(self.service.__name__.lower(), method):
            return call_with_retries(
                lambda timeout_s: self._exchange(method, seqid, body, context, timeout_s),
                what=f"woody {self.url} {method}", idempotent=idempotent,
                attempts=self.attempts, timeout_s=self.timeout_s, deadline=context.deadline,
                retry_on=lambda exc: isinstance(exc, WoodyError) and _may_retry(exc, idempotent))

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


class ServiceClient:
    """The typed client of one woody service: subclasses name the `service` and turn its
    declared exceptions into typed errors (`typed_error`), then add one method per call."""

    service: ClassVar[Any]

    def __init__(self, url: str, *, timeout_s: float = 5.0, attempts: int = 3) -> None:
        self._woody = WoodyClient(url, self.service, timeout_s=timeout_s, attempts=attempts)
        self._context: WoodyContext | None = None

    def with_context(self, context: WoodyContext) -> Self:
        """This client (its connections shared) with every call made in `context`: the
        trace, parent span and deadline of the step making them."""
        bound = copy.copy(self)
        bound._context = context
        return bound

    def close(self) -> None:
        self._woody.close()

    @staticmethod
    def typed_error(error: BusinessError) -> BusinessError:
        return error

    def _call(self, method: str, args: Mapping[str, Any], *, idempotent: bool) -> Any:
        try:
            return self._woody.call(method, args, idempotent=idempotent, context=self._context)
        except BusinessError as error:
            raise self.typed_error(error) from error
