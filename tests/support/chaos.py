"""Faults for the chaos runs: a background thread that kills the worker and flushes the broker."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sandbox.processes import ManagedProcess
from tests.support.broker import TestBroker
from workers.tasks import sweep


@contextmanager
def kills_and_flushes(worker: ManagedProcess, broker: TestBroker, *, seed: int) -> Iterator[None]:
    """While the block runs: every 0.3-1 s either SIGKILL and restart the worker or flush the
    broker, then sweep as beat would, so lost work comes back. The worker is left running."""
    rng = random.Random(seed)
    stop = threading.Event()

    def chaos() -> None:
        while not stop.is_set():
            time.sleep(rng.uniform(0.3, 1.0))
            if rng.random() < 0.5:
                worker.kill()
                worker.start()
            else:
                broker.flush()
            sweep()

    thread = threading.Thread(target=chaos, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
        if not worker.alive:
            worker.start()
