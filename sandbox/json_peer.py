"""What the JSON-over-HTTP sandbox peers share: answering through the fault plan.

Fault names (`JSON_FAULTS`): "500", "502", "503", "504", "429" answer that status without
running the call; "timeout" waits `timeout_ms` then answers 504 without running it;
"timeout_after" runs the call, then waits before answering (the caller gives up although the
effect happened); "reset" runs the call, then drops the connection after the status line
(the caller cannot know whether it happened).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sandbox.control import error
from sandbox.faults import JSON_FAULTS, Faults

_STATUS_FAULTS = frozenset(name for name in JSON_FAULTS if name.isdigit())


class DroppedConnection(Response):
    """Sends the status line and headers of `response`, then closes the connection."""

    def __init__(self, response: Response) -> None:
        self._inner = response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self._inner.status_code,
                    "headers": self._inner.raw_headers})
        # Returning without the body makes the server close the connection mid-answer.


async def answer(faults: Faults, operation: str, handle: Callable[[], Response]) -> Response:
    """Run `handle` (the call itself) unless the fault drawn for `operation` prevents it."""
    if faults.latency_s > 0:
        await asyncio.sleep(faults.latency_s)
    fault = faults.draw(operation)
    if fault in _STATUS_FAULTS:
        return error(int(fault), "injected_fault", f"injected fault {fault}")
    if fault == "timeout":
        await asyncio.sleep(faults.timeout_s())
        return error(504, "injected_fault", "injected fault timeout")
    response = handle()
    if fault == "timeout_after":
        await asyncio.sleep(faults.timeout_s())
    if fault == "reset":
        return DroppedConnection(response)
    return response
