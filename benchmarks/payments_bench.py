"""Payments benchmark: N payments through the capture chain vs a bare Celery chain.

    python -m benchmarks.payments_bench [--payments 200] [--concurrency 2]

Two flows, each beside a bare chain (benchmarks/runtime_tasks.py) of as many Celery tasks,
measured in the same run on the same worker pool:

- registered: `payments.register` task + processing_capture + finalizing_accounter (3 tasks);
  latency from sending the register task to the payment's `captured` change.
- partial capture: N hold payments are made to wait in flow_waiting first (not measured), then
  `payments.capture` task + updating_accounter + finalizing_session + finalizing_accounter
  (4 tasks); latency from sending the capture task to `captured`.

The sandbox Accounter, Limiter and provider run in a subprocess (`celgate-sandbox`) on ports
shifted by `harness.SANDBOX_PORT_OFFSET`. The bare chain calls no peer, so the ratio includes
the peers' round trips as well as the durable runtime.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import harness, runtime_bench
from celgate.processes import ManagedProcess

CURRENCY = "RUB"
TIMEOUT_S = 900


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
    """CPU seconds the worker (pool included) and the sandbox peers spend during a run."""

    def __init__(self, worker: ManagedProcess, sandbox: ManagedProcess) -> None:
        self._pids = {"worker": worker.proc.pid, "sandbox peers": sandbox.proc.pid}
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._start = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        return self

    def __exit__(self, *_: object) -> None:
        self.used = {name: cpu_seconds(pid) - self._start[name]
                     for name, pid in self._pids.items()}

    def line(self, items: int) -> str:
        return "CPU per item: " + ", ".join(f"{name} {seconds / items * 1000:.1f} ms"
                                             for name, seconds in self.used.items())


def payment_template() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A three-posting cash flow over fresh sandbox accounts, and one turnover limit."""
    from workers.settings import get_settings

    settings = get_settings()
    new_account = {"currency": CURRENCY}
    accounts = [harness.sandbox_control(settings.accounter_url, "accounts", new_account)["id"]
                for _ in range(4)]
    limit_id = f"bench-{uuid.uuid4().hex[:8]}"
    harness.sandbox_control(settings.limiter_url, "limits", {"id": limit_id, "currency": CURRENCY})
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    harness.fresh_database()
    sandbox = harness.start_sandbox("accounter,limiter,provider")
    worker = harness.start_worker(args.concurrency, "benchmarks.runtime_tasks")
    runs: list[tuple[harness.Figures, CpuMeter]] = []

    def measured(run: Callable[[], harness.Figures]) -> None:
        with CpuMeter(worker, sandbox) as meter:
            figures = run()
        runs.append((figures, meter))

    try:
        template = payment_template()
        runtime_bench.run_bare(10, 3)  # warm the pool's connections before measuring
        run_registered(5, template)
        measured(lambda: runtime_bench.run_bare(args.payments, 3))
        measured(lambda: run_registered(args.payments, template))
        held = hold_payments(args.payments, template)
        measured(lambda: runtime_bench.run_bare(args.payments, 4))
        measured(lambda: run_partial(held))
    finally:
        worker.stop()
        sandbox.stop()
    print(f"{args.payments} payments per flow, worker concurrency {args.concurrency}, "
          f"{os.cpu_count()} CPUs")
    for (bare, bare_cpu), (ours, our_cpu) in (runs[0:2], runs[2:4]):
        print()
        harness.report(ours, bare, "captures", target_ratio=0.6)
        print(f"  {ours.name}: {our_cpu.line(ours.items)}")
        print(f"  {bare.name}: {bare_cpu.line(bare.items)}")


if __name__ == "__main__":
    main()
