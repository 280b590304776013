"""Long fault-injection run of the runtime (`make chaos`): kills and lost messages under load.

Many counting machines run while the worker is SIGKILLed again and again and the broker is
flushed; a beat-like sweeper thread brings lost work back. Every machine must end with exactly
its target steps, in order, with a gapless history: nothing lost, nothing doubled.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from tests.runtime.helpers import event_ids, finished, new_counter, steps
from tests.support.waiting import wait_for
from workers.tasks import sweep

pytestmark = pytest.mark.chaos

MACHINES = 60
TARGET = 12
ROUNDS = 8


def test_kills_and_flushes_lose_and_double_nothing(running_worker, broker):
    random.seed(7)
    ids = [new_counter(target=TARGET, sleep_s=0.02) for _ in range(MACHINES)]
    stop = threading.Event()

    def sweeper() -> None:
        while not stop.is_set():
            sweep()
            time.sleep(0.5)

    thread = threading.Thread(target=sweeper, daemon=True)
    thread.start()
    try:
        for _ in range(ROUNDS):
            time.sleep(random.uniform(0.5, 1.5))
            if random.random() < 0.5:
                running_worker.kill()
            else:
                broker.flush()
            if not running_worker.alive:
                running_worker.start()
        wait_for(lambda: all(finished(m, TARGET) for m in ids), timeout=120,
                 what="every machine to reach its target")
    finally:
        stop.set()
        thread.join(5)

    for machine_id in ids:
        assert steps(machine_id) == list(range(1, TARGET + 1)), machine_id
        assert event_ids(machine_id) == list(range(1, TARGET + 2)), machine_id
