"""Values the peers, the flows or the database cannot carry are refused at the door with a
typed `{code, message}` and store nothing: NUL and lone surrogates in any text, integers past
the IDL's ranges, hold dates outside the hold window, a missing `turnover_limits`."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.payments.conftest import new_ids, payment_body, wait_payment

FAR = datetime.now(UTC) + timedelta(days=1)
WINDOW_S = 2592000  # MAX_HOLD_LIFETIME_S default


def _post(api, path: str, body: Any):
    # Serialised by hand: a lone surrogate survives only as a JSON escape.
    return api.post(path, content=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"})


def _set(body: dict, path: str, value: Any) -> dict:
    body = copy.deepcopy(body)
    *parents, last = path.split("/")
    target = body
    for key in parents:
        target = target[int(key)] if key.isdigit() else target.setdefault(key, {})
    target[int(last) if last.isdigit() else last] = value
    return body


def _refused(api, path: str, body: dict, status: int, code: str) -> None:
    response = _post(api, path, body)
    assert (response.status_code, response.json().get("code")) == (status, code), response.text
    assert response.json()["message"]
    stored = api.get(f"/v1/payments/{body['invoice_id']}/{body['payment_id']}")
    assert stored.status_code == 404, "nothing was stored"


TEXT_FIELDS = ["party_id", "shop_id", "cash_flow/0/details", "transaction_info/id",
               "turnover_limits/0/id", "payer/email", "payer/payment_tool/bank_card/token"]
BAD_TEXT = ["nul\x00inside", "lone \ud800 surrogate", "\udfff"]


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("text", BAD_TEXT)
def test_nul_and_lone_surrogates_in_a_hold_are_400(api, database, ledger, field, text):
    body = payment_body(ledger, *new_ids(), 100, limits=["daily"], hold=("cancel", FAR))
    body["transaction_info"] = {"id": "trx-1", "extra": {"rrn": "1"}}
    body["payer"] = {"payment_tool": {"bank_card": {"token": "tok"}}}
    _refused(api, "/v1/payments", _set(body, field, text), 400, "invalid_text")


@pytest.mark.parametrize("text", BAD_TEXT)
def test_bad_text_in_transaction_extra_keys_and_values_is_400(api, database, ledger, text):
    body = payment_body(ledger, *new_ids(), 100)
    for extra in ({text: "v"}, {"k": text}):
        body["transaction_info"] = {"id": "trx-1", "extra": extra}
        _refused(api, "/v1/payments/register", body, 400, "invalid_text")


@pytest.mark.parametrize("invoice_id", ["in\x00v", "in\ud800v"])
def test_bad_text_in_ids_is_400(api, database, ledger, invoice_id):
    body = payment_body(ledger, invoice_id, "1", 100)
    response = _post(api, "/v1/payments/register", body)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_text")


@pytest.mark.parametrize(("field", "value", "code"), [
    ("route/provider_id", 2**31, "invalid_route"),
    ("route/terminal_id", -(2**31) - 1, "invalid_route"),
    ("turnover_limits/0/version", 2**63, "invalid_turnover_limit"),
    ("turnover_limits/0/upper_boundary", 2**63, "invalid_turnover_limit"),
    ("turnover_limits/0/upper_boundary", -(2**63) - 1, "invalid_turnover_limit"),
    ("domain_revision", 2**63, "invalid_value"),
    ("cost/amount", 2**63, "invalid_amount"),
    ("cost/amount", 2**64 + 5, "invalid_amount"),
    ("cash_flow/2/volume/fixed/amount", 2**63, "invalid_amount"),
    ("cash_flow/0/source/account_id", 2**63, "invalid_cash_flow"),
    ("cash_flow/1/volume/share/p", 2**63, "invalid_share"),
    ("cash_flow/1/volume/share/rounding", "round_up", "invalid_share"),
])
def test_integers_past_the_idl_ranges_are_400(api, database, ledger, field, value, code):
    body = payment_body(ledger, *new_ids(), 100, limits=["daily"], hold=("cancel", FAR))
    _refused(api, "/v1/payments", _set(body, field, value), 400, code)


def test_the_largest_int32_route_is_accepted(running_worker, api, peers, ledger):
    ids = new_ids()
    body = _set(payment_body(ledger, *ids, 100), "route/provider_id", 2**31 - 1)
    assert _post(api, "/v1/payments/register", body).status_code == 202
    wait_payment(api, *ids, status="captured")


@pytest.mark.parametrize("held_until", [
    "0001-01-01T00:00:00+14:00",  # stored once, broke every sweep
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-14:00",  # past year 9999 in UTC
    "9999-12-31T23:59:59Z",
    (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),  # the past
    (datetime.now(UTC) + timedelta(seconds=WINDOW_S + 3600)).isoformat(),  # past the window
    # Inside the window on the wall clock, outside once the offset is applied.
    (datetime.now(UTC) + timedelta(seconds=WINDOW_S - 3600)).replace(tzinfo=None).isoformat()
    + "-14:00",
])
def test_hold_dates_outside_the_hold_window_are_400(api, database, ledger, held_until):
    body = payment_body(ledger, *new_ids(), 100, hold=("cancel", FAR))
    body["flow"]["held_until"] = held_until
    _refused(api, "/v1/payments", body, 400, "invalid_hold_lifetime")


@pytest.mark.parametrize("held_until", ["10000-01-01T00:00:00Z", "2026-13-01T00:00:00Z",
                                        "2030-01-01T00:00:00", "2030-01-01T00:00:00+24:00",
                                        "tomorrow"])
def test_hold_dates_that_are_not_rfc3339_with_an_offset_are_422(api, database, ledger,
                                                                held_until):
    body = payment_body(ledger, *new_ids(), 100, hold=("cancel", FAR))
    body["flow"]["held_until"] = held_until
    _refused(api, "/v1/payments", body, 422, "invalid_request")


@pytest.mark.parametrize("offset", ["Z", "+14:00", "-12:00", "+05:45"])
def test_a_hold_inside_the_window_is_accepted_at_any_offset(running_worker, api, peers, ledger,
                                                             offset):
    ids = new_ids()
    body = payment_body(ledger, *ids, 100, hold=("cancel", FAR))
    moment = datetime.now(UTC) + timedelta(seconds=WINDOW_S - 3600)
    hours, minutes = (0, 0) if offset == "Z" else map(int, offset[1:].split(":"))
    sign = -1 if offset.startswith("-") else 1
    local = moment + sign * timedelta(hours=hours, minutes=minutes)
    body["flow"]["held_until"] = local.replace(tzinfo=None).isoformat() + offset
    assert _post(api, "/v1/payments", body).status_code == 202
    wait_payment(api, *ids, activity="flow_waiting")


def test_a_zero_cost_hold_that_would_expire_into_a_capture_is_400(api, database, ledger):
    body = payment_body(ledger, *new_ids(), 0, hold=("capture", FAR))
    body["cash_flow"] = body["cash_flow"][:2]  # no fixed fee to hold for nothing
    _refused(api, "/v1/payments", body, 400, "invalid_amount")


def test_a_zero_cost_hold_that_expires_into_a_cancel_is_accepted(running_worker, api, peers,
                                                                  ledger):
    ids = new_ids()
    body = payment_body(ledger, *ids, 0, hold=("cancel", FAR))
    body["cash_flow"] = body["cash_flow"][:2]
    assert _post(api, "/v1/payments", body).status_code == 202
    wait_payment(api, *ids, activity="flow_waiting")


def test_register_without_turnover_limits_is_422_and_an_empty_list_is_fine(
        running_worker, api, peers, ledger):
    ids = new_ids()
    body = payment_body(ledger, *ids, 100)
    del body["turnover_limits"]
    _refused(api, "/v1/payments/register", body, 422, "invalid_request")
    body["turnover_limits"] = []
    assert _post(api, "/v1/payments/register", body).status_code == 202


@pytest.mark.parametrize(("product", "status", "code"), [
    ({"sum_of": []}, 400, "invalid_cash_flow"),
    ({"min_of": [{"fixed": {"amount": 1, "currency": "RUB"}}], "max_of": []}, 422,
     "invalid_request"),
    ({"avg_of": [{"fixed": {"amount": 1, "currency": "RUB"}}]}, 422, "invalid_request"),
    ({"sum_of": [{"fixed": {"amount": 1, "currency": "USD"}}]}, 400, "invalid_cash_flow"),
    ({"sum_of": [{"fixed": {"amount": 2**62, "currency": "RUB"}},
                 {"fixed": {"amount": 2**62 + 1, "currency": "RUB"}}]}, 400, "invalid_amount"),
])
def test_bad_product_volumes_are_refused(api, database, ledger, product, status, code):
    body = payment_body(ledger, *new_ids(), 100)
    body["cash_flow"][2]["volume"] = {"product": product}
    _refused(api, "/v1/payments/register", body, status, code)


@pytest.mark.parametrize("depth", [5, 50, 400])
def test_deeply_nested_products_are_refused_without_a_500(api, database, ledger, depth):
    body = payment_body(ledger, *new_ids(), 100)
    body["cash_flow"][2]["volume"] = "VOLUME"
    # Written as text: the JSON encoder itself would give up this deep.
    volume = ('{"product": {"max_of": [' * depth + '{"fixed": {"amount": 1, "currency": "RUB"}}'
              + "]}}" * depth)
    response = api.post("/v1/payments/register",
                        content=json.dumps(body).replace('"VOLUME"', volume).encode(),
                        headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert response.json()["code"]


@pytest.fixture
def waiting(running_worker, peers, api, ledger):
    ids = new_ids()
    api.post("/v1/payments", json=payment_body(ledger, *ids, 1000, hold=("cancel", FAR)))
    wait_payment(api, *ids, activity="flow_waiting")
    return ids


@pytest.mark.parametrize(("command", "body"), [
    ("capture", {"reason": "nul\x00"}),
    ("capture", {"reason": "\ud800"}),
    ("capture", {"reason": "ok", "cart": {"lines": [
        {"product": "t\x00a", "quantity": 1, "price": {"amount": 1000, "currency": "RUB"}}]}}),
    ("cancel", {"reason": "no\x00"}),
    ("repair", {"action": "resume", "operator": "\udfff"}),
    ("repair", {"action": "fail_session", "failure": {"code": "x\x00", "reason": "y"}}),
])
def test_bad_text_in_commands_is_400_and_changes_nothing(api, waiting, command, body):
    response = _post(api, f"/v1/payments/{waiting[0]}/{waiting[1]}/{command}", body)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_text"), response.text
    state = api.get(f"/v1/payments/{waiting[0]}/{waiting[1]}").json()
    assert state["activity"] == "flow_waiting" and state["machine_status"] == "working"


def test_a_cart_quantity_past_int32_is_400(api, waiting):
    body = {"reason": "x", "cart": {"lines": [
        {"product": "tea", "quantity": 2**31, "price": {"amount": 0, "currency": "RUB"}}]}}
    response = _post(api, f"/v1/payments/{waiting[0]}/{waiting[1]}/capture", body)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_cart")
