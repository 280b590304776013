"""PushClient and WalletClient against their sandboxes over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from clients.push import PushClient, PushUnavailable
from clients.wallet import WalletBalance, WalletClient, WalletRejected, WalletUnavailable
from sandbox.control_client import Sandbox, SandboxControlError


@pytest.fixture
def push(peers: Sandbox) -> Iterator[PushClient]:
    client = PushClient(peers.url("push"), timeout_s=2)
    yield client
    client.close()


@pytest.fixture
def wallet(peers: Sandbox) -> Iterator[WalletClient]:
    client = WalletClient(peers.url("wallet"), timeout_s=2, backoff_s=0.01)
    yield client
    client.close()


# --- push -----------------------------------------------------------------------------------


def test_a_silent_push_reaches_the_sender(push: PushClient, peers: Sandbox) -> None:
    push.send_silent("uid-1", {"type": "balance", "balance": Decimal("140.50"), "version": 3})
    [pushed] = peers.state("push")["pushes"]
    assert pushed["yandex_uid"] == "uid-1"
    assert pushed["payload"] == {"type": "balance", "balance": "140.50", "version": 3}


def test_a_failing_push_is_unavailable_and_not_repeated(push: PushClient,
                                                        peers: Sandbox) -> None:
    peers.faults("push", {"rates": {"503": 1}})
    with pytest.raises(PushUnavailable):
        push.send_silent("uid-1", {})
    assert peers.state("push")["faults"]["injected"] == {"503": 1}
    assert peers.state("push")["pushes"] == []


def test_a_push_that_timed_out_may_still_have_been_sent(peers: Sandbox) -> None:
    peers.faults("push", {"once": ["timeout_after"], "timeout_ms": 1000})
    client = PushClient(peers.url("push"), timeout_s=0.2)
    with pytest.raises(PushUnavailable):
        client.send_silent("uid-1", {"n": 1})
    client.close()
    assert len(peers.state("push")["pushes"]) == 1


def test_the_push_sandbox_refuses_a_malformed_push(peers: Sandbox) -> None:
    answer = requests.post(peers.url("push") + "/v1/push/silent", timeout=5,
                           json={"yandex_uid": "uid-1", "payload": "not an object"})
    assert answer.status_code == 400 and answer.json()["code"] == "bad_request"
    assert peers.state("push")["pushes"] == []


# --- wallet ---------------------------------------------------------------------------------


def test_a_user_without_wallets_has_no_balances(wallet: WalletClient) -> None:
    assert wallet.balances("uid-1", "RUB") == ()


def test_create_makes_one_current_wallet_per_user_and_currency(wallet: WalletClient) -> None:
    wallet_id = wallet.create("uid-1", "RUB", "127.0.0.1")
    assert wallet.create("uid-1", "RUB", "127.0.0.1") == wallet_id
    assert wallet.balances("uid-1", "RUB") == (
        WalletBalance(wallet_id=wallet_id, currency="RUB", balance=Decimal(0)),)
    assert wallet.balances("uid-1", "USD") == ()
    assert wallet.balances("uid-2", "RUB") == ()


def test_a_legacy_wallet_is_listed_as_legacy_and_create_adds_a_current_one(
        wallet: WalletClient, peers: Sandbox) -> None:
    seeded = peers.control("wallet", "wallets", {"yandex_uid": "uid-1", "currency": "RUB",
                                                 "legacy": True, "balance": "12.34"})
    assert seeded["wallet_id"].startswith("z")
    [legacy] = wallet.balances("uid-1", "RUB")
    assert legacy.legacy and legacy.balance == Decimal("12.34")

    created = wallet.create("uid-1", "RUB", "127.0.0.1")
    assert not created.startswith("z")
    balances = {b.wallet_id: b for b in wallet.balances("uid-1", "RUB")}
    assert set(balances) == {legacy.wallet_id, created}
    assert not balances[created].legacy


def test_seeding_a_taken_wallet_id_is_refused(peers: Sandbox) -> None:
    spec = {"yandex_uid": "uid-1", "currency": "RUB", "wallet_id": "w-fixed"}
    peers.control("wallet", "wallets", spec)
    with pytest.raises(SandboxControlError, match="409"):
        peers.control("wallet", "wallets", spec)


def test_balances_are_retried_then_unavailable(wallet: WalletClient, peers: Sandbox) -> None:
    peers.faults("wallet", {"rates": {"503": 1}, "match": "balances"})
    with pytest.raises(WalletUnavailable):
        wallet.balances("uid-1", "RUB")
    assert peers.state("wallet")["faults"]["injected"] == {"503": 3}


def test_a_failed_create_is_not_repeated_and_creates_nothing(wallet: WalletClient,
                                                             peers: Sandbox) -> None:
    peers.faults("wallet", {"once": ["500"]})
    with pytest.raises(WalletUnavailable):
        wallet.create("uid-1", "RUB", "127.0.0.1")
    state = peers.state("wallet")
    assert state["calls"] == {"create": 1}
    assert state["wallets"] == []


def test_a_create_the_service_refuses_is_rejected(wallet: WalletClient,
                                                  peers: Sandbox) -> None:
    with pytest.raises(WalletRejected) as raised:
        wallet.create("uid-1", "rub", "127.0.0.1")
    assert (raised.value.status, raised.value.peer_code) == (400, "bad_request")
    assert peers.state("wallet")["wallets"] == []


def test_balances_without_a_currency_are_refused(peers: Sandbox) -> None:
    answer = requests.get(peers.url("wallet") + "/v1/balances",
                          params={"yandex_uid": "uid-1"}, timeout=5)
    assert answer.status_code == 400
