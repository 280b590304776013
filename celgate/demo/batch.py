"""The demo's batch: many registered payments at once, with progress bars and a summary."""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from celgate.demo.talk import Api, DemoFailed, console, money
from celgate.demo.walkthrough import payment_body, payment_path


@dataclass
class Outcome:
    state: str
    seconds: float
    amount: int


@dataclass
class Batch:
    outcomes: list[Outcome] = field(default_factory=list)
    elapsed: float = 0.0


def _final(state: dict[str, Any]) -> str | None:
    if state.get("machine_status") == "failed":
        return "machine failed"
    if state["activity"] == "idle" and state["status"] in ("captured", "cancelled", "failed"):
        return state["status"]
    return None


def run_batch(api: Api, accounts: dict[str, int], count: int) -> Batch:
    """Register `count` payments of random amounts and follow each to its final state."""
    rng = random.Random()
    bodies = [payment_body(accounts, rng.randrange(100, 500_000)) for _ in range(count)]
    submitted: dict[str, float] = {}
    batch = Batch()
    started = time.monotonic()
    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        sent = progress.add_task("registered", total=count)
        done = progress.add_task("final state reached", total=count)
        for body in bodies:
            api.post("/v1/payments/register", body)
            submitted[body["invoice_id"]] = time.monotonic()
            progress.advance(sent)
        pending = {body["invoice_id"]: body for body in bodies}
        deadline = time.monotonic() + 60 + count
        while pending:
            for invoice_id, body in list(pending.items()):
                final = _final(api.get(payment_path(body)))
                if final:
                    batch.outcomes.append(Outcome(final, time.monotonic() - submitted[invoice_id],
                                                  body["cost"]["amount"]))
                    del pending[invoice_id]
                    progress.advance(done)
            if time.monotonic() > deadline:
                raise DemoFailed(f"{len(pending)} payments did not reach a final state")
            time.sleep(0.05)
    batch.elapsed = time.monotonic() - started
    return batch


def show_summary(batch: Batch) -> None:
    by_state: dict[str, list[Outcome]] = {}
    for outcome in batch.outcomes:
        by_state.setdefault(outcome.state, []).append(outcome)
    table = Table(title=f"{len(batch.outcomes)} registered payments")
    table.add_column("final state")
    table.add_column("payments", justify="right")
    table.add_column("amount", justify="right")
    for state, outcomes in sorted(by_state.items()):
        table.add_row(state, str(len(outcomes)), money(sum(o.amount for o in outcomes)))
    console.print(table)
    latencies = sorted(o.seconds for o in batch.outcomes)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    figures = Table.grid(padding=(0, 2))
    figures.add_column(style="bold")
    figures.add_column(justify="right")
    figures.add_row("elapsed", f"{batch.elapsed:.1f} s")
    figures.add_row("throughput", f"{len(latencies) / batch.elapsed:.1f} payments/s")
    figures.add_row("latency p50", f"{statistics.median(latencies) * 1000:.0f} ms")
    figures.add_row("latency p99", f"{p99 * 1000:.0f} ms")
    console.print(figures)
