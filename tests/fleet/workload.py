"""What a fleet run drives and reads back: payments, cashback orders, the database's view.

Bodies and waits are the ones the payments and cashback tests use, sent over HTTP to the
fleet's API process instead of an in-process client.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.cashback.conftest import register as register_order
from tests.fixtures.sandbox import Transactions
from tests.fleet.fleet import Fleet
from tests.payments.conftest import Ledger, new_account, new_ids, new_limit, payment_body

FAR = datetime.now(UTC) + timedelta(days=1)
COST, PARTIAL = 1000, 600
CASHBACK = {"user": "100", "service": "50"}


class Workload:
    """One ledger and one turnover limit shared by every payment of the run."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.ledger = Ledger(*(new_account(fleet.peers) for _ in range(4)))
        self.limit = new_limit(fleet.peers)
        self.transactions = Transactions(fleet.peers)

    def register(self) -> tuple[str, str]:
        ids = new_ids()
        self._post("/v1/payments/register",
                   payment_body(self.ledger, *ids, COST, limits=[self.limit]))
        return ids

    def hold(self) -> tuple[str, str]:
        ids = new_ids()
        self._post("/v1/payments", payment_body(self.ledger, *ids, COST, limits=[self.limit],
                                                hold=("cancel", FAR)))
        return ids

    def capture(self, ids: tuple[str, str]) -> None:
        self._post(f"/v1/payments/{ids[0]}/{ids[1]}/capture",
                   {"reason": "part", "cost": {"amount": PARTIAL, "currency": "RUB"}})

    def order(self, order_id: str) -> None:
        self.transactions.seed(order_id)
        register_order(self.fleet.api, order_id, CASHBACK)

    def _post(self, path: str, body: dict) -> None:
        response = self.fleet.api.post(path, json=body)
        assert response.status_code in (200, 202), response.text


def captured_count(fleet: Fleet) -> int:
    with fleet.database.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM machine_events WHERE namespace = 'payments'"
            " AND body->>'type' = 'status_changed'"
            " AND body->'status'->>'status' = 'captured'")).scalar_one()


def captures_per_payment(fleet: Fleet) -> Counter[str]:
    """machine id -> how many `captured` status changes its history holds."""
    with fleet.database.connect() as conn:
        rows = conn.execute(text(
            "SELECT machine_id, count(*) FROM machine_events WHERE namespace = 'payments'"
            " AND body->>'type' = 'status_changed'"
            " AND body->'status'->>'status' = 'captured' GROUP BY machine_id")).all()
    return Counter({machine_id: count for machine_id, count in rows})


def unsettled(fleet: Fleet) -> list[tuple]:
    """Machines not at rest (a failure, or a timer still set) and STQ rows still pending."""
    with fleet.database.connect() as conn:
        machines = conn.execute(text(
            "SELECT namespace, id, status, timer_due_at FROM machines"
            " WHERE status <> 'working' OR timer_due_at IS NOT NULL")).all()
        tasks = conn.execute(text("SELECT queue, task_id, exec_tries FROM stq_tasks")).all()
    return [tuple(row) for row in [*machines, *tasks]]
