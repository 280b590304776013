"""Processes of the operations tests: an API server, a Flower, a worker serving metrics."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.processes import ManagedProcess


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def closed_port_url(scheme: str) -> str:
    """A URL nothing listens on: the port was free a moment ago and is not bound."""
    return f"{scheme}://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def start_api(tmp_path_factory) -> Iterator[Callable[..., str]]:
    """Start `celgate-api` as operators do, with some variables changed; its base URL."""
    tmp_path: Path = tmp_path_factory.mktemp("api")
    started: list[ManagedProcess] = []

    def start(**env: str) -> str:
        port = free_port()
        process = ManagedProcess(
            [sys.executable, "-m", "celgate.api"], tmp_path / f"api-{port}.log",
            b"Uvicorn running on",
            env={**os.environ, "API_PORT": str(port), "READY_CHECK_TIMEOUT_S": "1", **env})
        process.start()
        started.append(process)
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.stop()
