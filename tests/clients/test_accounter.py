"""AccounterClient against the Shumway double: plans, balances, business errors, retries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from clients.accounter import (
    Account,
    AccounterClient,
    AccountNotFound,
    Batch,
    InvalidPostingParams,
    InvalidRequest,
    PlanNotFound,
    Posting,
)
from clients.woody import BusinessError, ResourceUnavailable
from clients.woody_wire import WoodyContext, parse_deadline
from tests.clients.conftest import CannedPeer, WoodyPeers


@pytest.fixture
def accounter(woody_peers: WoodyPeers) -> Iterator[AccounterClient]:
    client = AccounterClient(woody_peers.accounter_url)
    yield client
    client.close()


@pytest.fixture
def accounts(accounter: AccounterClient) -> tuple[int, int, int]:
    """Provider settlement, merchant settlement and system settlement, all in RUB."""
    return tuple(accounter.create_account("RUB", name)  # type: ignore[return-value]
                 for name in ("provider", "merchant", "system"))


def _balances(accounter: AccounterClient, *ids: int) -> list[tuple[int, int, int]]:
    """(own, min available, max available) of each account."""
    found = [accounter.get_account(account_id) for account_id in ids]
    return [(a.own_amount, a.min_available_amount, a.max_available_amount) for a in found]


def _payment_flow(provider: int, merchant: int, system: int, amount: int, fee: int) -> Batch:
    return Batch(1, (Posting(provider, merchant, amount, "RUB", "payment amount"),
                     Posting(merchant, system, fee, "RUB", "system fee")))


def test_create_and_get_an_account(accounter: AccounterClient) -> None:
    account_id = accounter.create_account("RUB", "merchant settlement")
    account = accounter.get_account(account_id)
    assert account == Account(id=account_id, own_amount=0, max_available_amount=0,
                              min_available_amount=0, currency="RUB",
                              description="merchant settlement",
                              creation_time=account.creation_time)
    assert account.creation_time


def test_unknown_account_and_plan_are_typed_errors(accounter: AccounterClient) -> None:
    with pytest.raises(AccountNotFound) as no_account:
        accounter.get_account(987654)
    assert no_account.value.account_id == 987654
    assert no_account.value.code == "account_not_found"
    with pytest.raises(PlanNotFound) as no_plan:
        accounter.get_plan("no-such-plan")
    assert no_plan.value.plan_id == "no-such-plan"
    assert isinstance(no_plan.value, BusinessError)


def test_hold_moves_available_amounts_and_commit_moves_own(
        accounter: AccounterClient, accounts: tuple[int, int, int]) -> None:
    provider, merchant, system = accounts
    batch = _payment_flow(provider, merchant, system, 10_000, 250)
    affected = accounter.hold("inv1.pay1.1", batch)
    assert set(affected) == {provider, merchant, system}
    # a held debit lowers min available, a held credit raises max available; own untouched
    assert _balances(accounter, provider, merchant, system) == [
        (0, -10_000, 0), (0, 0, 9_750), (0, 0, 250)]
    assert accounter.get_plan("inv1.pay1.1") == (batch,)

    committed = accounter.commit_plan("inv1.pay1.1", [batch])
    assert committed[merchant].own_amount == 9_750
    assert _balances(accounter, provider, merchant, system) == [
        (-10_000, -10_000, -10_000), (9_750, 9_750, 9_750), (250, 250, 250)]


def test_rollback_releases_the_hold(accounter: AccounterClient,
                                    accounts: tuple[int, int, int]) -> None:
    provider, merchant, system = accounts
    batch = _payment_flow(provider, merchant, system, 5_000, 100)
    accounter.hold("inv2.pay1.1", batch)
    accounter.rollback_plan("inv2.pay1.1", [batch])
    assert _balances(accounter, provider, merchant, system) == [(0, 0, 0)] * 3


def test_repeated_hold_of_the_same_batch_is_a_no_op_even_with_new_descriptions(
        accounter: AccounterClient, accounts: tuple[int, int, int]) -> None:
    provider, merchant, system = accounts
    batch = _payment_flow(provider, merchant, system, 1_000, 10)
    first = accounter.hold("inv3.pay1.1", batch)
    reworded = Batch(1, tuple(Posting(p.from_id, p.to_id, p.amount, p.currency, "other text")
                              for p in batch.postings))
    assert accounter.hold("inv3.pay1.1", reworded) == first
    assert _balances(accounter, provider) == [(0, -1_000, 0)]


def test_repeated_commit_succeeds_without_a_second_effect(
        accounter: AccounterClient, accounts: tuple[int, int, int]) -> None:
    provider, merchant, system = accounts
    batch = _payment_flow(provider, merchant, system, 700, 7)
    accounter.hold("inv4.pay1.1", batch)
    accounter.commit_plan("inv4.pay1.1", [batch])
    accounter.commit_plan("inv4.pay1.1", [batch])
    assert _balances(accounter, provider, merchant) == [(-700, -700, -700), (693, 693, 693)]


def test_partial_capture_sequence_leaves_balances_right_to_the_minor_unit(
        accounter: AccounterClient, accounts: tuple[int, int, int]) -> None:
    provider, merchant, system = accounts
    plan = "inv5.pay1.1"
    held = _payment_flow(provider, merchant, system, 10_000, 250)
    revert = Batch(2, tuple(Posting(p.to_id, p.from_id, p.amount, p.currency,
                                    f"revert({p.description})") for p in held.postings))
    partial = Batch(3, (Posting(provider, merchant, 6_001, "RUB", "payment amount"),
                        Posting(merchant, system, 150, "RUB", "system fee")))
    accounter.hold(plan, held)
    accounter.hold(plan, revert)
    # batch 1 and its revert cancel out; nothing is held any more
    assert _balances(accounter, provider, merchant, system) == [(0, 0, 0)] * 3
    accounter.hold(plan, partial)
    assert _balances(accounter, provider, merchant, system) == [
        (0, -6_001, 0), (0, 0, 5_851), (0, 0, 150)]

    accounter.commit_plan(plan, [held, revert, partial])
    assert _balances(accounter, provider, merchant, system) == [
        (-6_001, -6_001, -6_001), (5_851, 5_851, 5_851), (150, 150, 150)]
    assert accounter.get_plan(plan) == (held, revert, partial)


def _mismatch(account_id: int) -> str:
    return (f"Account ({account_id}) currency code is not equal: expected: RUB, actual: USD "
            "in batch: 1")


@pytest.mark.parametrize(
    "case",
    [
        lambda p, m: (Posting(p, p, 100, "RUB", "self"),
                      "Source and target accounts cannot be the same"),
        lambda p, m: (Posting(p, m, -1, "RUB", "negative"), "Amount cannot be negative"),
        lambda p, m: (Posting(p, 999_999, 100, "RUB", "nowhere"),
                      "Target account not found by id: 999999 in batch: 1"),
        lambda p, m: (Posting(p, m, 100, "USD", "wrong currency"),
                      f"{_mismatch(p)}; {_mismatch(m)}"),
    ],
    ids=["same-account", "negative-amount", "unknown-account", "currency-mismatch"],
)
def test_bad_postings_get_invalid_posting_params_with_shumways_reason(
        accounter: AccounterClient, woody_peers: WoodyPeers, accounts: tuple[int, int, int],
        case) -> None:
    provider, merchant, _ = accounts
    bad, message = case(provider, merchant)
    with pytest.raises(InvalidPostingParams) as raised:
        accounter.hold("inv6.pay1.1", Batch(1, (bad,)))
    assert raised.value.wrong_postings == {bad: message}
    assert raised.value.code == "invalid_posting_params"
    assert woody_peers.accounter_calls("Hold") == 1  # a business error is not retried
    assert woody_peers.accounter_state()["plans"] == {}


def test_a_changed_batch_under_a_held_id_is_refused(
        accounter: AccounterClient, accounts: tuple[int, int, int]) -> None:
    provider, merchant, system = accounts
    accounter.hold("inv7.pay1.1", _payment_flow(provider, merchant, system, 1_000, 10))
    changed = _payment_flow(provider, merchant, system, 1_001, 10)
    with pytest.raises(InvalidPostingParams) as raised:
        accounter.hold("inv7.pay1.1", changed)
    assert raised.value.wrong_postings == {
        Posting(provider, merchant, 1_000, "RUB", "payment amount"):
            "Saved posting not found in batch: 1",
        Posting(provider, merchant, 1_001, "RUB", "payment amount"):
            "Received posting not found in batch: 1",
    }


def test_commit_must_list_exactly_the_held_batches(
        accounter: AccounterClient, accounts: tuple[int, int, int]) -> None:
    provider, merchant, system = accounts
    first = _payment_flow(provider, merchant, system, 1_000, 10)
    second = Batch(2, (Posting(merchant, provider, 1_000, "RUB", "revert"),))
    accounter.hold("inv8.pay1.1", first)
    accounter.hold("inv8.pay1.1", second)
    with pytest.raises(InvalidPostingParams) as missing:
        accounter.commit_plan("inv8.pay1.1", [first])
    assert set(missing.value.wrong_postings.values()) == {"Saved posting not found in batch: 2"}
    extra = Batch(3, (Posting(provider, system, 5, "RUB", "extra"),))
    with pytest.raises(InvalidPostingParams) as unexpected:
        accounter.commit_plan("inv8.pay1.1", [first, second, extra])
    assert set(unexpected.value.wrong_postings.values()) == {
        "Received posting not found in batch: 3"}
    assert accounter.get_plan("inv8.pay1.1") == (first, second)


def test_unknown_plan_and_finished_plans_get_shumways_invalid_request(
        accounter: AccounterClient, accounts: tuple[int, int, int]) -> None:
    provider, merchant, system = accounts
    batch = _payment_flow(provider, merchant, system, 300, 3)
    with pytest.raises(InvalidRequest) as unknown:
        accounter.commit_plan("inv9.pay1.1", [batch])
    assert unknown.value.errors == ["Posting plan not found: inv9.pay1.1"]

    accounter.hold("inv9.pay1.1", batch)
    accounter.commit_plan("inv9.pay1.1", [batch])
    with pytest.raises(InvalidRequest) as switched:
        accounter.rollback_plan("inv9.pay1.1", [batch])
    assert switched.value.errors == [
        "Unable to change plan state: inv9.pay1.1 from: COMMIT to ROLLBACK"]
    with pytest.raises(InvalidRequest) as held_after:
        accounter.hold("inv9.pay1.1", Batch(2, (Posting(merchant, provider, 1, "RUB", "x"),)))
    assert held_after.value.errors == [
        "Unable to change plan state: inv9.pay1.1 from: COMMIT to HOLD"]


def test_plan_shape_errors_are_invalid_request(accounter: AccounterClient,
                                               accounts: tuple[int, int, int]) -> None:
    provider, merchant, system = accounts
    batch = _payment_flow(provider, merchant, system, 300, 3)
    with pytest.raises(InvalidRequest) as empty_batch:
        accounter.hold("inv10.pay1.1", Batch(1, ()))
    assert empty_batch.value.errors == ["Posting batch (1) has no postings inside"]
    with pytest.raises(InvalidRequest) as no_batches:
        accounter.commit_plan("inv10.pay1.1", [])
    assert no_batches.value.errors == ["Plan (inv10.pay1.1) has no batches inside"]
    with pytest.raises(InvalidRequest) as duplicate:
        accounter.rollback_plan("inv10.pay1.1", [batch, batch])
    assert duplicate.value.errors == ["Batch (1) has duplicate in received list"]


def test_unknown_result_on_hold_is_retried_with_the_same_ids_and_holds_once(
        woody_peers: WoodyPeers, accounts: tuple[int, int, int]) -> None:
    provider, merchant, system = accounts
    # The first Hold is applied, then its answer is held back past the client's attempt timeout.
    woody_peers.accounter_faults({"once": ["timeout_after"], "timeout_ms": 2_000,
                                  "match": "Hold"})
    client = AccounterClient(woody_peers.accounter_url, timeout_s=1.5, attempts=3)
    batch = _payment_flow(provider, merchant, system, 4_200, 42)
    affected = client.hold("inv11.pay1.1", batch)

    assert affected[provider].min_available_amount == -4_200
    state = woody_peers.accounter_state()
    assert state["calls"]["Hold"] == 2
    assert state["faults"]["injected"] == {"timeout_after": 1}
    assert state["plans"]["inv11.pay1.1"]["batches"] == [{"id": 1, "postings": [
        {"from_id": provider, "to_id": merchant, "amount": 4_200, "currency": "RUB",
         "description": "payment amount"},
        {"from_id": merchant, "to_id": system, "amount": 42, "currency": "RUB",
         "description": "system fee"},
    ]}]
    assert _balances(client, provider, merchant, system) == [
        (0, -4_200, 0), (0, 0, 4_158), (0, 0, 42)]


def test_a_client_bound_to_a_context_carries_it_on_every_call(canned_peer: CannedPeer) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    context = WoodyContext(trace_id="step-trace", span_id="step-span", deadline=deadline)
    unbound = AccounterClient(canned_peer.url, attempts=1)
    bound = unbound.with_context(context)
    for client in (bound, bound, unbound):
        with pytest.raises(ResourceUnavailable):  # the canned peer answers 503
            client.get_account(1)
    first, second, other = (r.headers for r in canned_peer.requests)
    for headers in (first, second):
        assert (headers["woody.trace-id"], headers["woody.parent-id"]) == ("step-trace",
                                                                           "step-span")
        assert parse_deadline(headers["woody.deadline"]) <= deadline
    assert first["woody.span-id"] != second["woody.span-id"]
    # Binding makes a new client: the one it came from still starts a trace per call.
    assert other["woody.parent-id"] == "undefined" and "woody.deadline" not in other
