"""Serving a Thrift service the woody way, for the sandbox peers.

The endpoint checks a request in the order the Erlang woody server does (method, content type,
accept, id headers, deadline, body), decodes the CALL with the peer's IDL, refuses arguments
that lack a field the IDL marks required (a real peer answers such a request 400), calls the
handler and answers a REPLY: the result in field 0, or a declared exception in its own field
with `woody.error-class: Business Error`. Faults drawn from the peer's `Faults` turn a call
into the HTTP answers a real peer gives when it is overloaded, times out or crashes.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from thriftpy2.thrift import TException, TMessageType, TType

from clients.thrift_codec import DECODE_ERRORS, encode_message, open_message
from clients.woody_wire import (
    ERROR_CLASS_HEADER,
    ERROR_REASON_HEADER,
    THRIFT_CONTENT_TYPE,
    WoodyContext,
)
from sandbox.control import CallLog, sandbox_app
from sandbox.faults import Faults

log = logging.getLogger(__name__)

BUSINESS_ERROR = "Business Error"
RESULT_UNEXPECTED = "Result Unexpected"
RESOURCE_UNAVAILABLE = "Resource Unavailable"
RESULT_UNKNOWN = "Result Unknown"

# Fault name -> (HTTP status, woody error class) for faults answered without running the call.
_ERROR_FAULTS: dict[str, tuple[int, str]] = {
    "500": (500, RESULT_UNEXPECTED),
    "502": (502, RESULT_UNEXPECTED),
    "502_resource_unavailable": (502, RESOURCE_UNAVAILABLE),
    "502_result_unknown": (502, RESULT_UNKNOWN),
    "503": (503, RESOURCE_UNAVAILABLE),
    "504": (504, RESULT_UNKNOWN),
}
# "timeout": sleep, then 504 without running the call; "timeout_after": run the call, then
# sleep before answering, so the caller gives up although the effect happened.
WOODY_FAULTS = frozenset({*_ERROR_FAULTS, "timeout", "timeout_after"})

Handler = Callable[..., Any]


class _Rejected(Exception):
    def __init__(self, status: int, reason: str, error_class: str = RESULT_UNEXPECTED,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.response = _error_response(status, error_class, reason, headers)


def _error_response(status: int, error_class: str, reason: str,
                    headers: Mapping[str, str] | None = None) -> Response:
    return Response(status_code=status, headers={
        ERROR_CLASS_HEADER: error_class, ERROR_REASON_HEADER: reason, **(headers or {}),
    })


# Checked on every call the double receives, so what a struct class declares is looked up once.
_NESTED = frozenset({TType.STRUCT, TType.LIST, TType.SET, TType.MAP})


@cache
def _is_union(cls: type) -> bool:
    module = sys.modules.get(cls.__module__)
    return cls in getattr(module, "__thrift_meta__", {}).get("unions", ())


@cache
def _fields(cls: type) -> tuple[tuple[str, bool, int, Any], ...]:
    """(name, required, type, container spec or None) of every field `cls` declares."""
    return tuple((spec[1], spec[-1], spec[0], spec[2] if len(spec) == 4 else None)
                 for spec in cls.thrift_spec.values())


def _split(spec: Any) -> tuple[int, Any]:
    return spec if isinstance(spec, tuple) else (spec, None)


def missing_required(payload: Any, path: str) -> list[str]:
    """Paths of required fields left unset anywhere inside `payload` (and unions not set once)."""
    missing: list[str] = []
    _collect_missing(payload, path, missing)
    return missing


def _collect_missing(payload: Any, path: str, missing: list[str]) -> None:
    set_fields = 0
    for name, required, ttype, spec in _fields(type(payload)):
        value = getattr(payload, name, None)
        if value is None:
            if required:
                missing.append(f"{path}.{name}")
            continue
        set_fields += 1
        if ttype in _NESTED:
            _collect_in_value(ttype, spec, value, f"{path}.{name}", missing)
    if set_fields != 1 and _is_union(type(payload)):
        missing.append(f"{path} (a union needs exactly one field, has {set_fields})")


def _collect_in_value(ttype: int, spec: Any, value: Any, path: str, missing: list[str]) -> None:
    if ttype == TType.STRUCT:
        _collect_missing(value, path, missing)
    elif ttype in (TType.LIST, TType.SET):
        item_type, item_spec = _split(spec)
        if item_type in _NESTED:
            for i, item in enumerate(value):
                _collect_in_value(item_type, item_spec, item, f"{path}[{i}]", missing)
    elif ttype == TType.MAP:
        (key_type, key_spec), (val_type, val_spec) = _split(spec[0]), _split(spec[1])
        for key, item in value.items():
            if key_type in _NESTED:
                _collect_in_value(key_type, key_spec, key, f"{path}.<key>", missing)
            if val_type in _NESTED:
                _collect_in_value(val_type, val_spec, item, f"{path}[{key!r}]", missing)


def _check_transport(method: str, headers: Mapping[str, str]) -> None:
    if method != "POST":
        raise _Rejected(405, "method not allowed", headers={"allow": "POST"})
    if headers.get("content-type") != THRIFT_CONTENT_TYPE:
        raise _Rejected(415, "unsupported content type")
    accept = headers.get("accept")
    if accept is not None and accept != THRIFT_CONTENT_TYPE:
        raise _Rejected(406, "not acceptable")
    try:
        context = WoodyContext.from_headers(headers)
    except ValueError as exc:
        raise _Rejected(400, str(exc)) from exc
    if context.deadline is not None and context.deadline <= datetime.now(UTC):
        raise _Rejected(503, "deadline reached", RESOURCE_UNAVAILABLE)


def _decode_call(service: Any, body: bytes) -> tuple[str, int, Any]:
    if not body:
        raise _Rejected(400, "empty body")
    try:
        message = open_message(body)
        if message.message_type != TMessageType.CALL:
            raise _Rejected(400, f"message type {message.message_type} is not a call")
        if message.name not in service.thrift_services:
            raise _Rejected(400, f"unknown method {message.name!r}")
        args = getattr(service, f"{message.name}_args")()
        message.protocol.read_struct(args)
    except DECODE_ERRORS as exc:
        raise _Rejected(400, f"cannot decode the call: {exc!r}") from exc
    missing = missing_required(args, message.name)
    if missing:
        raise _Rejected(400, f"required fields missing: {', '.join(missing)}")
    return message.name, message.seqid, args


def _reply(service: Any, method: str, seqid: int, handler: Handler, args: Any) -> Response:
    result_cls = getattr(service, f"{method}_result")
    result = result_cls()
    kwargs = {spec[1]: getattr(args, spec[1]) for spec in args.thrift_spec.values()}
    headers: dict[str, str] = {}
    try:
        value = handler(**kwargs)
    except TException as exc:
        name = next((spec[1] for fid, spec in result_cls.thrift_spec.items()
                     if fid != 0 and spec[2] is type(exc)), None)
        if name is None:
            log.exception("%s raised an undeclared exception", method)
            return _error_response(500, RESULT_UNEXPECTED, f"undeclared {type(exc).__name__}")
        setattr(result, name, exc)
        headers = {ERROR_CLASS_HEADER: BUSINESS_ERROR, ERROR_REASON_HEADER: type(exc).__name__}
    except Exception as exc:  # a crash of the double is a 500, as in a real peer
        log.exception("%s handler failed", method)
        return _error_response(500, RESULT_UNEXPECTED, repr(exc))
    else:
        if 0 in result_cls.thrift_spec:
            result.success = value
    body = encode_message(method, TMessageType.REPLY, seqid, result)
    return Response(body, status_code=200, media_type=THRIFT_CONTENT_TYPE, headers=headers)


Endpoint = Callable[[Request], Awaitable[Response]]


def woody_endpoint(service: Any, handlers: Mapping[str, Handler], faults: Faults,
                   calls: CallLog) -> Endpoint:
    """The Thrift endpoint; `handlers` maps Thrift method names to callables taking the
    method's arguments by name and raising declared Thrift exceptions as business errors.
    Every HTTP method reaches it: it answers all but POST with a woody 405."""

    async def endpoint(request: Request) -> Response:
        # ASGI header names are lower case already; one dict serves every lookup below.
        headers = {name.decode("latin-1"): value.decode("latin-1")
                   for name, value in request.scope["headers"]}
        try:
            _check_transport(request.method, headers)
            method, seqid, args = _decode_call(service, await request.body())
        except _Rejected as rejected:
            return rejected.response
        calls.record(method)
        if faults.latency_s > 0:
            await asyncio.sleep(faults.latency_s)
        fault = faults.draw(method)
        if fault in _ERROR_FAULTS:
            status, error_class = _ERROR_FAULTS[fault]
            return _error_response(status, error_class, f"injected fault {fault}")
        if fault == "timeout":
            await asyncio.sleep(faults.timeout_s())
            return _error_response(504, RESULT_UNKNOWN, "injected fault timeout")
        handler = handlers.get(method)
        if handler is None:
            return _error_response(500, RESULT_UNEXPECTED, f"the sandbox does not serve {method}")
        response = _reply(service, method, seqid, handler, args)
        if fault == "timeout_after":
            await asyncio.sleep(faults.timeout_s())
        return response

    return endpoint


class WoodyApp:
    """A peer app: the Thrift endpoint at "/", anything else (the control API) to `control`.

    Every peer call of a test or benchmark goes to the endpoint, so it is called directly,
    without Starlette's routing and middleware around it.
    """

    def __init__(self, endpoint: Endpoint, control: ASGIApp) -> None:
        self._endpoint = endpoint
        self._control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _route_path(scope) == "/":
            response = await self._endpoint(Request(scope, receive))
            await response(scope, receive, send)
        else:
            await self._control(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below the app's mount point (the scope's path includes its root path)."""
    path, root = scope["path"], scope.get("root_path", "")
    return (path[len(root):] if root and path.startswith(root) else path) or "/"


def create_woody_app(service: Any, handlers: Mapping[str, Handler], faults: Faults,
                     calls: CallLog, control: Sequence[BaseRoute]) -> WoodyApp:
    """A peer app: the Thrift endpoint at "/", the `control` routes (`/_sandbox/...`) beside."""
    return WoodyApp(woody_endpoint(service, handlers, faults, calls),
                    sandbox_app(control))
