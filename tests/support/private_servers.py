"""Servers a test owns: a private Redis or PostgreSQL it may restart at will.

Tests never restart the machine's shared servers; one that needs a broker or database to go
away starts its own on a free port, points the worker (by environment) and this process (by
`pointed_at`) at it, and removes it afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from workers.celery_app import app
from workers.db import dispose_engine
from workers.settings import get_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, up: bool, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} not {'up' if up else 'down'} after {timeout}s")


class PrivateRedis:
    """A redis-server without persistence, as production runs it here: a restart loses all.

    It listens on loopback and on `also_on` (addresses other network namespaces reach it by);
    `url` names the first of those, or loopback.
    """

    def __init__(self, workdir: Path, also_on: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.addresses = ["127.0.0.1", *also_on]
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{self.addresses[-1]}:{self.port}/{db}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", *self.addresses, "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir),
             # No password: the other addresses are the test's own namespaces, not a network.
             "--protected-mode", "no" if len(self.addresses) > 1 else "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, up=True)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        _wait_port(self.port, up=False)

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb in a temporary folder), trust auth on loopback.

    `also_on` adds listening addresses, each with trust auth for its /24 (the test's own
    network namespaces); `url` names the last of them, or loopback.
    """

    def __init__(self, also_on: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.addresses = ["127.0.0.1", *also_on]
        # Its own folder: pytest's temporary folders are closed to the postgres user.
        self.workdir = Path(tempfile.mkdtemp(prefix="celgate-pg-"))
        self.datadir = self.workdir / "pgdata"
        self.logfile = self.workdir / "postgres.log"
        self.bindir = _pg_bindir()
        self._as_postgres = os.geteuid() == 0  # PostgreSQL refuses to run as root
        if self._as_postgres:
            shutil.chown(self.workdir, "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@{self.addresses[-1]}:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        subprocess.run([*prefix, *command], check=True, capture_output=True)

    def init(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                  "--auth=trust", "--no-sync")
        with open(self.datadir / "pg_hba.conf", "a") as hba:
            for address in self.addresses[1:]:
                hba.write(f"host all all {address.rsplit('.', 1)[0]}.0/24 trust\n")

    def start(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile),
                  "-w", "-o", f"-p {self.port} -k {self.datadir}"
                  f" -c listen_addresses={','.join(self.addresses)} -c fsync=off", "start")
        _wait_port(self.port, up=True)

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate",
                  "-w", "stop")

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _pg_bindir() -> Path:
    found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
    if found.returncode == 0 and (Path(found.stdout.strip()) / "initdb").exists():
        return Path(found.stdout.strip())
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        raise RuntimeError("no PostgreSQL server binaries (initdb) found")
    return versions[-1].parent


@contextmanager
def pointed_at(*, broker_url: str | None = None, database_url: str | None = None
               ) -> Iterator[None]:
    """This process's publishing and database use the given servers inside the block."""
    settings = get_settings()
    before = (settings.broker_url, settings.database_url, app.conf.broker_url)

    def switch(broker: str | None, database: str | None) -> None:
        if broker is not None:
            settings.broker_url = broker
            app.conf.broker_url = broker
            app._pool = None
            app.amqp._producer_pool = None
        if database is not None:
            settings.database_url = database
            dispose_engine()

    switch(broker_url, database_url)
    try:
        yield
    finally:
        switch(before[2] if broker_url else None, before[1] if database_url else None)
        if broker_url:
            settings.broker_url = before[0]
