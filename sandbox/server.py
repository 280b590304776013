"""Serving sandbox apps with uvicorn: several apps in one process, or one app in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

# A sandbox request may sit in a "timeout" fault; shutting down must not wait for it.
_GRACEFUL_SHUTDOWN_S = 1


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to whoever runs it.

    uvicorn installs process-wide signal handlers per server; with several servers in one loop
    only the last one would hear SIGTERM, so `run_apps` handles signals for all of them.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(app: ASGIApp, host: str, port: int) -> _Server:
    # No proxy sits in front of a sandbox peer: skip rewriting client addresses per request.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                            access_log=False, proxy_headers=False,
                            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S)
    return _Server(config)


def _bound_port(server: uvicorn.Server) -> int:
    return server.servers[0].sockets[0].getsockname()[1]


@dataclass(frozen=True)
class Binding:
    """One app to serve on one address (port 0: any free port)."""

    name: str
    app: ASGIApp
    host: str
    port: int


@dataclass(frozen=True)
class Listening:
    name: str
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


async def run_apps(bindings: Sequence[Binding],
                   on_ready: Callable[[list[Listening]], None] | None = None) -> None:
    """Serve every binding until SIGINT/SIGTERM; call `on_ready` once all are listening.

    When one server cannot start (address in use) the others are stopped and SystemExit raised.
    """
    servers = [_server(b.app, b.host, b.port) for b in bindings]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    stopping = asyncio.create_task(stop.wait())
    try:
        while not all(server.started for server in servers):
            if any(task.done() for task in tasks):
                raise SystemExit("a sandbox peer failed to start")
            await asyncio.sleep(0.02)
        if on_ready is not None:
            on_ready([Listening(b.name, b.host, _bound_port(s))
                      for b, s in zip(bindings, servers, strict=True)])
        await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)


class ThreadedServer:
    """One app served from a background thread; for tests."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _server(app, host, port)
        self._thread = threading.Thread(target=self._server.run, name="sandbox-server",
                                        daemon=True)
        self.host = host
        self.port = port

    def start(self, timeout_s: float = 10.0) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox server on {self.host}:{self.port} did not start")
            time.sleep(0.01)
        self.port = _bound_port(self._server)
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=_GRACEFUL_SHUTDOWN_S + 5)


def serve_in_thread(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> ThreadedServer:
    """Start `app` in a thread and return once it listens (`.url`, `.port`, `.stop()`)."""
    return ThreadedServer(app, host, port).start()
