"""Local processes for tests, the demo and benchmarks: a Celery worker, beat, any command.

Development tooling beside the sandbox peers: they run exactly as in production
(`celery -A workers worker`), started, killed (SIGKILL of the whole process group) and
restarted on demand.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class ManagedProcess:
    """A command in its own process group, its output in a log file, ready when a line says so."""

    def __init__(self, command: list[str], log_path: Path, ready_marker: bytes,
                 env: dict[str, str] | None = None) -> None:
        self.command = command
        self.log_path = log_path
        self.ready_marker = ready_marker
        self.env = env
        self.proc: subprocess.Popen | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env or os.environ.copy(), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        try:
            self._wait_ready(offset, timeout)
        except RuntimeError:
            self.kill()  # one that never became ready must not linger behind its caller
            raise

    def _wait_ready(self, offset: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.command[:4]} exited:\n{self.log_tail()}")
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                if self.ready_marker in log.read():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.command[:4]} not ready in {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the process log, so a failed start explains itself in CI output."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the whole process group: the parent and its pool children die at once."""
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def worker(log_path: Path, *, concurrency: int = 2, name: str = "celgate",
           env: dict[str, str] | None = None) -> ManagedProcess:
    """`celery -A workers worker` consuming every queue, as plain production workers do."""
    from workers.celery_app import QUEUES  # the runtime's queues; only a worker needs them

    return ManagedProcess(
        [
            sys.executable, "-m", "celery", "-A", "workers", "worker",
            "-Q", ",".join(QUEUES), "--pool", "prefork", "--concurrency", str(concurrency),
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-n", f"{name}-{os.getpid()}@%h",
        ],
        log_path, b" ready.", env,
    )


def beat(log_path: Path, schedule_dir: Path, *, env: dict[str, str] | None = None
         ) -> ManagedProcess:
    return ManagedProcess(
        [sys.executable, "-m", "celery", "-A", "workers", "beat",
         "--schedule", str(schedule_dir / "celerybeat-schedule")],
        log_path, b"beat: Starting", env,
    )


def sandbox_peers(log_path: Path, *, port_offset: int = 0, only: str | None = None,
                  env: dict[str, str] | None = None) -> ManagedProcess:
    """`celgate-sandbox`: the sandbox peers (all, or the comma-separated `only`) on their
    default ports plus `port_offset`, where `sandbox.peers.peer_env` points the settings."""
    command = [sys.executable, "-m", "sandbox", "--port-offset", str(port_offset)]
    if only is not None:
        command += ["--only", only]
    return ManagedProcess(command, log_path, b"sandbox peers ready", env)
