"""Timer burst benchmark: many timers due in the same second among a million parked ones.

    python -m benchmarks.burst_bench [--parked 1000000] [--due 10000]

Fills the benchmark database with `--parked` machines whose timers are days away (they only
wait in PostgreSQL) and `--due` machines whose timers fall due together, then runs sweep passes
as beat would (one every SWEEP_INTERVAL_S) until every due timer is published, and prints how
long after the due moment the last one went out, the rate, and the cost of a pass that finds
nothing (the parked rows' price). No worker runs: the messages stay in the broker, counted.
"""

from __future__ import annotations

import argparse
import time

from benchmarks import harness


def fill(parked: int) -> None:
    from sqlalchemy import text

    from workers.db import transaction

    with transaction() as tx:
        tx.conn.execute(text("""
            INSERT INTO machines (namespace, id, timer_due_at, timer_token, timer_publish_at)
            SELECT 'counter', 'parked-' || i, now() + interval '7 days', md5(i::text),
                   now() + interval '7 days' - interval '60 seconds'
            FROM generate_series(1, :n) AS i
        """), {"n": parked})
        tx.conn.execute(text("ANALYZE machines"))


def arm_burst(due: int, at: float) -> None:
    """`due` timers all due at the epoch second `at` (never sent: far timers until now)."""
    from sqlalchemy import text

    from workers.db import transaction

    with transaction() as tx:
        tx.conn.execute(text("""
            INSERT INTO machines (namespace, id, timer_due_at, timer_token, timer_publish_at)
            SELECT 'counter', 'burst-' || i, to_timestamp(:at), md5('b' || i),
                   to_timestamp(:at) - interval '60 seconds'
            FROM generate_series(1, :n) AS i
        """), {"n": due, "at": at})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parked", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    args = parser.parse_args()
    harness.fresh_database()

    from workers.settings import get_settings
    from workers.tasks import sweep

    settings = get_settings()
    started = time.perf_counter()
    fill(args.parked)
    print(f"{args.parked} parked timers written in {time.perf_counter() - started:.1f} s")

    idle = []
    for _ in range(20):
        t0 = time.perf_counter()
        sweep()
        idle.append(time.perf_counter() - t0)
    idle.sort()
    print(f"an empty sweep pass over {args.parked} parked timers: "
          f"p50 {idle[len(idle) // 2] * 1000:.1f} ms, max {idle[-1] * 1000:.1f} ms")

    due_at = time.time() + 70  # inside the short-timer threshold in 10 s: swept as "near"
    arm_burst(args.due, due_at)
    publish_from = due_at - settings.short_timer_threshold_s
    while time.time() < publish_from:
        time.sleep(0.05)
    published, passes, first = 0, 0, time.time()
    while published < args.due:
        pass_started = time.time()
        published += sweep()["machines"]
        passes += 1
        if published < args.due:
            time.sleep(max(0.0, settings.sweep_interval_s - (time.time() - pass_started)))
    took = time.time() - first
    print(f"{args.due} timers due together: all published {took:.2f} s after they became "
          f"sweepable ({took / args.due * 1e6:.0f} us a timer, {passes} pass(es) of at most "
          f"{settings.sweep_interval_s * 0.8:.1f} s, batch {settings.sweep_batch}); "
          f"{'within' if took <= 2 else 'NOT within'} 2 s")
    harness.record("burst", "ours", "timers", harness.Figures("burst", args.due, took),
                   parked=args.parked, empty_pass_ms=round(idle[len(idle) // 2] * 1000, 2))


if __name__ == "__main__":
    main()
