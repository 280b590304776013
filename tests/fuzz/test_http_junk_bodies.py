"""Near-valid bodies on every route that takes one: a valid body with one thing wrong.

The OpenAPI fuzz rarely gets past the first check (an id pattern, an account type) that the
document does not spell out, so it seldom reaches the database; these bodies do. The answer
must never be 5xx, and every error is `{code, message}` JSON. Capture and cancel aim at a
payment that really waits for them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cashback.settings import get_settings
from tests.cashback.conftest import register_body
from tests.fuzz.conftest import FAR, LONG, new_held
from tests.fuzz.junk import HOSTILE, SHAPES, appending, junk, odd_text, setting
from tests.payments.conftest import Ledger, payment, payment_body

# Hostile junk (NUL text, integers beyond 64 bits, very deep nesting) is drawn in long runs;
# `make test` sends the known cases as the fixed cases at the end.
KINDS = SHAPES + HOSTILE if LONG else SHAPES
FAKE = Ledger(910001, 910002, 910003, 910004)
CALLBACK = "/v1/wallet/balance-callback"


def templates(held: tuple[str, str]) -> dict[str, tuple[str, dict[str, Any], frozenset[str]]]:
    """route name -> (path, a valid body with fresh ids, the keys it may leave out)."""
    fresh = f"inv-{uuid.uuid4().hex[:12]}"
    one = f"/v1/payments/{held[0]}/{held[1]}"
    payment_optional = frozenset({"details", "rounding", "transaction_info"})
    return {
        "register": ("/v1/payments/register", payment_body(FAKE, fresh, "1", 300),
                     payment_optional),
        "hold": ("/v1/payments", payment_body(FAKE, fresh, "1", 300, hold=("cancel", FAR)),
                 payment_optional),
        "capture": (f"{one}/capture", {"reason": "shipped",
                                       "cost": {"amount": 100, "currency": "RUB"}},
                    frozenset({"cost"})),
        "cancel": (f"{one}/cancel", {"reason": "gone"}, frozenset()),
        "repair": (f"{one}/repair", {"action": "resume"}, frozenset()),
        "cashback": ("/v1/cashback/register",
                     register_body(f"order-{uuid.uuid4().hex[:12]}", {"user": "100"}),
                     frozenset({"wallet_id"})),
        "callback": (CALLBACK, {"yandex_uid": "uid-1", "wallet_id": f"w-{uuid.uuid4().hex[:8]}",
                                "currency": "RUB", "balance": "10.00", "version": 1},
                     frozenset()),
    }


def post(client: TestClient, path: str, body: Any):
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if path == CALLBACK:
        secret = get_settings().billing_callback_secret.encode()
        headers["X-Signature"] = hmac.new(secret, raw, hashlib.sha256).hexdigest()
    return client.post(path, content=raw, headers=headers)


def assert_answered(response, shown: str) -> None:
    assert response.status_code < 500, f"{response.status_code} for {shown}: {response.text}"
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"code", "message"}, (shown, body)
        assert isinstance(body["code"], str) and isinstance(body["message"], str), shown


@pytest.fixture
def waiting(client, ledger, held, live_worker) -> tuple[str, str]:
    """A payment in flow_waiting: the module's held one, or a new one if a body changed it."""
    if payment(client, *held)["activity"] == "flow_waiting":
        return held
    return new_held(client, ledger)


@pytest.mark.parametrize("route", ["register", "hold", "capture", "cancel", "repair",
                                   "cashback", "callback"])
def test_a_body_with_one_thing_wrong_never_gets_a_5xx(route, client, waiting):
    @settings(suppress_health_check=list(HealthCheck))
    @given(st.data())
    def one(data: st.DataObject) -> None:
        path, valid, optional = templates(waiting)[route]
        body = data.draw(junk(valid, optional, KINDS), label="body")
        assert_answered(post(client, path, body), f"POST {path} {body!r:.2000}")

    one()


# Well-typed bodies with values the contract refuses (NUL text, lone surrogates, integers
# beyond 64 bits): each must be a 4xx `{code, message}`, never a 500.
KNOWN = [
    ("register", "NUL in party_id", appending(("party_id",), "\x00")),
    ("register", "NUL in shop_id", appending(("shop_id",), "\x00")),
    ("register", "NUL in posting details", appending(("cash_flow", 0, "details"), "\x00")),
    ("register", "NUL in a limit id", setting(("turnover_limits",), [{"id": "l\x00"}])),
    ("register", "NUL in a transaction_info.extra key",
     setting(("transaction_info",), {"id": "trx", "extra": {"k\x00": "v"}})),
    ("register", "NUL in transaction_info.id",
     setting(("transaction_info",), {"id": "t\x00", "extra": {}})),
    ("register", "lone surrogate in party_id", appending(("party_id",), "\ud800")),
    ("register", "amount 2**63", setting(("cost", "amount"), 2**63)),
    ("register", "account id 2**63", setting(("cash_flow", 0, "source", "account_id"), 2**63)),
    ("register", "limit version 2**64",
     setting(("turnover_limits",), [{"id": "l", "version": 2**64}])),
    ("hold", "NUL in party_id", appending(("party_id",), "\x00")),
    ("capture", "NUL in reason", appending(("reason",), "\x00")),
    ("capture", "amount 2**63", setting(("cost", "amount"), 2**63)),
    ("cancel", "NUL in reason", appending(("reason",), "\x00")),
    ("cashback", "NUL in order_id", appending(("order_id",), "\x00")),
    ("cashback", "NUL in yandex_uid", appending(("yandex_uid",), "\x00")),
    ("cashback", "NUL in a source", setting(("cashback_by_source",),
                                         [{"source": "u\x00", "value": "1"}])),
    ("cashback", "NUL in a payload key", setting(("payload",), {"k\x00": 1})),
    ("cashback", "payload nested 600 deep",
     setting(("payload",), {"a": json.loads("[" * 600 + "]" * 600)})),
    ("callback", "NUL in wallet_id", appending(("wallet_id",), "\x00")),
    ("callback", "version 2**63", setting(("version",), 2**63)),
]


@pytest.mark.parametrize(("route", "mutate"), [
    pytest.param(route, mutate, id=f"{route}: {what}") for route, what, mutate in KNOWN])
def test_values_the_contract_refuses_are_4xx_never_500(route, mutate, client, waiting):
    path, valid, _ = templates(waiting)[route]
    body = mutate(valid)
    assert_answered(post(client, path, body), f"POST {path} {body!r:.300}")


PATH_ROUTES = [
    ("GET", "/v1/payments/{a}/{b}"), ("GET", "/v1/payments/{a}/{b}/events"),
    ("POST", "/v1/payments/{a}/{b}/capture"), ("POST", "/v1/payments/{a}/{b}/cancel"),
    ("POST", "/v1/payments/{a}/{b}/repair"), ("GET", "/v1/cashback/{a}/{b}"),
]
BODIES = {"capture": {"reason": "r"}, "cancel": {"reason": "r"}, "repair": {"action": "resume"}}
segments = odd_text.filter(lambda s: s not in ("", ".", ".."))


@pytest.mark.parametrize(("method", "template"), PATH_ROUTES)
def test_odd_text_in_a_path_segment_never_gets_a_5xx(method, template, client):
    @settings(suppress_health_check=list(HealthCheck))
    @given(segments, segments, st.sampled_from(["\x00", "\ud800", "", "%", "\n"]))
    def one(a: str, b: str, odd: str) -> None:
        url = template.format(a=quote((odd + a).encode("utf-8", "surrogatepass"), safe=""),
                              b=quote(b.encode("utf-8", "surrogatepass"), safe=""))
        body = BODIES.get(template.rsplit("/", 1)[-1])
        response = client.request(method, url, json=body)
        assert_answered(response, f"{method} {url}")

    one()
