"""An in-memory push sender: `POST /v1/push/silent` records the push; state lists them.

Fault operations are named `push/silent <yandex_uid>` (for `match`).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.control import control_routes, parse_control_body, sandbox_app
from sandbox.faults import JSON_FAULTS, Faults
from sandbox.json_peer import answer


class SilentPush(BaseModel):
    model_config = ConfigDict(extra="ignore")
    yandex_uid: str = Field(min_length=1)
    payload: dict[str, Any]


class PushState:
    """The pushes received, oldest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pushes: list[dict[str, Any]] = []

    def reset(self) -> None:
        with self._lock:
            self._pushes = []

    def record(self, push: SilentPush) -> None:
        with self._lock:
            self._pushes.append({"yandex_uid": push.yandex_uid, "payload": push.payload,
                                 "received_at": datetime.now(UTC).isoformat()})

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"pushes": list(self._pushes)}


def create_app(state: PushState | None = None, faults: Faults | None = None) -> Starlette:
    """The push sender double, with control under `/_sandbox/`."""
    state = state or PushState()
    faults = faults or Faults(JSON_FAULTS)

    async def silent(request: Request) -> Response:
        push = await parse_control_body(request, SilentPush)

        def handle() -> Response:
            state.record(push)
            return JSONResponse({})

        return await answer(faults, f"push/silent {push.yandex_uid}", handle)

    return sandbox_app([
        Route("/v1/push/silent", silent, methods=["POST"]),
        *control_routes(state, faults),
    ])
