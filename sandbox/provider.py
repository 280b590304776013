"""An in-memory provider adapter: `POST /v1/sessions/process`, idempotent by `session_id`.

By default every session succeeds at its first call. A scenario (`POST /_sandbox/scenarios`)
queues the answers the next calls get, for the sessions of one invoice or one session, one
answer per call:

    {"invoice_id": "inv-1", "answers": [{"status": "processing", "poll_in_s": 0},
                                        {"status": "failed",
                                         "failure": {"code": "timeout", "transient": true}},
                                        {"status": "succeeded"}]}

Once a session has succeeded or failed for good (a failure that is not transient) it answers
the same again, the same `trx_id` included; a transient failure lets the next call go on.
The same `session_id` with a different target, payment or cost is refused with 409.
Fault operations are named `sessions/process <invoice_id> <session_id>` (for `match`).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.control import control_routes, error, parse_control_body, sandbox_app
from sandbox.faults import JSON_FAULTS, Faults
from sandbox.json_peer import answer


class _Cost(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: StrictInt = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class _Route(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider_id: StrictInt
    terminal_id: StrictInt


class _CartLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product: str = Field(min_length=1)
    quantity: StrictInt = Field(gt=0)
    price: _Cost


class _Cart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: list[_CartLine] = Field(min_length=1)


class ProcessRequest(BaseModel):
    """The body of `POST /v1/sessions/process` (unknown fields ignored, as a peer would; the
    known optional ones are checked: route, reason, cart, trx_extra)."""

    model_config = ConfigDict(extra="ignore")
    session_id: str = Field(min_length=1)
    target: Literal["captured", "cancelled"]
    invoice_id: str = Field(min_length=1)
    payment_id: str = Field(min_length=1)
    cost: _Cost
    trx_id: str | None = None
    route: _Route | None = None
    reason: str | None = None
    cart: _Cart | None = None
    trx_extra: dict[str, str] | None = None


class FailureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1)
    transient: StrictBool


class ScenarioAnswer(BaseModel):
    """One queued answer; `trx_id` of a success defaults to the request's or a stable one."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["processing", "succeeded", "failed"]
    poll_in_s: StrictInt = Field(0, ge=0)
    trx_id: str | None = None
    failure: FailureSpec | None = None

    @model_validator(mode="after")
    def _failure_iff_failed(self) -> ScenarioAnswer:
        if (self.status == "failed") != (self.failure is not None):
            raise ValueError("'failure' is required for a failed answer and only for it")
        return self


class Scenario(BaseModel):
    """Body of `POST /_sandbox/scenarios`: exactly one of `invoice_id`, `session_id`."""

    model_config = ConfigDict(extra="forbid")
    invoice_id: str | None = None
    session_id: str | None = None
    answers: list[ScenarioAnswer]

    @model_validator(mode="after")
    def _one_key(self) -> Scenario:
        if (self.invoice_id is None) == (self.session_id is None):
            raise ValueError("give exactly one of 'invoice_id' and 'session_id'")
        return self

    @property
    def key(self) -> str:
        return f"session:{self.session_id}" if self.session_id else f"invoice:{self.invoice_id}"


class SessionConflict(Exception):
    """The session id was already used for another target, payment or cost."""


@dataclass
class _Session:
    identity: tuple[Any, ...]
    calls: int = 0
    last_body: dict[str, Any] = field(default_factory=dict)
    answers: list[str] = field(default_factory=list)  # the statuses answered, in order
    final: dict[str, Any] | None = None  # the answer repeated once the session is over


class ProviderState:
    """Sessions and queued scenarios; every operation takes one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._scenarios: dict[str, deque[ScenarioAnswer]] = {}

    def reset(self) -> None:
        with self._lock:
            self._sessions = {}
            self._scenarios = {}

    def set_scenario(self, scenario: Scenario) -> None:
        with self._lock:
            self._scenarios[scenario.key] = deque(scenario.answers)

    def process(self, request: ProcessRequest, body: dict[str, Any]) -> dict[str, Any]:
        identity = (request.target, request.invoice_id, request.payment_id,
                    request.cost.amount, request.cost.currency)
        with self._lock:
            session = self._sessions.setdefault(request.session_id, _Session(identity))
            if session.identity != identity:
                raise SessionConflict(
                    f"session {request.session_id} is for {session.identity}, not {identity}")
            session.calls += 1
            session.last_body = body
            result = session.final or self._next_answer(request, session)
            session.answers.append(result["status"])
            return result

    def _next_answer(self, request: ProcessRequest, session: _Session) -> dict[str, Any]:
        spec = (self._pop(f"session:{request.session_id}")
                or self._pop(f"invoice:{request.invoice_id}")
                or ScenarioAnswer(status="succeeded"))
        if spec.status == "processing":
            return {"status": "processing", "poll_in_s": spec.poll_in_s}
        if spec.status == "succeeded":
            trx_id = (spec.trx_id or request.trx_id
                      or f"trx-{request.invoice_id}-{request.payment_id}")
            session.final = {"status": "succeeded", "trx_id": trx_id}
            return session.final
        assert spec.failure is not None  # the model guarantees it for a failed answer
        result = {"status": "failed", "failure": spec.failure.model_dump()}
        if not spec.failure.transient:
            session.final = result
        return result

    def _pop(self, key: str) -> ScenarioAnswer | None:
        queue = self._scenarios.get(key)
        return queue.popleft() if queue else None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "sessions": {
                    session_id: {"calls": s.calls, "last_body": s.last_body,
                                 "answers": list(s.answers),
                                 "final": s.final["status"] if s.final else None}
                    for session_id, s in self._sessions.items()
                },
                "scenarios": {key: [a.model_dump(exclude_none=True) for a in queue]
                              for key, queue in self._scenarios.items() if queue},
            }


def create_app(state: ProviderState | None = None, faults: Faults | None = None) -> Starlette:
    """The provider adapter double, with control under `/_sandbox/`."""
    state = state or ProviderState()
    faults = faults or Faults(JSON_FAULTS)

    async def process(request: Request) -> Response:
        parsed = await parse_control_body(request, ProcessRequest)
        body = await request.json()

        def handle() -> Response:
            try:
                return JSONResponse(state.process(parsed, body))
            except SessionConflict as exc:
                return error(409, "session_conflict", str(exc))

        return await answer(faults, f"sessions/process {parsed.invoice_id} {parsed.session_id}",
                            handle)

    async def set_scenario(request: Request) -> Response:
        scenario = await parse_control_body(request, Scenario)
        state.set_scenario(scenario)
        return JSONResponse(state.snapshot()["scenarios"])

    return sandbox_app([
        Route("/v1/sessions/process", process, methods=["POST"]),
        Route("/_sandbox/scenarios", set_scenario, methods=["POST"]),
        *control_routes(state, faults),
    ])
