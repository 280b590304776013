"""Cashback benchmark: N orders from register to charged vs a bare Celery chain.

    python -m benchmarks.cashback_bench [--orders 300] [--concurrency 2] [--poll-s 0]
                                        [--bare-steps 3]

An order takes three durable steps, each a PostgreSQL transaction followed by a Celery
message: the register handler (upsert order_clears, queue the charge; called here in the
benchmark process, as the API process would), then two runs of `cashback_charge_processing`
(read the invoice and send the update; read it again and find it charged). The sandbox
transactions service settles an update at once (delay 0) and the charge polls again after
`--poll-s` (CASHBACK_POLL_INITIAL_S). The baseline is a bare chain of `--bare-steps` Celery
tasks (benchmarks/runtime_tasks.py: one transaction and one message a step), measured in the
same run on the same worker pool; it calls no peer, so the ratio also pays for three round
trips to transactions per order. `--bare-steps 2` compares with the charge runs alone.
Latency: from the register call to the order's `charged` commit.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from typing import Any

from benchmarks import harness, runtime_bench
from sandbox.control_client import control

ORDER_STEPS = 3  # register, the charge run that sends the update, the one that confirms it
SERVICE = "bench"
TIMEOUT_S = 900


def _control(path: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
    from clients.settings import get_settings

    return control(get_settings().transactions_url, path, body, method)


def _charged_at(order_ids: list[str]) -> dict[str, float]:
    from sqlalchemy import select

    from cashback.tables import order_clears
    from workers.db import transaction

    with transaction() as tx:
        rows = tx.conn.execute(
            select(order_clears.c.order_id, order_clears.c.updated_at).where(
                order_clears.c.service == SERVICE, order_clears.c.order_id.in_(order_ids),
                order_clears.c.charge_status == "charged")).all()
    return {order_id: at.timestamp() for order_id, at in rows}


def run_orders(n: int) -> harness.Figures:
    from cashback.register import RegisterRequest, SourceValue, register_cashback

    ids = [f"bench-{uuid.uuid4().hex[:12]}" for _ in range(n)]
    for order_id in ids:
        _control("invoices", {"id": order_id, "currency": "RUB", "user_ip": "127.0.0.1",
                              "yandex_uid": "bench-user"})
    cashback = [SourceValue(source="user", value="100"), SourceValue(source="service",
                                                                      value="50")]
    sent: dict[str, float] = {}
    started = time.time()
    for order_id in ids:
        sent[order_id] = time.time()
        register_cashback(RegisterRequest(
            order_id=order_id, service=SERVICE, currency="RUB", yandex_uid="bench-user",
            wallet_id="w/bench", cashback_by_source=cashback))
    harness.wait_until(lambda: len(_charged_at(ids)) == n, timeout=TIMEOUT_S, interval=0.1)
    done = _charged_at(ids)
    return harness.Figures("orders charged", n, max(done.values()) - started,
                           tuple(done[i] - sent[i] for i in ids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--bare-steps", type=int, default=ORDER_STEPS,
                        help="length of the bare chain compared with")
    parser.add_argument("--poll-s", type=float, default=0.0,
                        help="CASHBACK_POLL_INITIAL_S of the worker: the wait before the "
                             "confirming run")
    args = parser.parse_args()
    os.environ["CASHBACK_POLL_INITIAL_S"] = str(args.poll_s)

    harness.fresh_database()
    sandbox = harness.start_sandbox("transactions")
    worker = harness.start_worker(args.concurrency, "benchmarks.runtime_tasks")
    try:
        runtime_bench.run_bare(10, args.bare_steps)  # warm the pool's connections
        run_orders(5)
        with harness.CpuMeter(worker=worker, sandbox=sandbox) as meter:
            bare = runtime_bench.run_bare(args.orders, args.bare_steps)
        bare = bare.with_cpu(meter)
        _control("reset")
        with harness.CpuMeter(worker=worker, sandbox=sandbox) as meter:
            ours = run_orders(args.orders)
        ours = ours.with_cpu(meter)
        updates = [u for u in _control("state", method="GET")["updates"]
                   if u["outcome"] == "accepted"]
    finally:
        worker.stop()
        sandbox.stop()
    print(f"{args.orders} orders, worker concurrency {args.concurrency}, "
          f"poll after update {args.poll_s}s; {len(updates)} updates sent to transactions")
    harness.report(ours, [(bare, 0.6)], "orders")
    harness.record("cashback, register to charged", "ours", "orders", ours)
    harness.record("cashback, register to charged", "bare chain", "orders", bare)


if __name__ == "__main__":
    main()
