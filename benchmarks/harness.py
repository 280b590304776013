"""What every benchmark needs: its own database and Redis databases, peers, a worker, a clock.

Import this module before `workers`: it points the settings at the benchmark's own database
(`celgate_bench`), Redis databases 2 and 3 and sandbox peers on ports shifted by
`SANDBOX_PORT_OFFSET`, so a benchmark never touches demo or test data or their peers.
"""

from __future__ import annotations

import fcntl
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.peers import peer_env

SANDBOX_PORT_OFFSET = 20000

BENCH_ENV = {
    "DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1:5432/celgate_bench",
    **peer_env(SANDBOX_PORT_OFFSET),
    "BROKER_URL": "redis://127.0.0.1:6379/2",
    "REDIS_URL": "redis://127.0.0.1:6379/3",
    "LOG_LEVEL": "WARNING",
    "API_TOKEN": "bench-token",
}
for _key, _value in BENCH_ENV.items():
    os.environ.setdefault(_key, _value)

from sandbox.processes import ROOT, ManagedProcess, sandbox_peers, worker  # noqa: E402

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
    fresh_broker()
    redis.Redis.from_url(get_settings().redis_url).flushdb()


def fresh_broker() -> None:
    import redis

    from workers.settings import get_settings

    redis.Redis.from_url(get_settings().broker_url).flushdb()


def start_sandbox(peers: str) -> ManagedProcess:
    """The sandbox `peers` (comma-separated names) on the benchmark's shifted ports."""
    log = Path(tempfile.mkdtemp(prefix="celgate-bench-sandbox-")) / "sandbox.log"
    process = sandbox_peers(log, port_offset=SANDBOX_PORT_OFFSET, only=peers)
    process.start()
    return process


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


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU time of a process and its descendants so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent pid, cpu seconds)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process just exited
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    tree, total = {root_pid}, 0.0
    for pid in sorted(stats):  # a child's pid is normally above its parent's
        if pid in tree or stats[pid][0] in tree:
            tree.add(pid)
            total += stats[pid][1]
    return total


class CpuMeter:
    """CPU seconds some processes (children included) spend during a run, e.g. the worker."""

    def __init__(self, **processes: ManagedProcess) -> None:
        self._pids = {name: process.proc.pid for name, process in processes.items()}
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._start = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        return self

    def __exit__(self, *_: object) -> None:
        self.used = {name: cpu_seconds(pid) - self._start[name]
                     for name, pid in self._pids.items()}


@dataclass(frozen=True)
class Figures:
    name: str
    items: int
    seconds: float
    latencies: tuple[float, ...] = ()
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds in the run

    def with_cpu(self, meter: CpuMeter) -> Figures:
        return Figures(self.name, self.items, self.seconds, self.latencies, dict(meter.used))

    def cpu_ms_per_item(self, process: str) -> float | None:
        return self.cpu[process] / self.items * 1000 if process in self.cpu else None

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
        if self.cpu:
            text += "   CPU/item " + ", ".join(
                f"{name} {seconds / self.items * 1000:.1f} ms" for name, seconds in self.cpu.items())
        return text


def report(ours: Figures, baselines: list[tuple[Figures, float]], unit: str) -> None:
    """Print our figures, then each baseline with the ratios against it and its target."""
    print(ours.line(unit))
    for baseline, target_ratio in baselines:
        print(baseline.line(unit))
        print(f"  ratio {ours.name} / {baseline.name}: {ours.rate / baseline.rate:.2f} "
              f"(target >= {target_ratio})")
        if ours.latencies and baseline.latencies:
            p50 = statistics.median(ours.latencies) / statistics.median(baseline.latencies)
            print(f"  p50 latency: {p50:.2f}x the baseline's")
        for process in ours.cpu:
            theirs = baseline.cpu_ms_per_item(process)
            if theirs:
                print(f"  {process} CPU per item: {ours.cpu_ms_per_item(process) / theirs:.2f}x"
                      " the baseline's")


# The file `make bench` collects every run's figures in (one JSON object a line).
RESULTS_ENV = "CELGATE_BENCH_RESULTS"


def record(benchmark: str, variant: str, unit: str, figures: Figures, **extra: Any) -> None:
    """Append one run's figures to the results file, when `make bench` asked for one."""
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    row = {"benchmark": benchmark, "variant": variant, "unit": unit, "items": figures.items,
           "seconds": round(figures.seconds, 3), "rate": round(figures.rate, 2),
           "p50_ms": round(figures.percentile(50) * 1000, 1) if figures.latencies else None,
           "p99_ms": round(figures.percentile(99) * 1000, 1) if figures.latencies else None,
           "cpu_ms_per_item": {name: round(seconds / figures.items * 1000, 2)
                               for name, seconds in figures.cpu.items()}, **extra}
    with open(path, "a") as out:
        out.write(json.dumps(row) + "\n")
