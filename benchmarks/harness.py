"""What every benchmark needs: its own database and Redis databases, peers, a worker, a clock.

Import this module before `workers`: it points the settings at the benchmark's own database
(`celgate_bench`), Redis databases 2 and 3 and sandbox peers on ports shifted by
`SANDBOX_PORT_OFFSET`, so a benchmark never touches demo or test data or their peers.
"""

from __future__ import annotations

import fcntl
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SANDBOX_PORT_OFFSET = 20000

BENCH_ENV = {
    "DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1:5432/celgate_bench",
    "ACCOUNTER_URL": f"http://127.0.0.1:{8022 + SANDBOX_PORT_OFFSET}/accounter",
    "LIMITER_URL": f"http://127.0.0.1:{8022 + SANDBOX_PORT_OFFSET}/v1/limiter",
    "TRANSACTIONS_URL": f"http://127.0.0.1:{8024 + SANDBOX_PORT_OFFSET}",
    "PROVIDER_URL": f"http://127.0.0.1:{8025 + SANDBOX_PORT_OFFSET}",
    "BROKER_URL": "redis://127.0.0.1:6379/2",
    "REDIS_URL": "redis://127.0.0.1:6379/3",
    "LOG_LEVEL": "WARNING",
    "API_TOKEN": "bench-token",
}
for _key, _value in BENCH_ENV.items():
    os.environ.setdefault(_key, _value)

from celgate.processes import ROOT, ManagedProcess, worker  # noqa: E402

_bench_lock = None


def one_benchmark_at_a_time() -> None:
    """Wait until no other benchmark runs on this machine, then keep others waiting.

    Benchmarks share the database and Redis databases, and side by side they would also share
    the CPUs their figures are about. The lock is released when this process exits.
    """
    global _bench_lock
    handle = open(Path(tempfile.gettempdir()) / "celgate-bench.lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("waiting for another benchmark to finish", file=sys.stderr, flush=True)
        fcntl.flock(handle, fcntl.LOCK_EX)
    _bench_lock = handle


def fresh_database() -> None:
    """Drop, create and migrate the benchmark database; flush its Redis databases."""
    one_benchmark_at_a_time()
    import redis

    from workers.settings import get_settings

    subprocess.run([sys.executable, "-m", "celgate.cli", "migrate", "--fresh"], cwd=ROOT,
                   check=True, capture_output=True)
    redis.Redis.from_url(get_settings().broker_url).flushdb()
    redis.Redis.from_url(get_settings().redis_url).flushdb()


def start_sandbox(peers: str) -> ManagedProcess:
    """The sandbox `peers` (comma-separated names) on the benchmark's shifted ports."""
    log = Path(tempfile.mkdtemp(prefix="celgate-bench-sandbox-")) / "sandbox.log"
    process = ManagedProcess(
        [sys.executable, "-m", "clients.sandbox", "--only", peers,
         "--port-offset", str(SANDBOX_PORT_OFFSET)],
        log, b"sandbox peers ready")
    process.start()
    return process


def sandbox_control(url: str, path: str, body: Any = None, method: str = "POST") -> Any:
    """A call to the control API (`/_sandbox/<path>`) of the sandbox peer at `url`."""
    import requests

    response = requests.request(method, f"{url}/_sandbox/{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def start_worker(concurrency: int = 2, extra_imports: str = "") -> ManagedProcess:
    env = {**os.environ, "WORKER_EXTRA_IMPORTS": extra_imports}
    log = Path(tempfile.mkdtemp(prefix="celgate-bench-")) / "worker.log"
    process = worker(log, concurrency=concurrency, name="bench", env=env)
    process.start()
    return process


def wait_until(done: Callable[[], bool], timeout: float, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark run did not finish in time")
        time.sleep(interval)


@dataclass(frozen=True)
class Figures:
    name: str
    items: int
    seconds: float
    latencies: tuple[float, ...] = ()

    @property
    def rate(self) -> float:
        return self.items / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    def line(self, unit: str) -> str:
        text = (f"{self.name:<28} {self.items:>6} {unit} in {self.seconds:7.2f}s = "
                f"{self.rate:8.1f} {unit}/s")
        if self.latencies:
            text += (f"   p50 {self.percentile(50) * 1000:7.1f} ms   p99 "
                     f"{self.percentile(99) * 1000:7.1f} ms")
        return text


def report(ours: Figures, baseline: Figures, unit: str, target_ratio: float) -> None:
    ratio = ours.rate / baseline.rate
    print(ours.line(unit))
    print(baseline.line(unit))
    print(f"ratio {ours.name} / {baseline.name}: {ratio:.2f} (target >= {target_ratio})")
    if ours.latencies and baseline.latencies:
        p50 = statistics.median(ours.latencies) / statistics.median(baseline.latencies)
        print(f"p50 latency ratio: {p50:.2f}x the baseline's")
