"""A broker of the test's own (Redis or RabbitMQ, as the run's broker), to stop and restart.

The machine's shared broker is never restarted by a test; this one lives in a temporary
directory on a port of the test slot and dies with the test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from sandbox.processes import ManagedProcess
from tests.support import env


class PrivateBroker:
    def __init__(self, slot: int) -> None:
        self.rabbitmq = env.broker_choice() == "rabbitmq"
        # Not under pytest's private tmp: rabbitmq-server runs as its own user and must reach it.
        self.directory = directory = Path(tempfile.mkdtemp(prefix="celgate-broker-"))
        for sub in ("", "mnesia", "log"):
            (directory / sub).mkdir(exist_ok=True)
            os.chmod(directory / sub, 0o777)
        if self.rabbitmq:
            port = 5790 + slot
            self.node = node = f"celgate-test-{slot}@localhost"
            (directory / "plugins").write_text("")
            config = directory / "rabbitmq.conf"
            config.write_text(f"listeners.tcp.default = 127.0.0.1:{port}\n")
            os.chmod(config, 0o644)
            self.url = f"amqp://guest:guest@127.0.0.1:{port}//"
            self.process = ManagedProcess(
                # A crash dump goes to the log directory, not the working directory.
                ["rabbitmq-server"], directory / "broker.log", b"completed with",
                env={**os.environ, "RABBITMQ_NODENAME": node,
                     "RABBITMQ_DIST_PORT": str(25790 + slot),
                     "RABBITMQ_CONFIG_FILE": str(config),
                     "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
                     "RABBITMQ_LOG_BASE": str(directory / "log"),
                     "RABBITMQ_PID_FILE": str(directory / "pid"),
                     "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "plugins"),
                     "ERL_CRASH_DUMP": str(directory / "log" / "erl_crash.dump")})
        else:
            port = 6390 + slot
            self.url = f"redis://127.0.0.1:{port}/0"
            self.process = ManagedProcess(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(directory)],
                directory / "broker.log", b"Ready to accept connections")

    def start(self) -> None:
        self.process.start(timeout=90)

    def kill(self) -> None:
        """SIGKILL the broker. RabbitMQ's VM runs as its own user in a process group of its
        own, so it is found by the pid file it writes, and the node name must be gone from
        epmd before the node can start again."""
        self.process.kill()
        if not self.rabbitmq:
            return
        pid_file = self.directory / "pid"
        if pid_file.exists() and pid_file.read_text().strip():
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
            except ProcessLookupError:
                pass
            pid_file.unlink()
        deadline = time.monotonic() + 30
        while f"name {self.node.split('@')[0]} " in _epmd_names():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.node} still registered with epmd")
            time.sleep(0.2)

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def _epmd_names() -> str:
    return subprocess.run(["epmd", "-names"], capture_output=True, text=True, timeout=10).stdout
