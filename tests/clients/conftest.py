"""Sandbox woody peers served over loopback for the client tests.

`woody_peers` serves both Accounter and Limiter doubles (one server per session, reset before
every test); `canned_peer` is a bare HTTP endpoint that records what a client sends and
answers whatever the test says, for checking the transport byte by byte.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.control_client import control
from sandbox.server import serve_in_thread
from sandbox.woody_peers import ACCOUNTER_PATH, LIMITER_PATH, create_app


@dataclass
class WoodyPeers:
    """URLs of the sandbox peers and shortcuts to their control API."""

    base_url: str

    @property
    def accounter_url(self) -> str:
        return self.base_url + ACCOUNTER_PATH

    @property
    def limiter_url(self) -> str:
        return self.base_url + LIMITER_PATH

    def _control(self, peer_url: str, method: str, path: str, body: Any = None) -> Any:
        return control(peer_url, path, body, method)

    def reset(self) -> None:
        for url in (self.accounter_url, self.limiter_url):
            self._control(url, "POST", "reset")

    def accounter_state(self) -> dict[str, Any]:
        return self._control(self.accounter_url, "GET", "state")

    def limiter_state(self) -> dict[str, Any]:
        return self._control(self.limiter_url, "GET", "state")

    def accounter_faults(self, spec: dict[str, Any]) -> None:
        self._control(self.accounter_url, "POST", "faults", spec)

    def limiter_faults(self, spec: dict[str, Any]) -> None:
        self._control(self.limiter_url, "POST", "faults", spec)

    def add_account(self, currency: str, account_id: int | None = None) -> int:
        body = {"currency": currency} if account_id is None else {"currency": currency,
                                                                   "id": account_id}
        return self._control(self.accounter_url, "POST", "accounts", body)["id"]

    def add_limit(self, limit_id: str, currency: str, upper_boundary: int | None = None) -> None:
        self._control(self.limiter_url, "POST", "limits",
                      {"id": limit_id, "currency": currency, "upper_boundary": upper_boundary})

    def accounter_calls(self, method: str) -> int:
        return self.accounter_state()["calls"].get(method, 0)

    def limiter_calls(self, method: str) -> int:
        return self.limiter_state()["calls"].get(method, 0)


@pytest.fixture(scope="session")
def _woody_peers_server() -> Iterator[str]:
    server = serve_in_thread(create_app())
    yield server.url
    server.stop()


@pytest.fixture
def woody_peers(_woody_peers_server: str) -> WoodyPeers:
    peers = WoodyPeers(_woody_peers_server)
    peers.reset()
    return peers


@dataclass(frozen=True)
class Recorded:
    method: str
    headers: dict[str, str]
    body: bytes


Answer = Callable[[Recorded], Response]


@dataclass
class CannedPeer:
    """Records requests; answers each with `answer(request)` (default: an empty 503)."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    answer: Answer = field(default=lambda recorded: Response(status_code=503))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, recorded: Recorded) -> Response:
        with self._lock:
            self.requests.append(recorded)
            answer = self.answer
        return answer(recorded)


@pytest.fixture(scope="session")
def _canned_server() -> Iterator[tuple[str, list[CannedPeer]]]:
    current: list[CannedPeer] = []

    async def endpoint(request: Request) -> Response:
        recorded = Recorded(request.method, {k.lower(): v for k, v in request.headers.items()},
                            await request.body())
        return current[0].record(recorded)

    app = Starlette(routes=[Route("/rpc", endpoint, methods=["GET", "POST"])])
    server = serve_in_thread(app)
    yield server.url + "/rpc", current
    server.stop()


@pytest.fixture
def canned_peer(_canned_server: tuple[str, list[CannedPeer]]) -> CannedPeer:
    url, current = _canned_server
    peer = CannedPeer(url)
    current[:] = [peer]
    return peer
