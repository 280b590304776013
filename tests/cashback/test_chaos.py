"""Long fault-injection run of cashback charging (`make chaos`).

Orders are registered, and half of them registered again with a new target, while the worker is
SIGKILLed mid-charge and the broker is flushed, with a sweeper bringing lost messages back. The
invoices settle with a delay, so charges are also polled while in progress, and the sandbox
answers slowly, refuses some calls and loses the answers of others. Every order must end
charged with its last target rewarded, and no target may reach an invoice twice: an update
repeated after a kill carries the same operation id, which transactions takes as a repeat.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from cashback.queues import CHARGE_QUEUE
from tests.cashback.conftest import SERVICE, register, wait_status
from tests.support.chaos import kills_and_flushes
from workers import stq

pytestmark = pytest.mark.chaos

ORDERS = 30
FIRST = {"user": "100", "service": "50"}
SECOND = {"user": "40", "service": "50"}


def test_kills_and_flushes_lose_and_double_no_cashback(running_worker, broker, api, peers,
                                                        transactions, new_order_id):
    transactions.settings(delay_s=0.3, outcome="success")
    # Slow answers, so kills land mid-call; lost answers and refusals besides.
    peers.faults("transactions", {"rates": {"503": 0.1, "timeout_after": 0.1}, "seed": 3,
                                  "latency_ms": 150, "timeout_ms": 2500})
    orders = [f"{new_order_id}-{n}" for n in range(ORDERS)]
    registered_again = orders[::2]
    for order_id in orders:
        transactions.seed(order_id)
    with kills_and_flushes(running_worker, broker, seed=11):
        for order_id in orders:
            register(api, order_id, FIRST)
        time.sleep(1)
        for order_id in registered_again:
            register(api, order_id, SECOND)
        for order_id in orders:
            wait_status(api, order_id, "charged", timeout=90)

    for order_id in orders:
        target = SECOND if order_id in registered_again else FIRST
        invoice = transactions.invoice(order_id)
        assert invoice["cashback"]["status"] == "success", order_id
        assert _amounts(invoice["cashback"]["rewarded"]) == _amounts_of(target), order_id
        accepted = [entry["body"]["operation_id"]
                    for entry in transactions.updates(order_id, outcome="accepted")]
        # One operation per registered target at most (the first may have been overtaken).
        assert len(accepted) <= (2 if order_id in registered_again else 1), order_id
        assert stq.pending(CHARGE_QUEUE, f"{SERVICE}/{order_id}") is None, order_id


def _amounts(items: list[dict[str, str]]) -> dict[str, Decimal]:
    return {item["source"]: Decimal(item["amount"]) for item in items}


def _amounts_of(target: dict[str, str]) -> dict[str, Decimal]:
    return {source: Decimal(value) for source, value in target.items()}
