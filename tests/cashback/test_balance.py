"""The billing balance callback: HMAC-checked, queued, applied to the Redis balance cache
without ever moving it backwards, one silent push per accepted change."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest

from cashback.balance import BALANCE_QUEUE, BalanceChanged, cache
from tests.cashback.conftest import YANDEX_UID
from tests.support.waiting import wait_for
from workers import stq

SECRET = b"test-secret"  # BILLING_CALLBACK_SECRET of the test environment


@pytest.fixture
def wallet_id() -> str:
    return f"w/{uuid.uuid4().hex[:12]}"


def change(wallet_id: str, balance: str, version: int) -> dict[str, Any]:
    return {"yandex_uid": YANDEX_UID, "wallet_id": wallet_id, "currency": "RUB",
            "balance": balance, "version": version}


def post_callback(api, body: Any, signature: str | None = None):
    raw = json.dumps(body).encode()
    signed = hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json",
               "X-Signature": signed if signature is None else signature}
    # The callback is not behind the bearer token: send none.
    return api.post("/v1/wallet/balance-callback", content=raw,
                    headers={**headers, "Authorization": ""})


def pushes(peers, wallet_id: str) -> list[dict[str, Any]]:
    return [p for p in peers.state("push")["pushes"] if p["payload"]["wallet_id"] == wallet_id]


def settled(wallet_id: str, version: int) -> bool:
    return stq.pending(BALANCE_QUEUE, f"{wallet_id}/{version}") is None


def test_an_accepted_change_updates_the_cache_and_pushes_once(running_worker, api, peers,
                                                             wallet_id):
    response = post_callback(api, change(wallet_id, "140.50", 1))

    assert (response.status_code, response.json()) == (200, {})
    wait_for(lambda: pushes(peers, wallet_id), what="the silent push")
    assert cache().get(wallet_id)["balance"] == "140.50"
    [push] = pushes(peers, wallet_id)
    assert push["yandex_uid"] == YANDEX_UID
    assert push["payload"] == {"type": "wallet_balance_changed", "wallet_id": wallet_id,
                               "currency": "RUB", "balance": "140.50", "version": 1}

    assert post_callback(api, change(wallet_id, "140.50", 1)).status_code == 200  # a repeat
    wait_for(lambda: settled(wallet_id, 1), what="the repeat to be handled")
    assert len(pushes(peers, wallet_id)) == 1


def test_an_older_version_is_ignored_and_not_pushed(running_worker, api, peers, wallet_id):
    post_callback(api, change(wallet_id, "300", 3))
    wait_for(lambda: pushes(peers, wallet_id), what="the push of version 3")

    post_callback(api, change(wallet_id, "200", 2))
    wait_for(lambda: settled(wallet_id, 2), what="version 2 to be handled")
    post_callback(api, change(wallet_id, "400", 4))
    wait_for(lambda: len(pushes(peers, wallet_id)) == 2, what="the push of version 4")

    entry = cache().get(wallet_id)
    assert (entry["version"], entry["balance"]) == ("4", "400")
    assert [p["payload"]["version"] for p in pushes(peers, wallet_id)] == [3, 4]


def test_a_push_that_fails_is_retried_until_it_goes(running_worker, api, peers, wallet_id):
    peers.faults("push", {"once": ["503", "503"]})

    post_callback(api, change(wallet_id, "10", 1))

    wait_for(lambda: pushes(peers, wallet_id), what="the push after two failures")
    wait_for(lambda: settled(wallet_id, 1), what="the task to finish")
    assert len(pushes(peers, wallet_id)) == 1


@pytest.mark.parametrize("signature", ["", "00" * 32, "not-hex"])
def test_a_bad_signature_is_refused_and_nothing_is_queued(api, wallet_id, signature):
    response = post_callback(api, change(wallet_id, "1", 1), signature=signature)

    assert (response.status_code, response.json()["code"]) == (401, "bad_signature")
    assert stq.pending(BALANCE_QUEUE, f"{wallet_id}/1") is None


@pytest.mark.parametrize(("body_change", "status", "code"), [
    ({"balance": 1.5}, 422, "invalid_request"),
    ({"balance": "abc"}, 422, "invalid_request"),
    ({"version": "1"}, 422, "invalid_request"),
    ({"currency": "XXX"}, 400, "unknown_currency"),
])
def test_a_signed_but_bad_body_is_refused_with_a_code(api, wallet_id, body_change, status,
                                                      code):
    response = post_callback(api, {**change(wallet_id, "1", 1), **body_change})

    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert stq.pending(BALANCE_QUEUE, f"{wallet_id}/1") is None


# Doubles hold every integer only up to 2**53: above it neighbours compare equal (or worse).
BIG = 2**53


@pytest.mark.parametrize(("first", "then", "applied"), [
    (BIG, BIG + 1, "newer"),  # as doubles: the same number
    (BIG + 3, BIG + 4, "newer"),
    (BIG + 4, BIG + 3, "older"),
    (BIG + 1, BIG + 1, "same"),
    (2**63 - 2, 2**63 - 1, "newer"),
    (9, 10, "newer"),  # more digits is larger, though "10" < "9" as text
    (10, 9, "older"),
    (0, 1, "newer"),
])
def test_the_cache_compares_versions_exactly(broker, wallet_id, first, then, applied):
    balances = cache()
    assert balances.apply(BalanceChanged(**change(wallet_id, "1", first))).value == "newer"

    result = balances.apply(BalanceChanged(**change(wallet_id, "2", then)))

    assert result.value == applied
    expected = (str(then), "2") if applied == "newer" else (str(first), "1")
    entry = balances.get(wallet_id)
    assert (entry["version"], entry["balance"]) == expected


def test_a_version_above_2_53_is_pushed_once_and_its_successor_too(running_worker, api, peers,
                                                                  wallet_id):
    post_callback(api, change(wallet_id, "1", BIG))
    wait_for(lambda: pushes(peers, wallet_id), what="the first push")

    post_callback(api, change(wallet_id, "2", BIG + 1))

    wait_for(lambda: len(pushes(peers, wallet_id)) == 2, what="the push of the next version")
    assert cache().get(wallet_id)["version"] == str(BIG + 1)
    assert [p["payload"]["version"] for p in pushes(peers, wallet_id)] == [BIG, BIG + 1]
