"""A broker that dies and comes back: workers reconnect, nothing is lost or done twice.

The test runs its own broker (tests/support/private_broker.py) of the run's kind, a worker
connected to it, and machines started through it. The broker is SIGKILLed mid-run and
restarted on the same data: RabbitMQ keeps its durable quorum queues, Redis (no persistence
here) loses every message, and the sweeper brings those back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from sandbox.processes import ROOT
from sandbox.processes import worker as worker_process
from tests.runtime.helpers import event_ids, finished, steps
from tests.support.private_broker import PrivateBroker
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures("database")]

MACHINES = 12
TARGET = 8


def _run(code: str, broker_url: str) -> str:
    """Python code in a process whose app publishes to the private broker."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, text=True,
                          capture_output=True, timeout=120,
                          env={**os.environ, "BROKER_URL": broker_url}).stdout


def test_a_worker_survives_a_broker_restart(tmp_path):
    slot = int(os.environ["CELGATE_TEST_SLOT"])
    broker = PrivateBroker(slot)
    broker.start()
    worker = worker_process(tmp_path / "worker.log", name="restart",
                            env={**os.environ, "BROKER_URL": broker.url})
    try:
        worker.start()
        pid = worker.proc.pid
        ids = _run(
            "import uuid\nfrom tests.support import toys\nfrom workers import machines\n"
            f"for _ in range({MACHINES}):\n"
            "    m = f'restart-{uuid.uuid4().hex[:10]}'\n"
            f"    machines.start(toys.NAMESPACE, m, {{'target': {TARGET}, 'sleep_s': 0.05,"
            " 'delay_s': 0.5})\n"
            "    print(m)\n", broker.url).split()
        wait_for(lambda: any(steps(m) for m in ids), what="the first steps")
        broker.kill()
        time.sleep(3)  # the worker sees the connection go and retries
        broker.start()

        def all_finished() -> bool:
            _run("from workers.tasks import sweep; sweep()", broker.url)  # as beat would
            return all(finished(m, TARGET) for m in ids)

        wait_for(all_finished, timeout=120, interval=1.0, what="every machine to finish")
        assert worker.alive and worker.proc.pid == pid, "the worker reconnected, not restarted"
    finally:
        worker.stop()
        broker.remove()
    for machine_id in ids:
        assert steps(machine_id) == list(range(1, TARGET + 1)), machine_id
        assert event_ids(machine_id) == list(range(1, TARGET + 2)), machine_id
