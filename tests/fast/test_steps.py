"""Every payment step, one function each, against in-memory Limiter, Accounter and provider:
the steps up to the capture here, the session, finalizing and failure in
`test_steps_finishing.py`.

A step returns changes and the next timer and calls peers with ids derived from the state, so
a step that failed or crashed halfway is simply run again: the assertions below check the
changes, the timer, the ids sent, and that a repeat leaves each peer as one run would.
"""

from __future__ import annotations


import pytest

from clients import accounter as accounter_client
from clients import limiter as limiter_client
from clients.woody import ResourceUnavailable, ResultUnknown
from payments import steps
from payments.cashflow import compute, revert, to_batch
from payments.events import (
    CaptureStarted,
    InvalidHistory,
    LimitsHeld,
    LimitsRolledBack,
    PlanBatchHeld,
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
from payments.processor import is_transient
from payments.steps import STEPS
from tests.fast.payment_data import (
    OPERATION,
    PLAN,
    held,
    partially_captured,
    request,
    started,
    then,
    types,
)
from workers.machines import Action


def test_every_activity_with_a_timer_has_a_step_and_these_files_cover_each():
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
