"""Payments captured per second by 1, 2 and 3 worker hosts of a fleet (`make bench-fleet`).

    python -m tests.fleet.bench [--payments 300] [--hosts 1,2,3] [--concurrency 2]

For each host count a fresh fleet (tests/fleet/fleet.py) gets N registered payments through
its API while no worker runs; then every host starts its worker at once (one of them beat as
well). The rate counts the payments captured after the last worker was ready, over the time
until the last one is captured. "machine busy" is every core of this machine in that window
(other users' processes included); the other columns are what each part of the fleet used,
as a share of all cores: the workers and beat on the hosts, and PostgreSQL, the sandbox peers
and Redis, which run beside them on the same cores. Their sum per payment captured is the
figure that holds on a machine others use too: cores / that = the ceiling.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.harness import cpu_seconds, one_benchmark_at_a_time
from tests.fleet.fleet import Fleet
from tests.fleet.workload import Workload, captured_count

TIMEOUT_S = 600
# Production timing where the test tuning would skew a backlog: with the tests' 3 s allowance
# the sweeper re-sends every queued step while the backlog waits, and the workers do it twice.
SETTINGS = {"REDELIVERY_ALLOWANCE_S": "60"}


def measure(hosts: int, payments: int, concurrency: int) -> dict[str, float]:
    with Fleet(hosts, Path(tempfile.mkdtemp(prefix="celgate-fleet-bench-")),
               settings=SETTINGS) as fleet:
        work = Workload(fleet)
        for _ in range(payments):
            work.register()
        fleet.start_beat(fleet.hosts[0])
        with ThreadPoolExecutor(hosts) as pool:
            list(pool.map(lambda host: fleet.start_worker(host, concurrency), fleet.hosts))
        start, before = time.monotonic(), captured_count(fleet)
        busy, used = _busy_ticks(), _cpu_by_part(fleet)
        while (done := captured_count(fleet)) < payments:
            if time.monotonic() - start > TIMEOUT_S:
                raise TimeoutError(f"{done} of {payments} captured in {TIMEOUT_S} s")
            time.sleep(0.1)
        elapsed = time.monotonic() - start
        busy_after, used_after = _busy_ticks(), _cpu_by_part(fleet)
        capacity = elapsed * (os.cpu_count() or 1)
        measured = payments - before
        spent = {part: used_after[part] - used[part] for part in used}
        return {
            "hosts": hosts, "measured": measured, "seconds": elapsed,
            "rate": measured / elapsed,
            "busy": (busy_after[0] - busy[0]) / max(1, busy_after[1] - busy[1]),
            **{part: seconds / capacity for part, seconds in spent.items()},
            "cpu_ms": 1000 * sum(spent.values()) / measured,
        }


def _cpu_by_part(fleet: Fleet) -> dict[str, float]:
    """CPU seconds used so far by each part of the fleet, children included."""
    postmaster = int((fleet.postgres.datadir / "postmaster.pid").read_text().split()[0])
    workers = [process.proc.pid for name, process in fleet.processes.items()
               if name.startswith(("worker-", "beat-"))]
    return {"workers": sum(cpu_seconds(pid) for pid in workers),
            "postgres": cpu_seconds(postmaster),
            "peers": cpu_seconds(fleet.processes["sandbox"].proc.pid),
            "redis": cpu_seconds(fleet.redis.proc.pid)}


def _busy_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of every core since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=600)
    parser.add_argument("--hosts", default="1,2,3", help="host counts to measure")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes a host")
    args = parser.parse_args()
    one_benchmark_at_a_time()  # the figures are about CPU: no other benchmark beside them
    rows = [measure(int(n), args.payments, args.concurrency) for n in args.hosts.split(",")]
    print(f"\n{os.cpu_count()} CPUs, {args.payments} registered payments, "
          f"{args.concurrency} worker processes a host\n")
    print("| worker hosts | payments | seconds | captured/s | machine busy | workers | PostgreSQL"
          " | sandbox peers | Redis | fleet CPU ms/payment |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['hosts']} | {row['measured']} | {row['seconds']:.1f} | {row['rate']:.1f}"
              + "".join(f" | {row[part]:.0%}"
                        for part in ("busy", "workers", "postgres", "peers", "redis"))
              + f" | {row['cpu_ms']:.1f} |")


if __name__ == "__main__":
    main()
