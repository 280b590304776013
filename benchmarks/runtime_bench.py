"""Runtime benchmark: N machines through K steps each vs a bare Celery chain of the same shape.

    python -m benchmarks.runtime_bench [--machines 200] [--steps 10] [--concurrency 2]

Both run on the same worker pool in the same run; the figure is steps per second.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import datetime

from benchmarks import harness


def run_machines(n: int, k: int) -> harness.Figures:
    from sqlalchemy import func, select

    from benchmarks.runtime_tasks import NAMESPACE
    from workers import machines
    from workers.db import transaction
    from workers.tables import machines as table

    ids = [uuid.uuid4().hex for _ in range(n)]
    started = time.perf_counter()
    for machine_id in ids:
        machines.start(NAMESPACE, machine_id, {"k": k})

    def finished() -> bool:
        with transaction() as tx:
            total = tx.conn.execute(
                select(func.sum(table.c.last_event_id)).where(table.c.namespace == NAMESPACE.name)
            ).scalar_one()
        return total == n * (k + 1)

    harness.wait_until(finished, timeout=600, interval=0.1)
    return harness.Figures("durable machines", n * k, time.perf_counter() - started)


def run_bare(n: int, k: int, timeout_s: float = 600) -> harness.Figures:
    """N bare chains of K tasks; items are chains, latency from send to the last commit.

    The one baseline every benchmark compares with (benchmarks/runtime_tasks.py).
    """
    from sqlalchemy import text

    from benchmarks.runtime_tasks import BARE_TABLE
    from workers.celery_app import app
    from workers.db import transaction

    ids = [uuid.uuid4().hex for _ in range(n)]
    with transaction() as tx:
        tx.conn.execute(text(
            f"CREATE TABLE IF NOT EXISTS {BARE_TABLE} (id text PRIMARY KEY, step int NOT NULL, "
            "updated_at timestamptz NOT NULL DEFAULT now())"))
        tx.conn.execute(text(f"INSERT INTO {BARE_TABLE} (id, step) VALUES (:id, 0)"),
                        [{"id": i} for i in ids])

    def done() -> dict[str, datetime]:
        with transaction() as tx:
            return dict(tx.conn.execute(text(
                f"SELECT id, updated_at FROM {BARE_TABLE} WHERE id = ANY(:ids) AND step >= :k"),
                {"ids": ids, "k": k}).all())

    sent: dict[str, float] = {}
    started = time.time()
    for chain_id in ids:
        sent[chain_id] = time.time()
        app.send_task("workers.bench_bare_step", kwargs={"chain_id": chain_id, "k": k})
    harness.wait_until(lambda: len(done()) == n, timeout=timeout_s, interval=0.1)
    finished = done()
    return harness.Figures(
        f"bare chain, {k} tasks", n, max(at.timestamp() for at in finished.values()) - started,
        tuple(finished[i].timestamp() - sent[i] for i in ids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--machines", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    harness.fresh_database()
    worker = harness.start_worker(args.concurrency, "benchmarks.runtime_tasks")
    try:
        run_bare(10, 2)  # warm the pool's connections before measuring
        with harness.CpuMeter(worker=worker) as meter:
            chains = run_bare(args.machines, args.steps)
        bare = harness.Figures("bare celery chain", args.machines * args.steps, chains.seconds,
                               cpu=meter.used)
        with harness.CpuMeter(worker=worker) as meter:
            ours = run_machines(args.machines, args.steps).with_cpu(meter)
    finally:
        worker.stop()
    print(f"{args.machines} chains x {args.steps} steps, worker concurrency {args.concurrency}")
    harness.report(ours, [(bare, 0.8)], "steps")
    harness.record("runtime, machine steps", "ours", "steps", ours)
    harness.record("runtime, machine steps", "bare chain", "steps", bare)


if __name__ == "__main__":
    main()
