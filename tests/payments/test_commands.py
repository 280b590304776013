"""Bad commands are refused synchronously with a code and change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.payments.conftest import events, new_ids, payment, payment_body, wait_payment

FAR = datetime.now(UTC) + timedelta(days=1)


@pytest.fixture
def waiting(running_worker, peers, api, ledger):
    """A hold payment of 1000 RUB waiting in flow_waiting."""
    invoice_id, payment_id = new_ids()
    api.post("/v1/payments", json=payment_body(ledger, invoice_id, payment_id, 1000,
                                               hold=("cancel", FAR)))
    wait_payment(api, invoice_id, payment_id, activity="flow_waiting")
    return invoice_id, payment_id


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"reason": "x", "cost": {"amount": 500, "currency": "USD"}}, 400,
         "inconsistent_currency"),
        ({"reason": "x", "cost": {"amount": 0, "currency": "RUB"}}, 400, "invalid_amount"),
        ({"reason": "x", "cost": {"amount": 1001, "currency": "RUB"}}, 400,
         "amount_exceeded_capture_balance"),
        ({"reason": "x", "cost": {"amount": -5, "currency": "RUB"}}, 400, "invalid_amount"),
        ({"reason": "x", "cost": {"amount": 10.5, "currency": "RUB"}}, 400, "invalid_amount"),
        # 1e16 + 1 as a JSON float is already 1e16: an amount that lost a digit is refused.
        ({"reason": "x", "cost": {"amount": 1e16 + 1, "currency": "RUB"}}, 400,
         "invalid_amount"),
        ({"reason": "x", "cost": {"amount": 10, "currency": "XYZ"}}, 400, "unknown_currency"),
        ({"reason": "x", "cost": {"amount": 600, "currency": "RUB"}, "cart": {"lines": [
            {"product": "tea", "quantity": 1, "price": {"amount": 500, "currency": "RUB"}}]}},
         400, "invalid_cart"),
        ({"cost": {"amount": 10, "currency": "RUB"}}, 422, "invalid_request"),
        ({"reason": "x", "cost": {"amount": "10", "currency": "RUB"}}, 422, "invalid_request"),
        ({"reason": "x", "surprise": 1}, 422, "invalid_request"),
        (["reason"], 422, "invalid_request"),
    ],
)
def test_bad_captures_are_refused_and_change_nothing(api, waiting, body, status, code):
    before = events(api, *waiting)
    response = api.post(f"/v1/payments/{waiting[0]}/{waiting[1]}/capture", json=body)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert response.json()["message"]
    assert events(api, *waiting) == before
    assert payment(api, *waiting)["activity"] == "flow_waiting"


def test_malformed_json_is_refused(api, waiting):
    response = api.post(f"/v1/payments/{waiting[0]}/{waiting[1]}/capture",
                        content=b'{"reason": ', headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (422, "invalid_request")
    assert payment(api, *waiting)["activity"] == "flow_waiting"


def test_commands_in_the_wrong_state_are_conflicts(api, waiting, peers):
    invoice_id, payment_id = waiting
    assert api.post(f"/v1/payments/{invoice_id}/{payment_id}/cancel",
                    json={"reason": "bye"}).status_code == 202
    wait_payment(api, invoice_id, payment_id, status="cancelled")
    before = events(api, invoice_id, payment_id)
    for command, body in (("capture", {"reason": "late"}), ("cancel", {"reason": "again"})):
        response = api.post(f"/v1/payments/{invoice_id}/{payment_id}/{command}", json=body)
        assert (response.status_code, response.json()["code"]) == (409,
                                                                   "invalid_payment_status")
    response = api.post(f"/v1/payments/{invoice_id}/{payment_id}/repair",
                        json={"action": "resume"})
    assert (response.status_code, response.json()["code"]) == (409, "machine_not_failed")
    assert events(api, invoice_id, payment_id) == before


def test_unknown_and_malformed_ids(api, database):
    for path, body in (("capture", {"reason": "x"}), ("cancel", {"reason": "x"}),
                       ("repair", {"action": "resume"})):
        response = api.post(f"/v1/payments/no-such-invoice/1/{path}", json=body)
        assert (response.status_code, response.json()["code"]) == (404, "payment_not_found")
    for path in ("", "/events"):
        response = api.get(f"/v1/payments/no-such-invoice/1{path}")
        assert (response.status_code, response.json()["code"]) == (404, "payment_not_found")
    response = api.get("/v1/payments/bad.invoice/1")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_id")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        (lambda b: b["cost"].update(amount=-1), 400, "invalid_amount"),
        (lambda b: b["cost"].update(amount=99.5), 400, "invalid_amount"),
        (lambda b: b["cost"].update(currency="ZZZ"), 400, "unknown_currency"),
        (lambda b: b["cash_flow"][0]["source"].update(type="merchant.wallet"), 400,
         "unknown_account_type"),
        (lambda b: b["cash_flow"][0]["volume"].update(share={"p": 1, "q": 0}), 400,
         "invalid_share"),
        (lambda b: b["cash_flow"].clear(), 400, "invalid_cash_flow"),
        (lambda b: b.update(invoice_id="a.b"), 400, "invalid_id"),
        (lambda b: b.pop("route"), 422, "invalid_request"),
        (lambda b: b["route"].update(provider_id="7"), 422, "invalid_request"),
        (lambda b: b["cash_flow"][0].update(volume={}), 422, "invalid_request"),
    ],
)
def test_bad_register_bodies_are_refused_and_create_nothing(api, ledger, change, status, code):
    invoice_id, payment_id = new_ids()
    body = payment_body(ledger, invoice_id, payment_id, 1000)
    change(body)
    response = api.post("/v1/payments/register", json=body)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert api.get(f"/v1/payments/{invoice_id}/{payment_id}").status_code == 404


def test_a_hold_needs_a_valid_flow(api, ledger):
    invoice_id, payment_id = new_ids()
    body = payment_body(ledger, invoice_id, payment_id, 1000, hold=("cancel", FAR))
    for flow in ({"on_hold_expiration": "refund", "held_until": FAR.isoformat()},
                 {"on_hold_expiration": "cancel", "held_until": "2026-01-01T00:00:00"},
                 {"on_hold_expiration": "cancel"}):
        response = api.post("/v1/payments", json={**body, "flow": flow})
        assert (response.status_code, response.json()["code"]) == (422, "invalid_request")
    assert api.get(f"/v1/payments/{invoice_id}/{payment_id}").status_code == 404


def test_the_api_needs_the_bearer_token(api, database):
    response = api.get("/v1/payments/x/1", headers={"Authorization": "Bearer wrong"})
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
