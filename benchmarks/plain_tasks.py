"""The second baseline: the capture flows as a user would write them with plain Celery tasks.

Each task makes the same peer calls as the matching payment step (Limiter hold/commit,
Accounter hold/commit, the provider session) through the same clients, with the same ids, and
then sends the next task. There is no durability: no machine, no event history, no timer row,
no lock; a lost message or a worker killed between two calls leaves the payment half done, and
nothing would notice. The last task records the capture in one row, which is also what the
benchmark waits for.

    registered:       plain_capture_registered (hold limits, hold batch 1) -> plain_commit
    partial capture:  plain_hold (not measured) ... plain_partial_capture (hold batches 2, 3)
                      -> plain_session (provider) -> plain_commit
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from clients.limiter import LimitChange, PaymentContext, operation_id
from payments.cashflow import compute, revert, to_batch
from payments.model import PaymentRequest
from payments.peers import get_peers
from payments.schemas import HoldBody, RegisterBody
from workers.celery_app import app
from workers.db import transaction

PLAIN_TABLE = "bench_plain_payments"  # benchmark scratch table, in the benchmark database only
ITERATION = 1


def create_table() -> None:
    with transaction() as tx:
        tx.conn.execute(text(
            f"CREATE TABLE IF NOT EXISTS {PLAIN_TABLE} (id text PRIMARY KEY, "
            "captured_at timestamptz NOT NULL DEFAULT clock_timestamp())"))


def _request(body: dict[str, Any]) -> PaymentRequest:
    schema = HoldBody if "flow" in body else RegisterBody
    return schema.model_validate(body).to_domain()


def _plan_id(request: PaymentRequest) -> str:
    return f"{request.invoice_id}.{request.payment_id}.{ITERATION}"


def _limits(request: PaymentRequest) -> tuple[str, list[LimitChange]]:
    return (operation_id(request.route.provider_id, request.route.terminal_id,
                         request.invoice_id, request.payment_id, ITERATION),
            [LimitChange(limit.id, limit.version) for limit in request.turnover_limits])


def _context(request: PaymentRequest, created_at: str, captured: int | None) -> PaymentContext:
    flow = request.flow
    return PaymentContext(
        invoice_id=request.invoice_id, payment_id=request.payment_id,
        party_id=request.party_id, shop_id=request.shop_id, created_at=created_at,
        domain_revision=0, cost_amount=request.cost.amount, currency=request.cost.currency,
        provider_id=request.route.provider_id, terminal_id=request.route.terminal_id,
        captured_amount=captured,
        flow_hold=None if flow is None else (
            flow.on_hold_expiration,
            flow.held_until.astimezone(UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")))


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _hold(body: dict[str, Any], created_at: str, captured: int | None) -> None:
    request, peers = _request(body), get_peers()
    op, changes = _limits(request)
    peers.limiter.hold_batch(op, changes, _context(request, created_at, captured))
    peers.accounter.hold(_plan_id(request), to_batch(1, compute(request.cash_flow, request.cost)))


@app.task(name="workers.bench_plain_capture_registered")
def plain_capture_registered(body: dict[str, Any], created_at: str) -> None:
    cost = body["cost"]["amount"]
    _hold(body, created_at, captured=cost)
    app.send_task("workers.bench_plain_commit",
                  kwargs={"body": body, "created_at": created_at, "captured": cost,
                          "batch_ids": [1]})


@app.task(name="workers.bench_plain_hold")
def plain_hold(body: dict[str, Any], created_at: str) -> None:
    _hold(body, created_at, captured=None)


@app.task(name="workers.bench_plain_partial_capture")
def plain_partial_capture(body: dict[str, Any], created_at: str, captured: int) -> None:
    request, peers = _request(body), get_peers()
    held = compute(request.cash_flow, request.cost)
    partial = compute(request.cash_flow, request.cost.with_amount(captured))
    peers.accounter.hold(_plan_id(request), to_batch(2, revert(held)))
    peers.accounter.hold(_plan_id(request), to_batch(3, partial))
    app.send_task("workers.bench_plain_session",
                  kwargs={"body": body, "created_at": created_at, "captured": captured})


@app.task(name="workers.bench_plain_session")
def plain_session(body: dict[str, Any], created_at: str, captured: int) -> None:
    request, peers = _request(body), get_peers()
    result = peers.provider.process_session(
        session_id=f"{_plan_id(request)}.captured", target="captured",
        invoice_id=request.invoice_id, payment_id=request.payment_id, cost_amount=captured,
        currency=request.cost.currency)
    if result.status != "succeeded":
        raise RuntimeError(f"plain baseline expects an instant session, got {result.status}")
    app.send_task("workers.bench_plain_commit",
                  kwargs={"body": body, "created_at": created_at, "captured": captured,
                          "batch_ids": [1, 2, 3]})


@app.task(name="workers.bench_plain_commit")
def plain_commit(body: dict[str, Any], created_at: str, captured: int,
                 batch_ids: list[int]) -> None:
    request, peers = _request(body), get_peers()
    op, changes = _limits(request)
    peers.limiter.commit_batch(op, changes, _context(request, created_at, captured))
    held = compute(request.cash_flow, request.cost)
    flows = {1: held, 2: revert(held),
             3: compute(request.cash_flow, request.cost.with_amount(captured))}
    peers.accounter.commit_plan(_plan_id(request), [to_batch(i, flows[i]) for i in batch_ids])
    with transaction() as tx:
        tx.conn.execute(text(f"INSERT INTO {PLAIN_TABLE} (id) VALUES (:id)"),
                        {"id": request.invoice_id})
