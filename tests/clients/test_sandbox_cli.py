"""`celgate-sandbox` as a separate process: every registered peer listens and answers."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox import peers as registry
from sandbox.control_client import SandboxControlError, control
from tests.support.waiting import wait_for

COMMAND = str(Path(sys.executable).parent / "celgate-sandbox")


def _free_offset() -> int:
    """A port offset at which every default sandbox port is free right now."""
    for _ in range(50):
        offset = random.randrange(20_000, 50_000, 100)
        try:
            for server in registry.SERVERS:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", server.default_port + offset))
        except OSError:
            continue
        return offset
    raise RuntimeError("no free port offset found")


class Running:
    def __init__(self, *args: str, tmp_path: Path) -> None:
        tmp_path.mkdir()
        self.ready_file = tmp_path / "ready"
        self.log = tmp_path / "sandbox.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([COMMAND, *args, "--ready-file", str(self.ready_file)],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait_ready(self) -> dict[str, str]:
        wait_for(lambda: self.ready_file.exists() or self.proc.poll() is not None,
                 timeout=30, what="the sandbox ready file")
        assert self.proc.poll() is None, self.log.read_text()
        return dict(line.split(" ", 1) for line in self.ready_file.read_text().splitlines())

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(15)


Start = Callable[..., Running]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Starts `celgate-sandbox` with the given flags; stops whatever still runs at the end."""
    started: list[Running] = []

    def run(*args: str) -> Running:
        running = Running(*args, tmp_path=tmp_path / str(len(started)))
        started.append(running)
        return running

    yield run
    for running in started:
        running.stop()


def test_every_registered_peer_answers_on_its_default_port_plus_offset(start: Start) -> None:
    offset = _free_offset()
    sandbox = start("--port-offset", str(offset))
    urls = sandbox.wait_ready()

    assert set(urls) == set(registry.PEER_NAMES)
    for server in registry.SERVERS:
        for peer in server.peers:
            assert urls[peer.name] == (
                f"http://127.0.0.1:{server.default_port + offset}{peer.path}")
            assert "faults" in control(urls[peer.name], "state", method="GET")
    assert "sandbox peers ready" in sandbox.log.read_text()
    assert sandbox.stop() == 0


def test_only_runs_the_named_peers(start: Start) -> None:
    offset = _free_offset()
    urls = start("--only", "provider,limiter", "--port-offset", str(offset)).wait_ready()
    # The woody server serves the Limiter and the Accounter together.
    assert set(urls) == {"provider", "limiter", "accounter"}
    with pytest.raises(SandboxControlError, match="ConnectionError"):
        control(f"http://127.0.0.1:{8026 + offset}", "state", method="GET")


def test_an_unknown_peer_name_is_refused(start: Start) -> None:
    sandbox = start("--only", "bank")
    assert sandbox.proc.wait(15) != 0
    assert "unknown sandbox peers ['bank']" in sandbox.log.read_text()


def test_a_busy_port_stops_every_peer(start: Start) -> None:
    offset = _free_offset()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 8025 + offset))
        busy.listen()
        sandbox = start("--port-offset", str(offset))
        assert sandbox.proc.wait(30) != 0
    assert not sandbox.ready_file.exists()
