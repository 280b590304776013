"""The demo's processes: their ports, environment and logs; started and stopped together."""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.table import Table

from celgate.demo.talk import DemoFailed, console, say
from sandbox import peers as registry
from sandbox.processes import ROOT, ManagedProcess, beat, sandbox_peers, worker

DEMO_ENV = {
    "API_TOKEN": "demo-token",
    "BILLING_CALLBACK_SECRET": "demo-secret",
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "text",
}
# Default ports of what the demo starts besides the sandbox; `--port-offset N` adds N to each.
API_PORT, FLOWER_PORT, METRICS_PORT = 8080, 5555, 9808
LOGS_ROOT = ROOT / ".demo"


@dataclass(frozen=True)
class Ports:
    offset: int

    @property
    def api(self) -> int:
        return API_PORT + self.offset

    @property
    def flower(self) -> int:
        return FLOWER_PORT + self.offset

    @property
    def metrics(self) -> int:
        return METRICS_PORT + self.offset

    def all(self) -> dict[str, int]:
        ports = {"API": self.api, "Flower": self.flower, "worker metrics": self.metrics}
        for server in registry.SERVERS:
            ports[f"sandbox ({server.name})"] = server.default_port + self.offset
        return ports


def configure(ports: Ports, flower_password: str) -> None:
    """The demo's environment, before anything reads settings: shifted ports, a Flower
    password for this run, readable logs."""
    for key, value in DEMO_ENV.items():
        os.environ.setdefault(key, value)
    os.environ["API_PORT"] = str(ports.api)
    os.environ["WORKER_METRICS_PORT"] = str(ports.metrics)
    os.environ["FLOWER_BASIC_AUTH"] = f"demo:{flower_password}"
    os.environ.update(registry.peer_env(ports.offset))
    from celgate.settings import reload

    reload()


def busy_ports(ports: Ports) -> list[str]:
    """What already listens where the demo would, e.g. an earlier demo still running."""
    busy = []
    for what, port in sorted(set(ports.all().items()), key=lambda item: item[1]):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                busy.append(f"{port} ({what})")
    return busy


def prepare_logs() -> Path:
    """A fresh directory for this run's logs; `.demo/latest` points at it."""
    logs = LOGS_ROOT / datetime.now().strftime("%Y%m%d-%H%M%S")
    logs.mkdir(parents=True, exist_ok=True)
    latest = LOGS_ROOT / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(logs.name)
    return logs


def start_processes(ports: Ports, logs: Path) -> list[ManagedProcess]:
    env = os.environ.copy()
    processes = [
        sandbox_peers(logs / "sandbox.log", port_offset=ports.offset, env=env),
        worker(logs / "worker.log", concurrency=2, name="demo", env=env),
        beat(logs / "beat.log", logs, env=env),
        ManagedProcess([sys.executable, "-m", "celgate.api"], logs / "api.log",
                       b"Uvicorn running on", env),
        ManagedProcess([sys.executable, "-m", "celery", "-A", "workers", "flower",
                        "--address=127.0.0.1", f"--port={ports.flower}"], logs / "flower.log",
                       b"Visit me at", env),
    ]
    started: list[ManagedProcess] = []
    try:
        for process in processes:
            process.start()
            started.append(process)
            say(f"   started {process.log_path.stem:<8} "
                f"(log: {process.log_path.relative_to(ROOT)})")
    except RuntimeError as exc:
        stop_processes(started)
        raise DemoFailed(str(exc)) from None
    return started


def show_urls(ports: Ports, logs: Path) -> None:
    user, password = os.environ["FLOWER_BASIC_AUTH"].split(":", 1)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    base = f"http://127.0.0.1:{ports.api}"
    table.add_row("API docs", f"{base}/docs  (ReDoc: {base}/redoc)")
    table.add_row("API token", os.environ["API_TOKEN"])
    table.add_row("Flower", f"http://127.0.0.1:{ports.flower}  (user {user}, password "
                            f"{password})")
    table.add_row("worker metrics", f"http://127.0.0.1:{ports.metrics}/metrics")
    table.add_row("API metrics", f"{base}/metrics  (bearer token)")
    table.add_row("logs", str(logs.relative_to(ROOT)))
    console.print(table)


def stop_processes(processes: list[ManagedProcess]) -> None:
    for process in reversed(processes):
        process.stop()
