"""Timer burst benchmark: many timers due in the same second among a million parked ones.

    python -m benchmarks.burst_bench [--parked 1000000] [--due 10000] [--repeat 3]

Fills the benchmark database with `--parked` machines whose timers are days away (they only
wait in PostgreSQL), then, `--repeat` times for each variant, arms `--due` timers due together
and runs sweep passes the way beat does (one every SWEEP_INTERVAL_S, at a fixed phase) until
every one is published. The burst falls due just after a pass, the worst moment for a sweeper
that only publishes what is already due. The timers are armed with no short-timer look-ahead of
their own (`--threshold 0`): the sweeper is all there is between their due time and the broker.

Variants, measured in the same run:
- `send_task`: each message through Celery's `send_task` and no look-ahead (the code before);
- `batch`: the batch publisher (workers/publish.py), still no look-ahead;
- `batch+ahead`: the batch publisher and the sweep's look-ahead (the code now).

For each it prints, as the median of the repeats: the time from the due moment to the last
publish (negative: every message was in the broker before it was due), p50/p99 of the publish
lag over all timers, timers/s while a pass publishes, and per timer the cost of publishing and
of claiming. No worker runs: the messages stay in the broker, counted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

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


def arm_burst(due: int, at: float, threshold: float) -> None:
    """`due` timers all due at the epoch second `at`, never sent, to be published `threshold`
    seconds before (a fresh set each time: the previous burst's rows are removed)."""
    from sqlalchemy import text

    from workers.db import transaction

    with transaction() as tx:
        tx.conn.execute(text("DELETE FROM machines WHERE id LIKE 'burst-%'"))
        tx.conn.execute(text("""
            INSERT INTO machines (namespace, id, timer_due_at, timer_token, timer_publish_at)
            SELECT 'counter', 'burst-' || i, to_timestamp(:at), md5('b' || i),
                   to_timestamp(:at) - make_interval(secs => :threshold)
            FROM generate_series(1, :n) AS i
        """), {"n": due, "at": at, "threshold": threshold})


def send_task_each(messages) -> int:
    """Publishing as before the batch publisher: one `send_task` per message."""
    from workers.celery_app import app

    sent = 0
    with app.producer_or_acquire() as producer, producer.batch():
        for task_name, kwargs, countdown in messages:
            app.send_task(task_name, kwargs=kwargs, countdown=countdown or None,
                          producer=producer)
            sent += 1
    return sent


@dataclass
class Round:
    last_after_due_s: float
    lags: list[float]  # publish time - due time, one per timer
    publish_s: float  # spent inside publish_many
    pass_s: float  # spent in sweep passes (claims, building, publishing)
    passes: int

    @property
    def rate(self) -> float:
        return len(self.lags) / self.pass_s


def burst_round(count: int, threshold: float, publish_many: Callable, ahead: bool) -> Round:
    from workers import timers
    from workers.settings import get_settings
    from workers.tasks import sweep

    interval = get_settings().sweep_interval_s
    harness.fresh_broker()
    ticks_from = time.time() + 1.0
    due_at = ticks_from + 2 * interval + 0.05  # just after the third tick
    arm_burst(count, due_at, threshold)
    lags: list[float] = []
    spent = [0.0]

    def recording(messages):
        started = time.perf_counter()
        sent = publish_many(messages)
        spent[0] += time.perf_counter() - started
        lags.extend([time.time() - due_at] * sent)
        return sent

    original_publish, original_ahead = timers.publisher.publish_many, timers.look_ahead_s
    timers.publisher.publish_many = recording
    if not ahead:
        timers.look_ahead_s = lambda: 0.0
    passes, pass_s, tick = 0, 0.0, ticks_from
    try:
        while len(lags) < count and time.time() < due_at + 120:
            time.sleep(max(0.0, tick - time.time()))
            started = time.perf_counter()
            sweep()
            pass_s += time.perf_counter() - started
            passes += 1
            tick += interval
    finally:
        timers.publisher.publish_many, timers.look_ahead_s = original_publish, original_ahead
    if len(lags) < count:
        raise RuntimeError(f"only {len(lags)} of {count} timers published")
    return Round(max(lags), lags, spent[0], pass_s, passes)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parked", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.0,
                        help="seconds before due a timer becomes publishable")
    parser.add_argument("--variants", default="send_task,batch,batch+ahead")
    args = parser.parse_args()
    harness.fresh_database()

    from workers.publish import publish_many
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
    print(f"{args.due} timers due together, SWEEP_INTERVAL_S {settings.sweep_interval_s}, "
          f"SWEEP_BATCH {settings.sweep_batch}, published {args.threshold} s before due; "
          f"median of {args.repeat}:")

    variants = {"send_task": (send_task_each, False), "batch": (publish_many, False),
                "batch+ahead": (publish_many, True)}
    chosen = [name.strip() for name in args.variants.split(",")]
    rounds: dict[str, list[Round]] = {name: [] for name in chosen}
    for _ in range(args.repeat):  # interleaved: the machine's load hits every variant alike
        for name in chosen:
            rounds[name].append(burst_round(args.due, args.threshold, *variants[name]))
    for name in chosen:
        runs = rounds[name]
        last = statistics.median(r.last_after_due_s for r in runs)
        p50 = statistics.median(percentile(r.lags, 50) for r in runs)
        p99 = statistics.median(percentile(r.lags, 99) for r in runs)
        rate = statistics.median(r.rate for r in runs)
        publish_us = statistics.median(r.publish_s / args.due * 1e6 for r in runs)
        claim_us = statistics.median((r.pass_s - r.publish_s) / args.due * 1e6 for r in runs)
        verdict = "within" if last <= 2 else "NOT within"
        print(f"  {name:<12} due -> last published {last:+6.2f} s ({verdict} 2 s)"
              f"   lag p50 {p50:+6.2f} s  p99 {p99:+6.2f} s   {rate:6.0f} timers/s"
              f"   per timer: publish {publish_us:4.0f} us, claim+build {claim_us:4.0f} us"
              f"   passes {statistics.median(r.passes for r in runs):.0f}")
        harness.record("burst", name, "timers",
                       harness.Figures("burst", args.due, statistics.median(
                           r.pass_s for r in runs)),
                       parked=args.parked, empty_pass_ms=round(idle[len(idle) // 2] * 1000, 2),
                       due_to_last_published_s=round(last, 2), lag_p50_s=round(p50, 2),
                       lag_p99_s=round(p99, 2), publish_us_per_timer=round(publish_us),
                       claim_us_per_timer=round(claim_us))


if __name__ == "__main__":
    main()
