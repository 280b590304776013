"""`POST /v1/cashback/register`: validation, merging sources, versions, the queued charge."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cashback.queues import CHARGE_QUEUE
from cashback.tables import order_clears
from tests.cashback.conftest import SERVICE, register, register_body, view, wait_status
from tests.support.waiting import wait_for
from workers import stq
from workers.db import transaction
from workers.tables import stq_tasks


def charge_task(order_id: str) -> stq.Task | None:
    return stq.pending(CHARGE_QUEUE, f"{SERVICE}/{order_id}")


def values(order: dict) -> dict[str, str]:
    return {item["source"]: item["value"] for item in order["cashback_by_source"]}


def test_a_new_order_starts_at_version_1_pending_with_its_charge_queued(api, transactions,
                                                                       new_order_id):
    # An invoice busy with another operation: a running worker may poll, never send.
    transactions.seed(new_order_id, cashback={"status": "in-progress", "version": 2})

    answer = register(api, new_order_id, {"user": "100", "service": "50.70"})

    assert answer == {"need_processing": True, "version": 1}
    order = view(api, new_order_id)
    assert order["version"] == 1
    assert order["currency"] == "RUB"
    assert values(order) == {"user": "100", "service": "50"}, "RUB cashback is whole units"
    assert order["charge_status"] == "pending"
    assert order["last_operation_id"] is None and order["error"] is None
    task = charge_task(new_order_id)
    assert task is not None
    assert task.kwargs == {"order_id": new_order_id, "service": SERVICE}


def test_named_sources_take_the_new_value_and_others_keep_theirs(api, new_order_id):
    register(api, new_order_id, {"user": "100", "service": "50"})

    answer = register(api, new_order_id, {"user": "40", "promo": "0"})

    assert answer == {"need_processing": True, "version": 2}
    assert values(view(api, new_order_id)) == {"user": "40", "service": "50", "promo": "0"}


def test_a_register_that_changes_nothing_keeps_the_version_and_one_pending_task(
        api, new_order_id):
    register(api, new_order_id, {"user": "100"})

    answer = register(api, new_order_id, {"user": "100.00"})

    assert answer == {"need_processing": True, "version": 1}
    with transaction() as tx:
        rows = tx.conn.execute(select(func.count()).select_from(stq_tasks).where(
            stq_tasks.c.queue == CHARGE_QUEUE,
            stq_tasks.c.task_id == f"{SERVICE}/{new_order_id}")).scalar_one()
    assert rows == 1


def test_the_version_the_caller_saw_must_match(api, new_order_id):
    register(api, new_order_id, {"user": "100"})

    stale = api.post("/v1/cashback/register",
                     json=register_body(new_order_id, {"user": "1"}, version=5))
    current = api.post("/v1/cashback/register",
                       json=register_body(new_order_id, {"user": "2"}, version=1))

    assert stale.status_code == 409
    assert stale.json()["code"] == "version_mismatch"
    assert current.json() == {"need_processing": True, "version": 2}
    assert values(view(api, new_order_id)) == {"user": "2"}


def test_a_new_order_with_a_version_other_than_0_is_a_mismatch(api, new_order_id):
    response = api.post("/v1/cashback/register",
                        json=register_body(new_order_id, {"user": "1"}, version=1))

    assert (response.status_code, response.json()["code"]) == (409, "version_mismatch")
    assert api.get(f"/v1/cashback/{SERVICE}/{new_order_id}").status_code == 404


@pytest.mark.parametrize(("change", "status", "code"), [
    ({"cashback_by_source": [{"source": "user", "value": "-1"}]}, 400, "negative_value"),
    ({"cashback_by_source": [{"source": "user", "value": "1.234"}]}, 400, "too_precise"),
    ({"cashback_by_source": [{"source": "user", "value": "1e3"}]}, 400, "invalid_value"),
    ({"cashback_by_source": [{"source": "u", "value": "1"}, {"source": "u", "value": "2"}]},
     400, "duplicate_source"),
    ({"currency": "XXX"}, 400, "unknown_currency"),
    ({"cashback_by_source": [{"source": "user", "value": 1.5}]}, 422, "invalid_request"),
    ({"yandex_uid": None}, 422, "invalid_request"),
    ({"version": "1"}, 422, "invalid_request"),
    ({"order_id": "a/b"}, 422, "invalid_request"),
])
def test_bad_input_is_refused_with_a_code_and_nothing_is_stored_or_queued(
        api, new_order_id, change, status, code):
    body = {**register_body(new_order_id, {"user": "1"}), **change}

    response = api.post("/v1/cashback/register", json=body)

    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert api.get(f"/v1/cashback/{SERVICE}/{new_order_id}").json()["code"] == "order_not_found"
    assert charge_task(new_order_id) is None


def test_a_body_that_is_not_an_object_is_a_schema_error(api):
    response = api.post("/v1/cashback/register", json=[1, 2])

    assert (response.status_code, response.json()["code"]) == (422, "invalid_request")


def registered(order_id: str) -> tuple:
    """What register writes (a worker may be charging the order meanwhile)."""
    with transaction() as tx:
        return tuple(tx.conn.execute(select(
            order_clears.c.currency, order_clears.c.yandex_uid,
            order_clears.c.cashback_by_source, order_clears.c.version,
        ).where(order_clears.c.order_id == order_id)).one())


def test_bad_input_for_an_existing_order_changes_nothing(api, new_order_id):
    register(api, new_order_id, {"user": "100"})
    before = registered(new_order_id)

    negative = api.post("/v1/cashback/register",
                        json=register_body(new_order_id, {"user": "5", "service": "-5"}))
    other_currency = api.post("/v1/cashback/register",
                              json=register_body(new_order_id, {"user": "5"}, currency="USD"))

    assert negative.status_code == 400
    assert (other_currency.status_code, other_currency.json()["code"]) == (
        409, "currency_mismatch")
    assert registered(new_order_id) == before


def test_precision_follows_the_currency(api, new_order_id):
    too_precise = api.post("/v1/cashback/register", json=register_body(
        new_order_id, {"user": "100.5"}, currency="JPY"))
    whole = api.post("/v1/cashback/register", json=register_body(
        new_order_id, {"user": "100"}, currency="JPY"))

    assert (too_precise.status_code, too_precise.json()["code"]) == (400, "too_precise")
    assert whole.status_code == 200
    assert values(view(api, new_order_id)) == {"user": "100"}


def test_the_api_needs_the_bearer_token(api, new_order_id):
    response = api.post("/v1/cashback/register", json=register_body(new_order_id, {"u": "1"}),
                        headers={"Authorization": "Bearer wrong"})

    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
    assert charge_task(new_order_id) is None


@pytest.mark.parametrize(("currency", "given", "stored"), [
    ("RUB", "50.70", "50"),  # Plus points in RUB are whole: rounded DOWN, never up
    ("RUB", "50.99", "50"),
    ("BYN", "50.75", "50.7"),
    ("USD", "50.75", "50.75"),  # not in CASHBACK_PRECISION: its ISO minor unit
    ("JPY", "50", "50"),
])
def test_values_are_rounded_down_to_the_cashback_precision(api, new_order_id, currency, given,
                                                           stored):
    register(api, new_order_id, {"user": given}, currency=currency)

    assert values(view(api, new_order_id)) == {"user": stored}


@pytest.mark.parametrize(("currency", "value"), [("RUB", "50.701"), ("BYN", "0.001"),
                                                 ("JPY", "1.5")])
def test_a_value_finer_than_the_minor_unit_is_still_refused(api, new_order_id, currency,
                                                            value):
    response = api.post("/v1/cashback/register", json=register_body(
        new_order_id, {"user": value}, currency=currency))

    assert (response.status_code, response.json()["code"]) == (400, "too_precise")


def test_registers_that_round_alike_change_nothing_and_charge_once(
        running_worker, api, transactions, new_order_id):
    transactions.seed(new_order_id)

    first = register(api, new_order_id, {"user": "50.70", "service": "10.01"})
    wait_status(api, new_order_id, "charged")
    second = register(api, new_order_id, {"user": "50.20", "service": "10.99"})
    wait_for(lambda: charge_task(new_order_id) is None, what="the charge task to finish")

    assert first == second == {"need_processing": True, "version": 1}
    order = view(api, new_order_id)
    assert (order["version"], order["charge_status"]) == (1, "charged")
    assert values(order) == {"user": "50", "service": "10"}
    [sent] = transactions.updates(new_order_id, outcome=None)
    assert sent["operation_id"] == f"{new_order_id}/v1"


@pytest.mark.parametrize(("given", "sent"), [(None, "card"), ("food_payment", "food_payment")])
def test_the_billing_service_defaults_to_the_services_setting(running_worker, api,
                                                             transactions, new_order_id,
                                                             given, sent):
    transactions.seed(new_order_id)
    extra = {} if given is None else {"billing_service": given}

    register(api, new_order_id, {"user": "1"}, **extra)

    wait_status(api, new_order_id, "charged")
    [update] = transactions.updates(new_order_id)
    assert update["body"]["billing_service"] == sent  # CASHBACK_BILLING_SERVICES: taxi=card
