"""The control API every sandbox peer serves under `/_sandbox/`, beside its real protocol.

`GET state` (what the peer holds, the calls it received, its fault plan), `POST reset` (state,
call counts and faults) and `POST|GET|DELETE faults` are the same for every peer; each peer
adds its own seeding routes. Apps built with `sandbox_app` answer a body that
`parse_control_body` refuses with a 400, so routes need not catch it; every error has the
`{code, message}` body of `error`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.faults import Faults, FaultSpecError

ModelT = TypeVar("ModelT", bound=BaseModel)


class PeerState(Protocol):
    """The in-memory state of a sandbox peer, as its control routes see it."""

    def snapshot(self) -> dict[str, Any]: ...

    def reset(self) -> None: ...


class CallLog:
    """How many well-formed calls each method received (faulted ones included)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def record(self, method: str) -> None:
        with self._lock:
            self._counts[method] = self._counts.get(method, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        with self._lock:
            self._counts = {}


class BadControlRequest(ValueError):
    """A control-API body that is not what the route expects; the message says why."""


def error(status: int, code: str, message: str) -> JSONResponse:
    """The `{code, message}` error body every sandbox answers with."""
    return JSONResponse({"code": code, "message": message}, status_code=status)


async def parse_control_body(request: Request, model: type[ModelT]) -> ModelT:
    try:
        data = await request.json()
    except ValueError as exc:
        raise BadControlRequest("the body is not valid JSON") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                             for e in exc.errors())
        raise BadControlRequest(problems) from exc


def control_routes(state: PeerState, faults: Faults, calls: CallLog | None = None
                   ) -> list[BaseRoute]:
    """`GET /_sandbox/state`, `POST /_sandbox/reset` and the fault routes of one peer."""

    async def inspect(request: Request) -> JSONResponse:
        snapshot = {**state.snapshot(), "faults": faults.snapshot()}
        if calls is not None:
            snapshot["calls"] = calls.snapshot()
        return JSONResponse(snapshot)

    async def reset(request: Request) -> JSONResponse:
        state.reset()
        if calls is not None:
            calls.clear()
        faults.clear()
        return JSONResponse({"reset": True})

    async def configure_faults(request: Request) -> JSONResponse:
        try:
            spec = await request.json()
        except ValueError:
            return error(400, "bad_fault_spec", "the body is not valid JSON")
        try:
            faults.configure(spec)
        except FaultSpecError as exc:
            return error(400, "bad_fault_spec", str(exc))
        return JSONResponse(faults.snapshot())

    async def clear_faults(request: Request) -> JSONResponse:
        faults.clear()
        return JSONResponse(faults.snapshot())

    async def show_faults(request: Request) -> JSONResponse:
        return JSONResponse(faults.snapshot())

    return [Route("/_sandbox/state", inspect, methods=["GET"]),
            Route("/_sandbox/reset", reset, methods=["POST"]),
            Route("/_sandbox/faults", configure_faults, methods=["POST"]),
            Route("/_sandbox/faults", clear_faults, methods=["DELETE"]),
            Route("/_sandbox/faults", show_faults, methods=["GET"])]


def sandbox_app(routes: Sequence[BaseRoute]) -> Starlette:
    """A sandbox's HTTP app: `routes`, with a refused control body answered 400."""
    return Starlette(routes=list(routes),
                     exception_handlers={BadControlRequest: _bad_control_request})


async def _bad_control_request(request: Request, exc: Exception) -> Response:
    return error(400, "bad_request", str(exc))
