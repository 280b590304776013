"""`universal_cashback_processing`: the `service` source is calc(base) of the invoice's sums,
the `user` source its `cashback` items; registered, then charged; bounded waiting for rates."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from cashback import rates, universal
from cashback.queues import UNIVERSAL_QUEUE, OrderKwargs
from cashback.rates import ClassRate, OrderRates, RatesRequest
from cashback.settings import get_settings
from clients.transactions import Invoice
from tests.cashback.conftest import SERVICE, view, wait_status
from tests.support.waiting import wait_for
from workers import stq
from workers.celery_app import app
from workers.db import transaction


def payment(payment_type: str, **items: str) -> dict:
    return {"payment_type": payment_type,
            "items": [{"item_id": item, "amount": amount} for item, amount in items.items()]}


def invoice_with(cleared: list[dict], held: list[dict] = (), currency: str = "RUB") -> Invoice:
    return Invoice.model_validate({"id": "o", "currency": currency, "status": "cleared",
                                   "cleared": cleared, "held": list(held),
                                   "cashback": {"status": "init", "version": 1}})


RATE_10 = OrderRates("econom", {"econom": ClassRate(Decimal("0.1"), None)})
BLACKLIST = frozenset({"personal_wallet"})

# The worked examples, at rate 0.1 for the order's class.
WORKED = [
    pytest.param([payment("card", ride="1000", cashback="100", tips="20")],
                 [payment("card", ride="100")], False, {"service": "100", "user": "100"},
                 id="cleared-ride-cashback-tips-and-held-ride"),
    pytest.param([payment("card", ride="90", cashback="10"),
                  payment("applepay", ride="280", cashback="20")], [], False,
                 {"service": "37", "user": "30"}, id="two-payment-types"),
    pytest.param([payment("personal_wallet", ride="500", cashback="50")], [], False,
                 {"service": "0", "user": "0"}, id="blacklisted-earns-nothing"),
    pytest.param([payment("card", ride="1000", cashback="100", tips="20")],
                 [payment("card", ride="100", cashback="5")], True,
                 {"service": "110", "user": "105"}, id="instant-counts-held"),
]


@pytest.mark.parametrize(("cleared", "held", "instant", "expected"), WORKED)
def test_target_of_the_worked_examples(cleared, held, instant, expected):
    target = universal.target_of(invoice_with(cleared, held), RATE_10, blacklist=BLACKLIST,
                                 instant=instant)

    assert {s: format(v, "f") for s, v in target.items()} == expected


def test_the_user_source_is_rounded_down_to_the_cashback_precision():
    invoice = invoice_with([payment("card", ride="100.99", cashback="10.99")])

    target = universal.target_of(invoice, RATE_10, blacklist=BLACKLIST, instant=False)

    assert target == {"service": Decimal("10"), "user": Decimal("10")}


# --- end to end --------------------------------------------------------------------------


def post_rates(api, order_id: str, value: str = "0.1", cap: str | None = None) -> None:
    rate = {"class": "econom", "value": value}
    if cap is not None:
        rate["max_absolute_value"] = cap
    response = api.post("/v1/cashback/rates", json={
        "order_id": order_id, "service": SERVICE, "tariff_class": "econom",
        "by_classes": [rate, {"class": "business", "value": "0.5"}]})
    assert response.json() == {"created": True}, response.text


def start(order_id: str) -> None:
    # Enqueued by name, as the service that finishes orders does.
    app.send_task(UNIVERSAL_QUEUE, kwargs={"order_id": order_id, "service": SERVICE})


def universal_task(order_id: str) -> stq.Task | None:
    return stq.pending(UNIVERSAL_QUEUE, f"{SERVICE}/{order_id}")


def registered(api, order_id: str) -> dict[str, str]:
    return {i["source"]: i["value"] for i in view(api, order_id)["cashback_by_source"]}


@pytest.mark.parametrize(("cleared", "held", "expected"), [
    pytest.param(*WORKED[0].values[:2], WORKED[0].values[3], id="held-not-counted"),
    pytest.param(*WORKED[1].values[:2], WORKED[1].values[3], id="two-payment-types"),
])
def test_the_worked_examples_end_charged(running_worker, api, transactions, new_order_id,
                                         cleared, held, expected):
    transactions.seed(new_order_id, cleared=cleared, held=held)
    post_rates(api, new_order_id)

    start(new_order_id)

    order = wait_status(api, new_order_id, "charged")
    assert {i["source"]: i["value"] for i in order["cashback_by_source"]} == expected
    [sent] = transactions.updates(new_order_id)
    assert {r["source"]: r["amount"] for r in sent["body"]["reward"]} == expected
    assert universal_task(new_order_id) is None


def test_a_blacklisted_payment_type_earns_nothing(running_worker, api, transactions,
                                                  new_order_id):
    transactions.seed(new_order_id, cleared=[payment("personal_wallet", ride="500",
                                                     cashback="50")])
    post_rates(api, new_order_id)

    start(new_order_id)

    wait_status(api, new_order_id, "charged")
    assert registered(api, new_order_id) == {"service": "0", "user": "0"}
    assert transactions.updates(new_order_id, outcome=None) == [], "nothing to send"


def test_the_cap_of_the_class_bounds_the_service_source(running_worker, api, transactions,
                                                       new_order_id):
    transactions.seed(new_order_id, cleared=[payment("card", ride="1000")])
    post_rates(api, new_order_id, value="0.5", cap="40")

    start(new_order_id)

    wait_status(api, new_order_id, "charged")
    assert registered(api, new_order_id) == {"service": "40", "user": "0"}


def test_without_rates_it_waits_for_them(running_worker, api, transactions, new_order_id):
    transactions.seed(new_order_id, cleared=[payment("card", ride="1099.99")])
    start(new_order_id)

    wait_for(lambda: (universal_task(new_order_id) or stq.Task("", "", {}, None, 0, 0)
                      ).reschedule_counter >= 2, what="universal processing to wait twice")
    assert api.get(f"/v1/cashback/{SERVICE}/{new_order_id}").status_code == 404

    post_rates(api, new_order_id)

    wait_for(lambda: universal_task(new_order_id) is None, what="universal processing to end")
    assert registered(api, new_order_id) == {"service": "109", "user": "0"}


def gave_up_lines(log_path, order_id: str) -> list[dict]:
    lines = []
    for line in log_path.read_text(errors="replace").splitlines():
        if order_id in line and "gave up" in line:
            lines.append(json.loads(line))
    return lines


def test_without_rates_it_gives_up_visibly_after_the_wait_limit(running_worker, api,
                                                                 transactions, new_order_id):
    transactions.seed(new_order_id, cleared=[payment("card", ride="100")])
    start(new_order_id)

    wait_for(lambda: universal_task(new_order_id) is None, timeout=30,
             what="universal processing to give up")
    [line] = wait_for(lambda: gave_up_lines(running_worker.log_path, new_order_id),
                      what="the give-up log line")
    assert line["level"] == "error"
    assert (line["order_id"], line["code"]) == (new_order_id, "no_rates")
    assert line["runs"] == get_settings().cashback_rates_wait_limit
    assert api.get(f"/v1/cashback/{SERVICE}/{new_order_id}").status_code == 404


@pytest.mark.parametrize(("seed_invoice", "reason"), [(False, "no_invoice"), (True, "no_rates")])
def test_the_run_at_the_limit_finishes_and_counts_the_give_up(database, transactions,
                                                              new_order_id, seed_invoice,
                                                              reason):
    if seed_invoice:
        transactions.seed(new_order_id, cleared=[payment("card", ride="100")])
    else:
        # Rates, but transactions never heard of the order.
        assert rates.store(RatesRequest(order_id=new_order_id, service=SERVICE,
                                        tariff_class="econom", by_classes=[]))
    limit = get_settings().cashback_rates_wait_limit
    labels = {"service": SERVICE, "reason": reason}
    before = REGISTRY.get_sample_value("celgate_cashback_universal_gave_up_total", labels) or 0
    kwargs = OrderKwargs(order_id=new_order_id, service=SERVICE)

    def run(counter: int) -> stq.JobResult:
        task = stq.Task(UNIVERSAL_QUEUE, f"{SERVICE}/{new_order_id}", kwargs.model_dump(),
                        stq.now(), 0, counter)
        with transaction() as tx:
            return universal.run(tx, task, kwargs)

    assert isinstance(run(limit - 2), stq.Reschedule)
    assert isinstance(run(limit - 1), stq.Finish)
    after = REGISTRY.get_sample_value("celgate_cashback_universal_gave_up_total", labels)
    assert after == before + 1
