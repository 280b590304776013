"""A celgate fleet on test hosts: workers and beats in network namespaces, servers beside them.

This machine (the root namespace) runs a private PostgreSQL and Redis, the sandbox peers and
the API, each listening on the bridge address of a `HostNetwork`; each host runs what a
production host runs (`celery -A workers worker`, `celery -A workers beat`) and reaches them
only over its veth link. Nothing of the machine's shared servers is used or restarted.

    with Fleet(hosts=3, workdir=path) as fleet:
        fleet.start_worker(fleet.hosts[0]); fleet.start_beat(fleet.hosts[0])
        fleet.api.post("/v1/payments/register", json=...)
        fleet.network.cut(fleet.hosts[1])
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

import httpx
from sqlalchemy import Engine, create_engine

from sandbox import peers as registry
from sandbox.control_client import Sandbox
from sandbox.processes import ROOT, ManagedProcess, beat, worker
from tests.support import env
from tests.support.netns import Host, HostNetwork
from tests.support.private_servers import PrivatePostgres, PrivateRedis

API_TOKEN = "fleet-token"


class Fleet:
    def __init__(self, hosts: int, workdir: Path, settings: dict[str, str] | None = None
                 ) -> None:
        self.workdir = workdir
        self.settings = settings or {}  # environment settings over the test tuning
        self.network = HostNetwork(hosts)
        self._stack = ExitStack()
        self.env: dict[str, str] = {}
        self.processes: dict[str, ManagedProcess] = {}

    @property
    def hosts(self) -> list[Host]:
        return self.network.hosts

    def __enter__(self) -> Fleet:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        stack = self._stack
        if threading.current_thread() is threading.main_thread():
            # A run stopped by SIGTERM (a CI timeout) unwinds and removes its hosts too.
            previous = signal.signal(signal.SIGTERM, _terminated)
            stack.callback(signal.signal, signal.SIGTERM, previous)
        stack.enter_context(self.network)
        gateway = self.network.gateway
        self.redis = redis = PrivateRedis(self.workdir / "redis", also_on=[gateway])
        redis.start()
        stack.callback(redis.stop)
        self.postgres = postgres = PrivatePostgres(also_on=[gateway])
        postgres.init()
        postgres.start()
        stack.callback(postgres.remove)
        offset = _free_port_offset(gateway)
        api_port = _free_port(gateway)
        self.env = {
            **os.environ,
            **{k: v for k, v in env.test_env(0).items()
               if k not in ("CELGATE_TEST_SLOT", "WORKER_EXTRA_IMPORTS")},
            "DATABASE_URL": postgres.url.rsplit("/", 1)[0] + "/celgate_fleet",
            "CELGATE_TEST_BROKER": "redis",
            "BROKER_URL": redis.url(0),
            "REDIS_URL": redis.url(1),
            **registry.peer_env(offset, host=gateway),
            "API_HOST": gateway,
            "API_PORT": str(api_port),
            "API_TOKEN": API_TOKEN,
            # Lost work comes back within a second or two of its redelivery allowance.
            "SWEEP_INTERVAL_S": "1",
            **self.settings,
        }
        subprocess.run([sys.executable, "-m", "celgate.cli", "migrate", "--fresh"], cwd=ROOT,
                       env=self.env, check=True, capture_output=True)
        self._start_process("sandbox", ManagedProcess(
            [sys.executable, "-m", "sandbox", "--host", gateway, "--port-offset", str(offset)],
            self.workdir / "sandbox.log", b"sandbox peers ready", self.env))
        self._start_process("api", ManagedProcess(
            [sys.executable, "-m", "celgate.api"], self.workdir / "api.log",
            b"Uvicorn running on", self.env))
        self.api = stack.enter_context(httpx.Client(
            base_url=f"http://{gateway}:{api_port}", timeout=30,
            headers={"Authorization": f"Bearer {API_TOKEN}"}))
        self.peers = Sandbox({peer.name: self.env[peer.url_setting.upper()].rstrip("/")
                              for server in registry.SERVERS for peer in server.peers})
        self.database: Engine = create_engine(self.env["DATABASE_URL"], pool_size=2)
        stack.callback(self.database.dispose)

    def _start_process(self, name: str, process: ManagedProcess, *, on_host: bool = False
                       ) -> ManagedProcess:
        # Stopped at the end even when it never became ready. A host's processes die as its
        # power would go: a warm shutdown of a worker whose link is down would only wait.
        self._stack.callback(process.kill if on_host else process.stop)
        self.processes[name] = process
        process.start(timeout=60)
        return process

    def start_worker(self, host: Host, concurrency: int = 2) -> ManagedProcess:
        process = worker(self.workdir / f"worker-{host.name}.log", concurrency=concurrency,
                         name=f"fleet-{host.name}", env=self.env)
        process.command = host.command(process.command)
        return self._start_process(f"worker-{host.name}", process, on_host=True)

    def start_beat(self, host: Host) -> ManagedProcess:
        schedule_dir = self.workdir / f"beat-{host.name}"
        schedule_dir.mkdir(exist_ok=True)
        process = beat(self.workdir / f"beat-{host.name}.log", schedule_dir, env=self.env)
        process.command = host.command(process.command)
        return self._start_process(f"beat-{host.name}", process, on_host=True)

    def logs(self) -> str:
        """The tail of every process log, for a failure message."""
        return "\n".join(f"--- {name}\n{process.log_tail(15)}"
                         for name, process in self.processes.items())


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(f"terminated by signal {signum}")


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _free_port_offset(address: str) -> int:
    """A shift of the sandbox's default ports at which all of them are free on `address`
    (the bridge address is the run's own, but a wildcard listener could hold a port)."""
    for offset in range(21000, 30000, 100):
        try:
            for server in registry.SERVERS:
                with socket.socket() as s:
                    s.bind((address, server.default_port + offset))
        except OSError:
            continue
        return offset
    raise RuntimeError(f"no free sandbox ports on {address}")
