"""The steps that finish a payment (provider session, finalizing the accounter, rolling back
a failure) and whole chains, against in-memory peers; see `test_steps.py` for the rules.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from clients import accounter as accounter_client
from clients.json_http import PeerUnavailable
from clients.provider import ProviderUnavailable, SessionResult
from clients.woody import BusinessError, ResultUnknown
from clients.woody_wire import WoodyContext
from payments import decisions, steps
from payments.decisions import CaptureCommand, RepairCommand
from payments.events import (
    InvalidHistory,
    LimitsCommitted,
    LimitsRolledBack,
    PlanCommitted,
    PlanRolledBack,
    SessionFinished,
    StatusChanged,
)
from payments.model import (
    Failure,
    Status,
)
from payments.money import Money
from payments.peers import Peers
from payments.processor import is_transient
from payments.steps import ProviderSessionFailed, ProviderSessionRetry
from tests.fast.fakes import FakeAccounter, FakeLimiter, FakeProvider
from tests.fast.payment_data import (
    OPERATION,
    PLAN,
    balances_after_capture,
    held,
    partially_captured,
    request,
    run_step,
    run_until_rest,
    started,
    then,
    types,
)
from workers.machines import Action


# --- finalizing_session (the provider) -------------------------------------------------------


def in_session(peers, hold: str = "capture"):
    state = held(peers, hold)
    if hold == "capture":
        changes = decisions.capture(state, CaptureCommand("by the shop"))
    else:
        changes = decisions.cancel(state, "by the shop")
    state = then(state, changes)
    assert state.activity == "finalizing_session"
    return state


def test_a_session_in_progress_polls_again_when_the_provider_says(peers, provider):
    state = in_session(peers)
    session_id = f"{PLAN}.captured"
    provider.script(session_id, SessionResult("processing", poll_in_s=7))

    step = steps.finalizing_session(state, peers)

    assert list(step.changes) == [] and step.action == Action.timeout(7)
    request_sent = provider.requests[0]
    assert request_sent["session_id"] == session_id
    assert (request_sent["target"], request_sent["cost_amount"]) == ("captured", 1000)
    assert request_sent["trx_id"] == "trx-0" and request_sent["trx_extra"] == {"rrn": "42"}
    assert request_sent["route"] == (7, 42) and request_sent["reason"] == "by the shop"


def test_a_succeeded_session_finishes_with_the_providers_trx_id(peers, provider):
    state = in_session(peers)
    provider.script(f"{PLAN}.captured", SessionResult("succeeded", trx_id="trx-9"))

    step = steps.finalizing_session(state, peers)

    assert list(step.changes) == [SessionFinished(state.target, trx_id="trx-9")]
    assert step.action == Action.instant()
    assert then(state, step.changes).trx_id == "trx-9"


def test_a_cancel_session_carries_its_own_id_and_no_cart(peers, provider):
    state = in_session(peers, "cancel")

    step = steps.finalizing_session(state, peers)

    assert provider.called("process_session") == [f"{PLAN}.cancelled"]
    assert provider.requests[0]["target"] == "cancelled" and provider.requests[0]["cart"] is None
    assert types(step.changes) == ["session_finished"]


def test_a_transient_provider_failure_is_retried_and_a_final_one_is_not(peers, provider):
    state = in_session(peers)
    session_id = f"{PLAN}.captured"
    provider.script(session_id, SessionResult("failed", failure_code="busy", transient=True),
                    SessionResult("failed", failure_code="card_expired"))

    with pytest.raises(ProviderSessionRetry) as transient:
        steps.finalizing_session(state, peers)
    assert is_transient(transient.value)
    with pytest.raises(ProviderSessionFailed) as fatal:
        steps.finalizing_session(state, peers)
    assert not is_transient(fatal.value) and "card_expired" in str(fatal.value)
    # A failed session stays failed: the same id gets the same answer.
    with pytest.raises(ProviderSessionFailed):
        steps.finalizing_session(state, peers)
    assert provider.called("process_session") == [session_id] * 3


def test_an_unreachable_provider_is_transient_and_the_repeat_uses_the_same_session(
        peers, provider):
    state = in_session(peers)
    provider.fail("process_session", ProviderUnavailable("503"))
    provider.lose_answer("process_session", ProviderUnavailable("read timeout"))

    for _ in range(2):
        with pytest.raises(PeerUnavailable) as raised:
            steps.finalizing_session(state, peers)
        assert is_transient(raised.value)
    step = steps.finalizing_session(state, peers)

    assert set(provider.called("process_session")) == {f"{PLAN}.captured"}
    assert list(step.changes) == [SessionFinished(state.target, trx_id=f"trx-{PLAN}.captured")]


# --- finalizing_accounter ---------------------------------------------------------------------


def finalizing(peers, hold: str = "capture"):
    state = in_session(peers, hold)
    _step, state = run_step(state, peers)
    assert state.activity == "finalizing_accounter"
    return state


def test_a_capture_commits_limits_with_the_captured_cost_and_the_plan_once(
        peers, limiter, accounter):
    state = finalizing(peers)

    step = steps.finalizing_accounter(state, peers)

    assert list(step.changes) == [LimitsCommitted(OPERATION, 1000), PlanCommitted(PLAN, (1,)),
                                  StatusChanged(Status.of_target(state.target))]
    assert step.action == Action.unset()
    assert limiter.operations[OPERATION].contexts[-1].captured_amount == 1000
    assert limiter.committed["daily"] == 1000
    assert accounter.called("commit_plan") == [(PLAN, (1,))]
    assert dict(accounter.balances) == balances_after_capture(1000)
    assert then(state, step.changes).activity == "idle"


def test_a_partial_capture_commits_all_three_batches_and_the_captured_amount(
        peers, limiter, accounter):
    state = run_until_rest(partially_captured(peers), peers)

    assert state.status.status == "captured" and state.captured_cost == Money(600, "RUB")
    assert accounter.called("commit_plan") == [(PLAN, (1, 2, 3))]
    assert limiter.committed["daily"] == 600
    assert dict(accounter.balances) == balances_after_capture(600)


def test_a_cancel_rolls_back_limits_and_plan(peers, limiter, accounter):
    state = finalizing(peers, "cancel")

    step = steps.finalizing_accounter(state, peers)

    assert list(step.changes) == [LimitsRolledBack(OPERATION), PlanRolledBack(PLAN, (1,)),
                                  StatusChanged(Status.of_target(state.target))]
    assert limiter.value("daily") == 0
    assert accounter.plans[PLAN].state == "rolled_back"
    assert not any(accounter.balances.values())


def test_commit_crashed_after_the_accounter_committed_repeats_without_moving_money_twice(
        peers, limiter, accounter):
    state = finalizing(peers)
    accounter.lose_answer("commit_plan", ResultUnknown("reset"))

    with pytest.raises(ResultUnknown):
        steps.finalizing_accounter(state, peers)
    step = steps.finalizing_accounter(state, peers)

    assert limiter.called("commit_batch") == [OPERATION, OPERATION]
    assert accounter.called("commit_plan") == [(PLAN, (1,)), (PLAN, (1,))]
    assert accounter.finals == 1
    assert limiter.committed["daily"] == 1000
    assert dict(accounter.balances) == balances_after_capture(1000)
    assert types(step.changes) == ["limits_committed", "plan_committed", "status_changed"]


def test_a_plan_only_the_legacy_id_knows_is_committed_under_it_when_the_fallback_is_on(
        peers, accounter):
    state = finalizing(peers)
    accounter.plans["inv-1.pay-1"] = accounter.plans.pop(PLAN)  # made by an older version

    with pytest.raises(accounter_client.InvalidRequest):
        steps.finalizing_accounter(state, peers)  # fallback off: a fatal business error

    step = steps.finalizing_accounter(state, replace(peers, legacy_plan_ids=True))

    assert accounter.called("commit_plan")[-2:] == [(PLAN, (1,)), ("inv-1.pay-1", (1,))]
    assert PlanCommitted("inv-1.pay-1", (1,)) in step.changes


def test_a_refusal_other_than_plan_not_found_never_tries_the_legacy_id(peers, accounter):
    state = finalizing(peers)
    accounter.fail("commit_plan", accounter_client.InvalidRequest(["Unable to change plan"]))

    with pytest.raises(accounter_client.InvalidRequest) as raised:
        steps.finalizing_accounter(state, replace(peers, legacy_plan_ids=True))
    assert isinstance(raised.value, BusinessError) and not is_transient(raised.value)
    assert accounter.called("commit_plan") == [(PLAN, (1,))]


# --- processing_failure -----------------------------------------------------------------------


def failed_in_session(peers):
    """A cancel whose provider session an operator failed: limits and batch 1 are held."""
    state = in_session(peers, "cancel")
    failure = Failure("provider_declined", "the provider lost the authorisation")
    state = then(state, decisions.repair(state, RepairCommand("fail_session", failure=failure)))
    assert state.activity == "processing_failure"
    return state


def test_failure_rolls_back_limits_and_every_held_batch_then_fails(peers, limiter, accounter):
    state = failed_in_session(peers)

    step = steps.processing_failure(state, peers)

    assert list(step.changes) == [LimitsRolledBack(OPERATION), PlanRolledBack(PLAN, (1,)),
                                  StatusChanged(Status.failed(state.failure))]
    assert step.action == Action.unset()
    assert limiter.operations[OPERATION].state == "rolled_back"
    assert accounter.plans[PLAN].state == "rolled_back"
    final = then(state, step.changes)
    assert (final.activity, final.status.failure.code) == ("idle", "provider_declined")


def test_failure_repeated_after_a_lost_rollback_answer_releases_nothing_twice(
        peers, limiter, accounter):
    state = failed_in_session(peers)
    accounter.lose_answer("rollback_plan", ResultUnknown("timeout"))

    with pytest.raises(ResultUnknown):
        steps.processing_failure(state, peers)
    step = steps.processing_failure(state, peers)

    assert limiter.called("rollback_batch") == [OPERATION, OPERATION]
    assert accounter.called("rollback_plan") == [(PLAN, (1,)), (PLAN, (1,))]
    assert accounter.finals == 1
    assert types(step.changes) == ["limits_rolled_back", "plan_rolled_back", "status_changed"]


def test_failure_without_a_failure_is_a_broken_history(peers):
    with pytest.raises(InvalidHistory):
        steps.processing_failure(held(peers), peers)


# --- the whole chain, step after step ----------------------------------------------------------


@pytest.mark.parametrize("hold", ["capture", "cancel"])
def test_a_hold_payment_that_expires_reaches_its_end_with_each_effect_once(hold):
    accounter, limiter, provider = FakeAccounter(), FakeLimiter({"daily": 0}), FakeProvider()
    peers = Peers(accounter, limiter, provider, WoodyContext.new())  # type: ignore[arg-type]

    state = run_until_rest(started(request(hold=hold)), peers)
    assert state.activity == "flow_waiting"
    state = run_until_rest(state, peers)  # the hold's deadline has come

    expected = "captured" if hold == "capture" else "cancelled"
    assert (state.status.status, state.activity) == (expected, "idle")
    assert accounter.holds == 1 and accounter.finals == 1
    assert provider.called("process_session") == [f"{PLAN}.{expected}"]
    assert limiter.committed["daily"] == (1000 if hold == "capture" else 0)
    assert state.started.flow.held_until - state.started.created_at == timedelta(days=1)


@pytest.mark.parametrize("cost", [0, 1, 2**63 - 1])
def test_a_registered_payment_of_an_edge_amount_is_captured_to_the_last_minor_unit(
        cost, peers, limiter, accounter):
    state = run_until_rest(started(request(cost=cost)), peers)

    assert (state.status.status, state.captured_cost) == ("captured", Money(cost, "RUB"))
    assert limiter.committed["daily"] == cost
    assert limiter.operations[OPERATION].contexts[-1].captured_amount == cost
    assert dict(accounter.balances) == balances_after_capture(cost)
