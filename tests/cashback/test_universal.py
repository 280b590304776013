"""`universal_cashback_processing`: cashback from the invoice's cleared sums and the order's
rates, registered and then charged."""

from __future__ import annotations

from decimal import Decimal

from cashback.queues import UNIVERSAL_QUEUE
from cashback.tables import order_rates
from cashback.universal import Rate, cashback_by_source, eligible_base
from clients.transactions import Invoice
from tests.cashback.conftest import SERVICE, view, wait_status
from tests.support.waiting import wait_for
from workers import stq
from workers.celery_app import app
from workers.db import transaction

CLEARED = [
    {"payment_type": "card", "items": [{"item_id": "ride", "amount": "1000.00"},
                                       {"item_id": "tips", "amount": "99.99"}]},
    {"payment_type": "personal_wallet", "items": [{"item_id": "ride", "amount": "500"}]},
]


def invoice_with(cleared: list[dict]) -> Invoice:
    return Invoice.model_validate({"id": "o", "currency": "RUB", "status": "cleared",
                                   "cleared": cleared,
                                   "cashback": {"status": "init", "version": 1}})


def test_the_base_is_the_cleared_sum_of_payment_types_not_blacklisted():
    assert eligible_base(invoice_with(CLEARED), {"personal_wallet"}) == Decimal("1099.99")
    assert eligible_base(invoice_with(CLEARED), set()) == Decimal("1599.99")


def test_cashback_is_rate_times_base_capped_and_rounded_down():
    rates = {"user": Rate(Decimal("0.07"), None), "service": Rate(Decimal("0.5"), Decimal("30")),
             "none": Rate(Decimal(0), None)}

    values = cashback_by_source(Decimal("1099.99"), rates, "RUB")

    # 76.9993 is rounded down, never up; 549.995 is capped at 30.
    assert values == {"user": Decimal("76.99"), "service": Decimal("30.00"),
                      "none": Decimal("0.00")}


def set_rates(order_id: str, rates: dict[str, tuple[str, str | None]]) -> None:
    with transaction() as tx:
        tx.conn.execute(order_rates.insert(), [
            {"order_id": order_id, "service": SERVICE, "source": source, "rate": Decimal(rate),
             "max_value": None if cap is None else Decimal(cap)}
            for source, (rate, cap) in rates.items()])


def universal_task(order_id: str) -> stq.Task | None:
    return stq.pending(UNIVERSAL_QUEUE, f"{SERVICE}/{order_id}")


def reschedules(order_id: str) -> int:
    task = universal_task(order_id)
    return task.reschedule_counter if task else 0


def test_universal_processing_registers_the_computed_cashback_which_is_then_charged(
        running_worker, api, transactions, new_order_id):
    transactions.seed(new_order_id, cleared=CLEARED)
    set_rates(new_order_id, {"user": ("0.07", None), "service": ("0.5", "30")})

    # Enqueued by name, as the service that finishes orders does.
    app.send_task(UNIVERSAL_QUEUE, kwargs={"order_id": new_order_id, "service": SERVICE})

    order = wait_status(api, new_order_id, "charged")
    assert {i["source"]: i["value"] for i in order["cashback_by_source"]} == {
        "user": "76.99", "service": "30.00"}
    [sent] = transactions.updates(new_order_id)
    assert {r["source"]: r["amount"] for r in sent["body"]["reward"]} == {
        "user": "76.99", "service": "30.00"}
    assert universal_task(new_order_id) is None


def test_without_rates_it_waits_for_them(running_worker, api, transactions, new_order_id):
    transactions.seed(new_order_id, cleared=CLEARED)
    app.send_task(UNIVERSAL_QUEUE, kwargs={"order_id": new_order_id, "service": SERVICE})

    wait_for(lambda: reschedules(new_order_id) >= 2,
             what="universal processing to wait for rates twice")
    assert api.get(f"/v1/cashback/{SERVICE}/{new_order_id}").status_code == 404

    set_rates(new_order_id, {"user": ("0.1", None)})

    wait_for(lambda: universal_task(new_order_id) is None, what="universal processing to end")
    assert {i["source"]: i["value"] for i in view(api, new_order_id)["cashback_by_source"]} == {
        "user": "109.99"}
