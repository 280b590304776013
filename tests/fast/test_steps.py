"""Every payment step, one function each, against in-memory Limiter, Accounter and provider.

A step returns changes and the next timer and calls peers with ids derived from the state, so
a step that failed or crashed halfway is simply run again: the assertions below check the
changes, the timer, the ids sent, and that a repeat leaves each peer as one run would.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from clients import accounter as accounter_client
from clients import limiter as limiter_client
from clients.json_http import PeerUnavailable
from clients.provider import ProviderUnavailable, SessionResult
from clients.woody import BusinessError, ResourceUnavailable, ResultUnknown
from clients.woody_wire import WoodyContext
from payments import decisions, steps
from payments.cashflow import compute, revert, to_batch
from payments.decisions import CaptureCommand, RepairCommand
from payments.events import (
    CaptureStarted,
    InvalidHistory,
    LimitsCommitted,
    LimitsHeld,
    LimitsRolledBack,
    PlanBatchHeld,
    PlanCommitted,
    PlanRolledBack,
    RollbackStarted,
    SessionFinished,
    SessionStarted,
    StatusChanged,
)
from payments.model import (
    PROCESSED,
    TIMEOUT_REASON,
    CaptureData,
    Failure,
    Status,
    Target,
    TurnoverLimit,
)
from payments.money import Money
from payments.peers import Peers
from payments.processor import is_transient
from payments.steps import STEPS, ProviderSessionFailed, ProviderSessionRetry
from tests.fast.fakes import FakeAccounter, FakeLimiter, FakeProvider
from tests.fast.payment_data import (
    OPERATION,
    PLAN,
    balances_after_capture,
    request,
    run_step,
    run_until_rest,
    started,
    then,
    types,
)
from workers.machines import Action


def test_every_activity_with_a_timer_has_a_step_and_this_file_covers_each():
    assert set(STEPS) == {"processing_accounter", "flow_waiting", "processing_capture",
                          "updating_accounter", "finalizing_session", "finalizing_accounter",
                          "processing_failure"}


# --- processing_accounter (hold payment) ---------------------------------------------------


def test_hold_holds_limits_then_batch_1_and_waits_until_held_until(peers, limiter, accounter):
    state = started(request(hold="cancel"))

    step = steps.processing_accounter(state, peers)

    assert list(step.changes) == [LimitsHeld(OPERATION),
                                  PlanBatchHeld(PLAN, 1, state.cash_flow),
                                  StatusChanged(PROCESSED)]
    assert step.action == Action.deadline(state.started.flow.held_until)
    assert limiter.called("hold_batch") == [OPERATION]
    assert limiter.called("get_batch") == []  # no boundary, nothing to read back
    assert accounter.called("hold") == [(PLAN, 1)]
    assert accounter.plans[PLAN].batches[1] == to_batch(1, state.cash_flow)
    assert limiter.value("daily") == 1000
    # The limiter sees the payment as captured, without a captured cost yet.
    context = limiter.operations[OPERATION].contexts[0]
    assert (context.captured_amount, context.cost_amount) == (None, 1000)
    assert context.flow_hold == ("cancel", steps._rfc3339(state.started.flow.held_until))


def test_hold_within_its_upper_boundary_reads_the_values_back_and_goes_on(peers, limiter):
    state = started(request(hold="capture", limits=[TurnoverLimit("daily", 1, 1500)]))
    limiter.committed["daily"] = 500

    step = steps.processing_accounter(state, peers)

    assert limiter.called("get_batch") == [OPERATION]
    assert types(step.changes) == ["limits_held", "plan_batch_held", "status_changed"]


def test_hold_over_the_upper_boundary_starts_the_rollback_without_holding_cash(
        peers, limiter, accounter):
    state = started(request(hold="capture", limits=[TurnoverLimit("daily", 1, 1500)]))
    limiter.committed["daily"] = 501  # 501 + 1000 is strictly above 1500

    step = steps.processing_accounter(state, peers)

    assert types(step.changes) == ["limits_held", "rollback_started"]
    failure = step.changes[-1].failure
    assert failure.code == "limit_overflow" and "daily: 1501 > 1500" in failure.reason
    assert step.action == Action.instant()
    assert accounter.calls == []
    assert then(state, step.changes).activity == "processing_failure"


def test_a_value_equal_to_the_boundary_is_no_overflow(peers, limiter):
    state = started(request(hold="capture", limits=[TurnoverLimit("daily", 1, 1500)]))
    limiter.committed["daily"] = 500

    assert types(steps.processing_accounter(state, peers).changes)[-1] == "status_changed"


def test_a_limiter_refusal_fails_the_payment_with_the_refusals_code(peers, accounter):
    state = started(request(hold="capture", limits=[TurnoverLimit("no-such-limit")]))

    step = steps.processing_accounter(state, peers)

    assert list(step.changes) == [RollbackStarted(Failure("limit_not_found", "LimitNotFound"))]
    assert accounter.calls == []


def test_an_accounter_refusal_fails_the_payment_after_the_limits_were_held(peers, accounter):
    accounter.fail("hold", accounter_client.InvalidPostingParams({}))
    state = started(request(hold="capture"))

    step = steps.processing_accounter(state, peers)

    assert types(step.changes) == ["limits_held", "rollback_started"]
    assert step.changes[-1].failure.code == "invalid_posting_params"
    # The rollback releases what was held: the limits, and no plan (none was held).
    failed = then(state, step.changes)
    final = steps.processing_failure(failed, peers)
    assert list(final.changes) == [LimitsRolledBack(OPERATION),
                                   StatusChanged(Status.failed(failed.failure))]


@pytest.mark.parametrize("error", [ResourceUnavailable("refused"), ResultUnknown("timeout")])
def test_an_unreachable_limiter_raises_a_transient_error_and_the_repeat_holds_once(
        peers, limiter, accounter, error):
    state = started(request(hold="cancel"))
    limiter.fail("hold_batch", error)

    with pytest.raises(type(error)) as raised:
        steps.processing_accounter(state, peers)
    assert is_transient(raised.value)
    assert accounter.calls == []

    step = steps.processing_accounter(state, peers)
    assert types(step.changes) == ["limits_held", "plan_batch_held", "status_changed"]
    assert limiter.called("hold_batch") == [OPERATION, OPERATION]
    assert limiter.value("daily") == 1000


def test_hold_crashed_after_the_accounter_held_repeats_with_the_same_ids_and_holds_once(
        peers, limiter, accounter):
    state = started(request(hold="cancel"))
    accounter.lose_answer("hold", ResultUnknown("connection reset"))

    with pytest.raises(ResultUnknown):
        steps.processing_accounter(state, peers)  # nothing is stored: the state stays
    step = steps.processing_accounter(state, peers)

    assert accounter.called("hold") == [(PLAN, 1), (PLAN, 1)]
    assert accounter.holds == 1
    assert limiter.called("hold_batch") == [OPERATION, OPERATION]
    assert limiter.value("daily") == 1000  # held once
    assert types(step.changes) == ["limits_held", "plan_batch_held", "status_changed"]


# --- flow_waiting (the hold expired) ---------------------------------------------------------


def held(peers, hold: str = "cancel", **kwargs):
    state = started(request(hold=hold, **kwargs))
    _step, state = run_step(state, peers)
    assert state.activity == "flow_waiting"
    return state


def test_an_expired_hold_that_cancels_starts_a_cancel_session_without_peer_calls(
        peers, accounter, limiter):
    state = held(peers, "cancel")
    before = len(accounter.calls) + len(limiter.calls)

    step = steps.flow_waiting(state, peers)

    assert list(step.changes) == [SessionStarted(Target.cancelled(TIMEOUT_REASON))]
    assert step.action == Action.instant()
    assert len(accounter.calls) + len(limiter.calls) == before


def test_an_expired_hold_that_captures_captures_the_whole_cost(peers):
    state = held(peers, "capture")

    step = steps.flow_waiting(state, peers)

    data = CaptureData(TIMEOUT_REASON, Money(1000, "RUB"))
    assert list(step.changes) == [CaptureStarted(data), SessionStarted(Target.captured(data))]
    assert then(state, step.changes).activity == "finalizing_session"


# --- processing_capture (registered payment) -------------------------------------------------


def test_registered_payment_holds_limits_with_the_captured_cost_and_batch_1(
        peers, limiter, accounter):
    state = started(request())
    assert state.activity == "processing_capture"

    step = steps.processing_capture(state, peers)

    target = Target.captured(CaptureData(TIMEOUT_REASON, Money(1000, "RUB")))
    assert list(step.changes) == [LimitsHeld(OPERATION), PlanBatchHeld(PLAN, 1, state.cash_flow),
                                  SessionStarted(target), SessionFinished(target)]
    assert step.action == Action.instant()
    assert limiter.operations[OPERATION].contexts[0].captured_amount == 1000
    assert limiter.called("get_batch") == []  # registered payments are not overflow-checked
    assert accounter.called("hold") == [(PLAN, 1)]
    assert then(state, step.changes).activity == "finalizing_accounter"


def test_registered_payment_without_limits_makes_no_limiter_call(peers, limiter):
    state = started(request(limits=()))

    step = steps.processing_capture(state, peers)

    assert types(step.changes) == ["plan_batch_held", "session_started", "session_finished"]
    assert limiter.calls == []


def test_registered_payment_refused_by_the_limiter_raises_a_fatal_business_error(peers):
    state = started(request(limits=[TurnoverLimit("no-such-limit")]))

    with pytest.raises(limiter_client.LimitNotFound) as raised:
        steps.processing_capture(state, peers)
    assert not is_transient(raised.value)


def test_registered_payment_repeated_after_a_lost_answer_holds_once(peers, limiter, accounter):
    state = started(request())
    accounter.lose_answer("hold", ResultUnknown("timeout"))

    with pytest.raises(ResultUnknown):
        steps.processing_capture(state, peers)
    step = steps.processing_capture(state, peers)

    assert accounter.holds == 1 and limiter.value("daily") == 1000
    assert types(step.changes) == ["limits_held", "plan_batch_held", "session_started",
                                   "session_finished"]


# --- updating_accounter (partial capture) -----------------------------------------------------


def partially_captured(peers, amount: int = 600):
    state = held(peers, "cancel")
    changes = decisions.capture(state, CaptureCommand("partial", Money(amount, "RUB")))
    state = then(state, changes)
    assert state.activity == "updating_accounter"
    return state


def test_partial_capture_holds_the_reverted_flow_as_2_and_the_new_flow_as_3(peers, accounter):
    state = partially_captured(peers)

    step = steps.updating_accounter(state, peers)

    partial = compute(state.started.cash_flow_template, Money(600, "RUB"))
    assert list(step.changes) == [
        PlanBatchHeld(PLAN, 2, revert(state.cash_flow)), PlanBatchHeld(PLAN, 3, partial),
        SessionStarted(Target.captured(CaptureData("partial", Money(600, "RUB"))))]
    assert step.action == Action.instant()
    assert accounter.called("hold")[-2:] == [(PLAN, 2), (PLAN, 3)]
    reverted = accounter.plans[PLAN].batches[2].postings
    assert reverted[0].description == "revert(payment amount)"
    assert (reverted[0].from_id, reverted[0].to_id) == (102, 101)


def test_partial_capture_failing_between_its_two_holds_repeats_both_and_holds_each_once(
        peers, accounter):
    state = partially_captured(peers)
    accounter.fail("hold", ResourceUnavailable("overloaded"))  # batch 2 not sent
    with pytest.raises(ResourceUnavailable):
        steps.updating_accounter(state, peers)
    accounter.lose_answer("hold", ResultUnknown("reset"))  # batch 2 held, answer lost
    with pytest.raises(ResultUnknown):
        steps.updating_accounter(state, peers)

    step = steps.updating_accounter(state, peers)

    assert accounter.called("hold") == [(PLAN, 1), (PLAN, 2), (PLAN, 2), (PLAN, 2), (PLAN, 3)]
    assert sorted(accounter.plans[PLAN].batches) == [1, 2, 3]
    assert accounter.holds == 3
    assert types(step.changes) == ["plan_batch_held", "plan_batch_held", "session_started"]


def test_updating_accounter_without_a_partial_cash_flow_is_a_broken_history(peers):
    state = held(peers, "capture")
    with pytest.raises(InvalidHistory):
        steps.updating_accounter(state, peers)


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
