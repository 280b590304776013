"""Payments benchmark: N payments through the capture chain vs two baselines.

    python -m benchmarks.payments_bench [--payments 200] [--concurrency 2]

Two flows, each beside two baselines measured in the same run on the same worker pool:
a bare chain (benchmarks/runtime_tasks.py) of as many Celery tasks, one PostgreSQL transaction
a step and no peer call; and the same flow as plain Celery tasks making the same peer calls
with no durability (benchmarks/plain_tasks.py), what a user would write instead.

- registered: `payments.register` task + processing_capture + finalizing_accounter (3 tasks);
  latency from sending the register task to the payment's `captured` change.
- partial capture: N hold payments are made to wait in flow_waiting first (not measured), then
  `payments.capture` task + updating_accounter + finalizing_session + finalizing_accounter
  (4 tasks); latency from sending the capture task to `captured`.

The sandbox Accounter, Limiter and provider run in a subprocess (`celgate-sandbox`) on ports
shifted by `harness.SANDBOX_PORT_OFFSET`. The bare chain calls no peer, so the ratio against
it includes the peers' round trips as well as the durable runtime; the ratio against the plain
tasks is the price of durability alone. CPU per payment is the worker's (pool included) and the
sandbox peers' during each run.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks import harness, runtime_bench
from sandbox.control_client import control

CURRENCY = "RUB"
TIMEOUT_S = 900


def payment_template() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A three-posting cash flow over fresh sandbox accounts, and one turnover limit."""
    from clients.settings import get_settings

    settings = get_settings()
    new_account = {"currency": CURRENCY}
    accounts = [control(settings.accounter_url, "accounts", new_account)["id"]
                for _ in range(4)]
    limit_id = f"bench-{uuid.uuid4().hex[:8]}"
    control(settings.limiter_url, "limits", {"id": limit_id, "currency": CURRENCY})
    types = ["provider.settlement", "merchant.settlement", "system.settlement",
             "external.outcome"]
    volumes = [{"share": {"p": 1, "q": 1, "rounding": "round_half_towards_zero"}},
               {"share": {"p": 3, "q": 100, "rounding": "round_half_towards_zero"}},
               {"fixed": {"amount": 15, "currency": CURRENCY}}]
    cash_flow = [{"source": {"account_id": accounts[i], "type": types[i]},
                  "destination": {"account_id": accounts[i + 1], "type": types[i + 1]},
                  "volume": volumes[i], "details": f"posting {i}"} for i in range(3)]
    return cash_flow, [{"id": limit_id, "version": 1}]


def body(invoice_id: str, template: tuple[list, list], flow: dict | None) -> dict[str, Any]:
    cash_flow, limits = template
    payment = {"invoice_id": invoice_id, "payment_id": "1", "party_id": "party",
               "shop_id": "shop", "cost": {"amount": 1000, "currency": CURRENCY},
               "route": {"provider_id": 1, "terminal_id": 1}, "cash_flow": cash_flow,
               "turnover_limits": limits}
    return payment if flow is None else {**payment, "flow": flow}


def _captured_at(invoice_ids: list[str]) -> dict[str, datetime]:
    """When each of these payments recorded its `captured` status."""
    from sqlalchemy import text

    from workers.db import transaction

    with transaction() as tx:
        rows = tx.conn.execute(text(
            "SELECT machine_id, occurred_at FROM machine_events WHERE namespace = 'payments'"
            " AND machine_id = ANY(:ids) AND body->>'type' = 'status_changed'"
            " AND body->'status'->>'status' = 'captured'"),
            {"ids": [f"{i}.1" for i in invoice_ids]}).all()
    return {machine_id.rsplit(".", 1)[0]: at for machine_id, at in rows}


def _processed_count(invoice_ids: list[str]) -> int:
    from sqlalchemy import text

    from workers.db import transaction

    with transaction() as tx:
        return tx.conn.execute(text(
            "SELECT count(*) FROM machine_events WHERE namespace = 'payments'"
            " AND machine_id = ANY(:ids) AND body->>'type' = 'status_changed'"
            " AND body->'status'->>'status' = 'processed'"),
            {"ids": [f"{i}.1" for i in invoice_ids]}).scalar_one()


def _figures(name: str, sent: dict[str, float], done: dict[str, datetime],
             started: float) -> harness.Figures:
    finished = max(at.timestamp() for at in done.values())
    latencies = tuple(done[key].timestamp() - sent[key] for key in sent)
    return harness.Figures(name, len(sent), finished - started, latencies)


def run_registered(n: int, template: tuple[list, list]) -> harness.Figures:
    from workers.celery_app import app

    ids = [f"reg-{uuid.uuid4().hex[:12]}" for _ in range(n)]
    sent: dict[str, float] = {}
    started = time.time()
    for invoice_id in ids:
        sent[invoice_id] = time.time()
        app.send_task("payments.register", kwargs=body(invoice_id, template, None))
    harness.wait_until(lambda: len(_captured_at(ids)) == n, timeout=TIMEOUT_S, interval=0.1)
    return _figures("registered payments", sent, _captured_at(ids), started)


def hold_payments(n: int, template: tuple[list, list]) -> list[str]:
    """N hold payments waiting in flow_waiting (their limits and batch 1 held)."""
    from workers.celery_app import app

    ids = [f"part-{uuid.uuid4().hex[:12]}" for _ in range(n)]
    flow = {"on_hold_expiration": "cancel",
            "held_until": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
    for invoice_id in ids:
        app.send_task("payments.start_hold", kwargs=body(invoice_id, template, flow))
    harness.wait_until(lambda: _processed_count(ids) == n, timeout=TIMEOUT_S, interval=0.1)
    return ids


def run_partial(ids: list[str]) -> harness.Figures:
    from workers.celery_app import app

    sent: dict[str, float] = {}
    started = time.time()
    for invoice_id in ids:
        sent[invoice_id] = time.time()
        app.send_task("payments.capture", kwargs={
            "invoice_id": invoice_id, "payment_id": "1", "reason": "bench",
            "cost": {"amount": 600, "currency": CURRENCY}})
    harness.wait_until(lambda: len(_captured_at(ids)) == len(ids), timeout=TIMEOUT_S,
                       interval=0.1)
    return _figures("partial captures", sent, _captured_at(ids), started)


def _plain_done(ids: list[str]) -> dict[str, datetime]:
    from sqlalchemy import text

    from benchmarks.plain_tasks import PLAIN_TABLE
    from workers.db import transaction

    with transaction() as tx:
        return dict(tx.conn.execute(text(
            f"SELECT id, captured_at FROM {PLAIN_TABLE} WHERE id = ANY(:ids)"), {"ids": ids}).all())


def run_plain_registered(n: int, template: tuple[list, list]) -> harness.Figures:
    from benchmarks.plain_tasks import now_rfc3339
    from workers.celery_app import app

    ids = [f"plain-reg-{uuid.uuid4().hex[:12]}" for _ in range(n)]
    sent: dict[str, float] = {}
    started = time.time()
    for invoice_id in ids:
        sent[invoice_id] = time.time()
        app.send_task("workers.bench_plain_capture_registered", kwargs={
            "body": body(invoice_id, template, None), "created_at": now_rfc3339()})
    harness.wait_until(lambda: len(_plain_done(ids)) == n, timeout=TIMEOUT_S, interval=0.1)
    return _figures("plain celery tasks", sent, _plain_done(ids), started)


def plain_holds(n: int, template: tuple[list, list]) -> list[tuple[dict, str]]:
    """N hold payments held by the plain tasks (limits and batch 1), to be captured."""
    from benchmarks.plain_tasks import now_rfc3339
    from workers.celery_app import app

    flow = {"on_hold_expiration": "cancel",
            "held_until": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
    held = [(body(f"plain-part-{uuid.uuid4().hex[:12]}", template, flow), now_rfc3339())
            for _ in range(n)]
    for payment, created_at in held:
        app.send_task("workers.bench_plain_hold", kwargs={"body": payment,
                                                          "created_at": created_at})
    harness.wait_until(lambda: _plain_holds_done(held), timeout=TIMEOUT_S, interval=0.2)
    return held


def run_plain_partial(held: list[tuple[dict, str]]) -> harness.Figures:
    from workers.celery_app import app

    ids = [payment["invoice_id"] for payment, _ in held]
    sent: dict[str, float] = {}
    started = time.time()
    for payment, created_at in held:
        sent[payment["invoice_id"]] = time.time()
        app.send_task("workers.bench_plain_partial_capture", kwargs={
            "body": payment, "created_at": created_at, "captured": 600})
    harness.wait_until(lambda: len(_plain_done(ids)) == len(ids), timeout=TIMEOUT_S,
                       interval=0.1)
    return _figures("plain celery tasks", sent, _plain_done(ids), started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    from benchmarks.plain_tasks import create_table

    harness.fresh_database()
    sandbox = harness.start_sandbox("accounter,limiter,provider")
    worker = harness.start_worker(args.concurrency,
                                  "benchmarks.runtime_tasks,benchmarks.plain_tasks")

    def measured(run: Callable[[], harness.Figures]) -> harness.Figures:
        with harness.CpuMeter(worker=worker, sandbox=sandbox) as meter:
            figures = run()
        return figures.with_cpu(meter)

    n = args.payments
    try:
        create_table()
        template = payment_template()
        runtime_bench.run_bare(10, 3)  # warm the pool's connections before measuring
        run_registered(5, template)
        run_plain_registered(5, template)
        registered = (measured(lambda: run_registered(n, template)),
                      measured(lambda: run_plain_registered(n, template)),
                      measured(lambda: runtime_bench.run_bare(n, 3)))
        held = hold_payments(n, template)
        plain_held = plain_holds(n, template)
        partial = (measured(lambda: run_partial(held)),
                   measured(lambda: run_plain_partial(plain_held)),
                   measured(lambda: runtime_bench.run_bare(n, 4)))
    finally:
        worker.stop()
        sandbox.stop()
    print(f"{n} payments per flow, worker concurrency {args.concurrency}, "
          f"{os.cpu_count()} CPUs; CPU per item: worker (pool included) and sandbox peers")
    for flow, (ours, plain, bare) in (("registered", registered), ("partial capture", partial)):
        print()
        harness.report(ours, [(plain, 0.85), (bare, 0.6)], "captures")
        for variant, figures in (("ours", ours), ("plain celery", plain), ("bare chain", bare)):
            harness.record(f"payments, {flow}", variant, "captures", figures)


def _plain_holds_done(held: list[tuple[dict, str]]) -> bool:
    """Every plain hold has held batch 1 in the sandbox Accounter."""
    from clients.settings import get_settings

    plans = control(get_settings().accounter_url, "state", method="GET")
    known = plans["plans"]
    return all(f"{payment['invoice_id']}.1.1" in known for payment, _ in held)


if __name__ == "__main__":
    main()
