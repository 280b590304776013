"""Capture rules end to end: a cart without a cost captures the cart's total; the provider
session call carries the route, reason, cart and transaction extra; the legacy plan id of the
core is tried only when the setting asks for it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from clients.accounter import AccounterClient, Batch, InvalidRequest, Posting
from payments import decisions, steps
from payments.peers import get_peers
from payments.schemas import RegisterBody
from payments.state import fold
from tests.payments.conftest import CURRENCY, new_ids, own_amounts, payment_body, wait_payment

FAR = datetime.now(UTC) + timedelta(days=1)
WINDOW = 2592000


def test_a_cart_capture_without_a_cost_captures_the_cart_total_and_the_provider_sees_it(
        running_worker, peers, api, ledger):
    invoice_id, payment_id = new_ids()
    body = payment_body(ledger, invoice_id, payment_id, 1000, hold=("cancel", FAR))
    body["transaction_info"] = {"id": "trx-auth", "extra": {"rrn": "123456", "approval": "A1"}}
    body["route"] = {"provider_id": 7, "terminal_id": 42}
    api.post("/v1/payments", json=body)
    wait_payment(api, invoice_id, payment_id, activity="flow_waiting")

    lines = [{"product": "tea", "quantity": 2, "price": {"amount": 150, "currency": CURRENCY}},
             {"product": "cake", "quantity": 1, "price": {"amount": 100, "currency": CURRENCY}}]
    response = api.post(f"/v1/payments/{invoice_id}/{payment_id}/capture",
                        json={"reason": "delivered", "cart": {"lines": lines}})
    assert response.status_code == 202, response.text
    state = wait_payment(api, invoice_id, payment_id, status="captured")
    assert state["captured_cost"] == {"amount": 400, "currency": CURRENCY}
    assert own_amounts(peers, ledger.ids) == ledger.expected_balances(400)

    session = peers.state("provider")["sessions"][f"{invoice_id}.{payment_id}.1.captured"]
    sent = session["last_body"]
    assert sent["cost"] == {"amount": 400, "currency": CURRENCY}
    assert sent["route"] == {"provider_id": 7, "terminal_id": 42}
    assert sent["reason"] == "delivered"
    assert sent["cart"] == {"lines": lines}
    assert sent["trx_extra"] == {"rrn": "123456", "approval": "A1"}
    assert sent["trx_id"] == "trx-auth"


def test_a_cart_and_a_cost_that_disagree_are_400(running_worker, peers, api, ledger):
    invoice_id, payment_id = new_ids()
    api.post("/v1/payments", json=payment_body(ledger, invoice_id, payment_id, 1000,
                                               hold=("cancel", FAR)))
    wait_payment(api, invoice_id, payment_id, activity="flow_waiting")
    line = {"product": "tea", "quantity": 3, "price": {"amount": 100, "currency": CURRENCY}}
    for capture in ({"reason": "x", "cost": {"amount": 400, "currency": CURRENCY},
                     "cart": {"lines": [line]}},
                    {"reason": "x", "cart": {"lines": [{**line, "quantity": 11}]}}):
        response = api.post(f"/v1/payments/{invoice_id}/{payment_id}/capture", json=capture)
        assert response.status_code == 400, response.text
    assert wait_payment(api, invoice_id, payment_id)["activity"] == "flow_waiting"


@pytest.fixture
def legacy_plan(peers, ledger):
    """A plan an older core version held under `<invoice>.<payment>`, and the state of the
    payment it belongs to as this version folds it."""
    invoice_id, payment_id = new_ids()
    batch = Batch(1, (Posting(ledger.provider, ledger.merchant, 500, CURRENCY, "legacy"),))
    client = AccounterClient(peers.url("accounter"))
    client.hold(f"{invoice_id}.{payment_id}", batch)
    request = RegisterBody.model_validate(
        payment_body(ledger, invoice_id, payment_id, 500)).to_domain()
    state = fold(decisions.start(request, datetime.now(UTC), WINDOW))
    yield state, batch
    client.close()


def test_the_legacy_plan_id_is_tried_when_the_setting_is_on(peers, ledger, legacy_plan):
    state, batch = legacy_plan
    on = dataclasses.replace(get_peers(), legacy_plan_ids=True)
    plan_id = steps.finish_plan(on, on.accounter.commit_plan, state, [batch])
    legacy = f"{state.started.invoice_id}.{state.started.payment_id}"
    assert plan_id == legacy
    assert peers.state("accounter")["plans"][legacy]["state"] == "COMMIT"
    assert own_amounts(peers, (ledger.provider, ledger.merchant)) == {
        ledger.provider: -500, ledger.merchant: 500}


def test_without_the_setting_an_unknown_plan_stays_an_error(peers, legacy_plan):
    state, batch = legacy_plan
    off = get_peers()
    assert off.legacy_plan_ids is False, "off by default"
    with pytest.raises(InvalidRequest, match="Posting plan not found"):
        steps.finish_plan(off, off.accounter.rollback_plan, state, [batch])
    legacy = f"{state.started.invoice_id}.{state.started.payment_id}"
    assert peers.state("accounter")["plans"][legacy]["state"] == "HOLD"


def test_the_limiter_context_carries_the_given_domain_revision_and_payer(ledger):
    from clients.limiter import limit_context

    body = payment_body(ledger, *new_ids(), 500, limits=["daily"])
    body["domain_revision"] = 2**40
    body["payer"] = {"payment_tool": {"bank_card": {"token": "tok", "payment_system": "mir"}},
                     "phone_number": "+7000"}
    state = fold(decisions.start(RegisterBody.model_validate(body).to_domain(),
                                 datetime.now(UTC), WINDOW))
    for captured in (None, state.cost):
        context = limit_context(steps._limit_context(state, captured=captured))
        invoice = context.payment_processing.invoice
        assert invoice.invoice.domain_revision == invoice.payment.payment.domain_revision == 2**40
        payer = invoice.payment.payment.payer.payment_resource
        assert payer.resource.payment_tool.bank_card.payment_system.id == "mir"
        assert payer.contact_info.phone_number == "+7000"
    del body["domain_revision"]
    state = fold(decisions.start(RegisterBody.model_validate(body).to_domain(),
                                 datetime.now(UTC), WINDOW))
    context = limit_context(steps._limit_context(state, captured=None))
    assert context.payment_processing.invoice.invoice.domain_revision == 0
