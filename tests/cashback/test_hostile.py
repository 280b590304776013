"""Hostile input to the cashback routes and tasks: text PostgreSQL cannot store, deep nesting,
odd headers, huge versions and unknown task keys end as typed `{code, message}` answers (or a
typed code in the task log), never a 500, and nothing is stored or queued."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from cashback.queues import CHARGE_QUEUE
from cashback.tasks import (
    balance_changed,
    cashback_charge_processing,
    universal_cashback_processing,
)
from tests.cashback.conftest import SERVICE, register_body
from workers import stq

SECRET = b"test-secret"
NUL = "a\x00b"
SURROGATE = "a\ud800b"


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def assert_typed(response, statuses: tuple[int, ...] = (400, 422)) -> str:
    assert response.status_code in statuses, response.text
    body = response.json()
    assert set(body) >= {"code", "message"}, body
    return body["code"]


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize("field", ["order_id", "service", "yandex_uid", "source", "wallet_id",
                                   "billing_service", "payload-key", "payload-value"])
def test_register_refuses_text_postgresql_cannot_store(api, new_order_id, field, bad):
    body = register_body(new_order_id, {"user": "1"})
    if field == "source":
        body["cashback_by_source"] = [{"source": bad, "value": "1"}]
    elif field == "payload-key":
        body["payload"] = {bad: "x"}
    elif field == "payload-value":
        body["payload"] = {"nested": [{"k": bad}]}
    elif field == "order_id":
        body["order_id"] = new_order_id + bad
    else:
        body[field] = bad

    # json.dumps escapes a lone surrogate, which the JSON parser turns back into one.
    response = api.post("/v1/cashback/register", content=json.dumps(body),
                        headers={"Content-Type": "application/json"})

    # 400 from our check; 422 where a schema rule (the service's pattern, the JSON parser's
    # Unicode check) refuses it first.
    assert assert_typed(response) in ("invalid_text", "invalid_request")
    assert stq.pending(CHARGE_QUEUE, f"{SERVICE}/{new_order_id}") is None


def test_register_refuses_a_deeply_nested_payload(api, new_order_id):
    response = api.post("/v1/cashback/register",
                        json=register_body(new_order_id, {"user": "1"}, payload=nested(500)))

    assert assert_typed(response, (400,)) == "payload_too_deep"


def test_register_refuses_a_payload_number_json_cannot_carry(api, new_order_id):
    raw = json.dumps(register_body(new_order_id, {"user": "1"}))[:-1] + ', "payload": {"x": 1e999}}'

    response = api.post("/v1/cashback/register", content=raw,
                        headers={"Content-Type": "application/json"})

    assert assert_typed(response, (400,)) == "invalid_payload"


@pytest.mark.parametrize(("method", "template"), [
    ("GET", "/v1/cashback/{service}/{order_id}"),
    ("POST", "/v1/cashback/{service}/{order_id}/retry"),
    ("GET", "/v1/cashback/rates/{service}/{order_id}"),
])
@pytest.mark.parametrize("odd", ["a%00b", "a%ED%A0%80b", "%FF"])
def test_odd_text_in_the_url_is_a_typed_answer(api, method, template, odd):
    for service, order_id in [(SERVICE, odd), (odd, "o-1")]:
        response = api.request(method, template.format(service=service, order_id=order_id))
        assert response.status_code in (400, 404), response.text
        assert set(response.json()) >= {"code", "message"}


def signed_post(api, raw: bytes, signature: str | None = None):
    signed = hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "Authorization": "",
               "X-Signature": signed if signature is None else signature}
    return api.post("/v1/wallet/balance-callback", content=raw, headers=headers)


def callback_body(**change: Any) -> dict[str, Any]:
    return {"yandex_uid": "uid-1", "wallet_id": "w/hostile", "currency": "RUB",
            "balance": "1.00", "version": 1, **change}


def test_the_callback_answers_401_for_a_non_ascii_signature(api):
    raw = json.dumps(callback_body()).encode()
    response = api.post("/v1/wallet/balance-callback", content=raw,
                        headers=[("Content-Type", "application/json"), ("Authorization", ""),
                                 ("X-Signature", "\u00e9\u00e9".encode("latin-1"))])

    assert (response.status_code, response.json()["code"]) == (401, "bad_signature")


@pytest.mark.parametrize("depth", [500, 5000])
def test_the_callback_answers_422_for_a_deeply_nested_body(api, depth):
    raw = ("[" * depth + "]" * depth).encode()
    assert assert_typed(signed_post(api, raw), (422,)) == "invalid_request"
    raw = json.dumps(nested(depth // 10)).encode() if depth < 1000 else (
        '{"a":' * depth + "1" + "}" * depth).encode()
    assert assert_typed(signed_post(api, raw), (422,)) == "invalid_request"


@pytest.mark.parametrize(("change", "status", "code"), [
    ({"wallet_id": NUL}, 400, "invalid_text"),
    ({"yandex_uid": "\x00"}, 400, "invalid_text"),
    ({"yandex_uid": SURROGATE}, 400, "invalid_text"),  # a lone surrogate is text too
    ({"version": 2**63}, 400, "version_out_of_range"),
])
def test_the_callback_refuses_values_it_cannot_carry(api, change, status, code):
    raw = json.dumps(callback_body(**change)).encode()
    assert assert_typed(signed_post(api, raw), (status,)) == code


@pytest.mark.parametrize(("task", "kwargs", "code"), [
    (cashback_charge_processing, {"order_id": "o-1", "service": SERVICE, "extra": 1},
     "malformed_task_kwargs"),
    (universal_cashback_processing, {"order_id": "o-1", "service": SERVICE, "x": None},
     "malformed_task_kwargs"),
    (balance_changed, {**callback_body(), "unknown": "key"}, "malformed_task_kwargs"),
    (cashback_charge_processing, {"order_id": NUL, "service": SERVICE}, "invalid_text"),
    (universal_cashback_processing, {"order_id": SURROGATE, "service": SERVICE},
     "malformed_task_kwargs"),  # pydantic's own Unicode check comes first
    (universal_cashback_processing, {"order_id": "o", "service": NUL},
     "malformed_task_kwargs"),
    (balance_changed, callback_body(wallet_id=NUL), "invalid_text"),
    (balance_changed, callback_body(version=2**64), "version_out_of_range"),
])
def test_tasks_refuse_unknown_keys_and_bad_text_with_a_typed_code(database, task, kwargs, code):
    # The task body as a worker runs it: a typed refusal is logged and acked.
    assert task(**kwargs) == {"rejected": code}
