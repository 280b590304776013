"""Metrics scrape benchmark: the database gauges at a million machines vs counting the rows.

    python -m benchmarks.scrape_bench [--machines 1000000] [--scrapes 20]

Fills the benchmark database with machines (a few namespaces, 1 % failed, 0.1 % with an
overdue timer) and a thousand STQ rows, then times the API's database gauges (trigger-kept
totals, the due-time index, pending STQ rows) against the plain query a scrape would otherwise
run (`count(*) ... GROUP BY namespace, status`). Same process, same database, same run. Then
what the counting trigger costs a machine start: inserts with the trigger on vs off.
"""

from __future__ import annotations

import argparse
import time
import uuid

from benchmarks import harness


def fill(machines: int) -> float:
    from sqlalchemy import text

    from workers.db import transaction

    started = time.perf_counter()
    with transaction() as tx:
        tx.conn.execute(text("""
            INSERT INTO machines (namespace, id, status, timer_due_at)
            SELECT (ARRAY['payments', 'payments', 'payments', 'counter'])[1 + i % 4],
                   'bench-' || i,
                   CASE WHEN i % 100 = 0 THEN 'failed' ELSE 'working' END,
                   CASE WHEN i % 1000 = 1 THEN now() - interval '10 minutes'
                        WHEN i % 10 = 2 THEN now() + interval '1 day' END
            FROM generate_series(1, :n) AS i
        """), {"n": machines})
        tx.conn.execute(text("""
            INSERT INTO stq_tasks (queue, task_id, kwargs, eta, token, exec_tries)
            SELECT 'cashback.cashback_charge_processing', 'order-' || i, '{}',
                   now() + (i % 7 - 3) * interval '1 minute', md5(i::text), i % 3
            FROM generate_series(1, 1000) AS i
        """))
    with transaction() as tx:
        tx.conn.execute(text("ANALYZE machines"))
    return time.perf_counter() - started


def vacuum_deltas() -> None:
    """What autovacuum does within a minute (migration 0005 sets a low threshold): without
    it the next scrapes would step over the million rows the first one deleted."""
    from sqlalchemy import text

    from workers.db import get_engine

    with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM machine_count_deltas"))


def scrape_ours(scrapes: int) -> harness.Figures:
    from workers.metrics import DatabaseGauges

    gauges = DatabaseGauges()
    latencies = []
    started = time.perf_counter()
    for _ in range(scrapes):
        t = time.perf_counter()
        families = list(gauges.collect())
        latencies.append(time.perf_counter() - t)
    assert sum(s.value for s in families[0].samples) > 0
    return harness.Figures("database gauges", scrapes, time.perf_counter() - started,
                           tuple(latencies))


def scrape_counting(scrapes: int) -> harness.Figures:
    from sqlalchemy import text

    from workers.db import transaction

    latencies = []
    started = time.perf_counter()
    for _ in range(scrapes):
        t = time.perf_counter()
        with transaction() as tx:
            tx.conn.execute(text(
                "SELECT namespace, status, count(*) FROM machines GROUP BY namespace, status"
            )).all()
        latencies.append(time.perf_counter() - t)
    return harness.Figures("count(*) per scrape", scrapes, time.perf_counter() - started,
                           tuple(latencies))


def starts(count: int, *, trigger: bool) -> harness.Figures:
    """`count` machine inserts, one transaction each (as a machine start), trigger on or off."""
    from sqlalchemy import text

    from workers.db import transaction

    with transaction() as tx:
        tx.conn.execute(text(f"ALTER TABLE machines {'ENABLE' if trigger else 'DISABLE'} "
                             "TRIGGER machines_count"))
    prefix = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    for i in range(count):
        with transaction() as tx:
            tx.conn.exec_driver_sql(
                "INSERT INTO machines (namespace, id) VALUES ('start-bench', %(id)s)",
                {"id": f"{prefix}-{i}"})
    figures = harness.Figures(f"starts, trigger {'on' if trigger else 'off'}", count,
                              time.perf_counter() - started)
    with transaction() as tx:
        tx.conn.execute(text("ALTER TABLE machines ENABLE TRIGGER machines_count"))
        tx.conn.execute(text("DELETE FROM machines WHERE namespace = 'start-bench'"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--machines", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--starts", type=int, default=3000)
    args = parser.parse_args()
    harness.fresh_database()
    print(f"filled {args.machines} machines in {fill(args.machines):.1f}s")
    from workers.metrics import DatabaseGauges

    t = time.perf_counter()
    list(DatabaseGauges().collect())
    print(f"first scrape (folds the {args.machines} trigger deltas once): "
          f"{(time.perf_counter() - t) * 1000:.0f} ms")
    vacuum_deltas()
    harness.report(scrape_ours(args.scrapes), scrape_counting(args.scrapes), "scrapes",
                   target_ratio=10)
    print("\nwhat the trigger costs a machine start (an insert in its own transaction):")
    # Alternating rounds, best of each: the machine is shared, one round alone says little.
    rounds = [(starts(args.starts, trigger=True), starts(args.starts, trigger=False))
              for _ in range(3)]
    harness.report(max((on for on, _ in rounds), key=lambda f: f.rate),
                   max((off for _, off in rounds), key=lambda f: f.rate), "starts",
                   target_ratio=0.9)


if __name__ == "__main__":
    main()
