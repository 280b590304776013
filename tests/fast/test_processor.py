"""The processor of the `payments` namespace: signals in, events, timers and responses out.

The machine is a `workers.machines.Machine` built by hand, and `Machine` below plays the
runner's part for one payment: it keeps the history, hands the processor each signal and
appends what comes back, storing nothing when the processor raises. The peers are the
in-memory fakes, put where the processor looks them up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clients import limiter as limiter_client
from clients.json_http import PeerBadAnswer, PeerRejected, PeerUnavailable
from clients.provider import ProviderRejected, ProviderUnavailable, SessionResult
from clients.woody import (
    BusinessError,
    ResourceUnavailable,
    ResultUnexpected,
    ResultUnknown,
)
from payments import processor
from payments.decisions import CancelCommand
from payments.errors import InvalidPaymentState, RepairNotApplicable
from payments.events import InvalidHistory, from_json
from payments.model import PaymentRequest
from payments.peers import Peers
from payments.processor import NAMESPACE, is_transient, machine_id, process, state_of
from payments.schemas import CaptureBody, HoldBody, RegisterBody, RepairBody
from payments.state import PaymentState
from payments.steps import STEPS, ProviderSessionFailed, ProviderSessionRetry
from tests.fast.payment_data import OPERATION, PLAN, balances_after_capture
from workers import machines
from workers.machines import Action, Call, Event, Init, Repair, Result, Timeout

RUB = "RUB"


def body(*, hold: str | None = None, cost: int = 1000, limits: tuple[str, ...] = ("daily",)
         ) -> dict[str, Any]:
    """A register body (or, with `hold`, a hold body) as the API and the tasks receive it."""
    def account(account_id: int, kind: str) -> dict[str, Any]:
        return {"account_id": account_id, "type": kind}
    payment: dict[str, Any] = {
        "invoice_id": "inv-1", "payment_id": "pay-1", "party_id": "party", "shop_id": "shop",
        "cost": {"amount": cost, "currency": RUB},
        "route": {"provider_id": 7, "terminal_id": 42},
        "cash_flow": [
            {"source": account(101, "provider.settlement"),
             "destination": account(102, "merchant.settlement"),
             "volume": {"share": {"p": 1, "q": 1}}, "details": "payment amount"},
            {"source": account(102, "merchant.settlement"),
             "destination": account(103, "system.settlement"),
             "volume": {"share": {"p": 3, "q": 100, "rounding": "round_half_towards_zero"}},
             "details": "system fee"},
            {"source": account(103, "system.settlement"),
             "destination": account(104, "external.outcome"),
             "volume": {"fixed": {"amount": 15, "currency": RUB}}, "details": "acquiring fee"},
        ],
        "turnover_limits": [{"id": limit, "version": 1} for limit in limits],
        "transaction_info": {"id": "trx-0", "extra": {}},
    }
    if hold is not None:
        held_until = datetime.now(UTC) + timedelta(days=1)
        payment["flow"] = {"on_hold_expiration": hold, "held_until": held_until.isoformat()}
    return payment


def request(**options: Any) -> PaymentRequest:
    """The typed request the processor receives for such a body (JSON stays at the edges)."""
    model = HoldBody if options.get("hold") is not None else RegisterBody
    return model.model_validate(body(**options)).to_domain()


# The commands as the processor receives them; one place to follow a change of their shape.
def capture(reason: str = "by the shop", amount: int | None = None) -> Call:
    command: dict[str, Any] = {"reason": reason}
    if amount is not None:
        command["cost"] = {"amount": amount, "currency": RUB}
    return Call(CaptureBody.model_validate(command).to_domain())


def cancel(reason: str = "by the shop") -> Call:
    return Call(CancelCommand(reason))


def repair(action: str, **fields: Any) -> Repair:
    return Repair(RepairBody.model_validate({"action": action, **fields}).to_domain())


class Machine:
    """One payment machine as the runner keeps it: the history and the last result."""

    def __init__(self) -> None:
        self.history: list[Event] = []
        self.results: list[Result] = []

    @property
    def value(self) -> machines.Machine:
        return machines.Machine(processor.NAME, machine_id("inv-1", "pay-1"),
                                tuple(self.history), None)

    @property
    def state(self) -> PaymentState:
        return state_of(self.value)

    def send(self, signal: Any) -> Result:
        result = process(signal, self.value)  # raises: nothing is stored
        for body_ in result.events:
            self.history.append(Event(len(self.history) + 1, datetime.now(UTC), body_))
        self.results.append(result)
        return result

    def run_timers(self, limit: int = 20) -> Result:
        """Fire the timer while the last result asks for an instant one."""
        for _ in range(limit):
            result = self.send(Timeout())
            if result.action != Action.instant():
                return result
        raise AssertionError("the machine never came to rest")


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, peers: Peers) -> Machine:
    monkeypatch.setattr(processor, "get_peers", lambda: peers.for_step())
    return Machine()


def event_types(result: Result) -> list[str]:
    return [event["type"] for event in result.events]


# --- init ---------------------------------------------------------------------------------------


def test_register_starts_in_processing_capture_and_asks_for_that_step_at_once(machine):
    result = machine.send(Init(request()))

    assert event_types(result) == ["payment_started", "route_changed", "cash_flow_changed",
                                   "status_changed", "capture_started"]
    assert result.action == Action.instant()
    assert result.step == "processing_capture"
    assert machine.state.activity == "processing_capture"
    # Every event is stored as JSON and reads back.
    assert all(from_json(event).TYPE == event["type"] for event in result.events)


def test_a_hold_body_starts_in_processing_accounter(machine):
    result = machine.send(Init(request(hold="cancel")))

    assert event_types(result) == ["payment_started", "route_changed", "cash_flow_changed"]
    assert result.step == "processing_accounter"


def test_init_makes_no_peer_call(machine, accounter, limiter, provider):
    machine.send(Init(request(hold="capture")))

    assert accounter.calls == limiter.calls == provider.calls == []


# --- timeouts: the step of the activity ---------------------------------------------------------


def test_a_registered_payment_runs_to_captured_step_by_step(machine, accounter, limiter):
    machine.send(Init(request()))

    first = machine.send(Timeout())
    assert first.step == "finalizing_accounter" and first.action == Action.instant()
    last = machine.send(Timeout())

    assert event_types(last) == ["limits_committed", "plan_committed", "status_changed"]
    assert last.action == Action.unset() and last.step is None
    assert machine.state.status.status == "captured"
    assert accounter.called("commit_plan") == [(PLAN, (1,))]
    assert limiter.called("commit_batch") == [OPERATION]
    assert dict(accounter.balances) == balances_after_capture(1000)


def test_a_hold_waits_on_a_deadline_timer_at_held_until(machine):
    machine.send(Init(request(hold="capture")))

    result = machine.send(Timeout())

    held_until = machine.state.started.flow.held_until
    assert result.action == Action.deadline(held_until)
    assert result.step == "flow_waiting"


def test_a_provider_still_processing_sets_the_poll_timer(machine, provider):
    machine.send(Init(request(hold="capture")))
    machine.send(Timeout())
    machine.send(capture())
    provider.script(f"{PLAN}.captured", SessionResult("processing", poll_in_s=12))

    result = machine.send(Timeout())

    assert result.events == [] and result.action == Action.timeout(12)
    assert result.step == "finalizing_session"


def test_each_step_gets_a_fresh_trace(machine, accounter, monkeypatch, peers):
    traces: list[str] = []

    def traced() -> Peers:
        fresh = peers.for_step()
        traces.append(fresh.woody.trace_id)
        return fresh

    monkeypatch.setattr(processor, "get_peers", traced)
    machine.send(Init(request()))
    machine.run_timers()

    assert len(traces) == 2 and len(set(traces)) == 2


def test_a_timer_in_a_resting_activity_is_a_broken_history(machine):
    machine.send(Init(request()))
    machine.run_timers()

    with pytest.raises(InvalidHistory):
        machine.send(Timeout())


# --- calls: capture and cancel ------------------------------------------------------------------


def test_a_total_capture_answers_the_activity_it_leads_to(machine, accounter):
    machine.send(Init(request(hold="capture")))
    machine.send(Timeout())

    result = machine.send(capture())

    assert event_types(result) == ["capture_started", "session_started"]
    assert result.response == "finalizing_session" and result.step == "finalizing_session"
    assert result.action == Action.instant()
    assert accounter.called("hold") == [(PLAN, 1)]  # nothing more until finalizing_accounter


def test_a_partial_capture_goes_through_updating_accounter_to_the_captured_amount(
        machine, accounter, limiter):
    machine.send(Init(request(hold="cancel")))
    machine.send(Timeout())

    result = machine.send(capture(amount=600))
    assert result.response == "updating_accounter"
    machine.run_timers()

    state = machine.state
    assert (state.status.status, state.captured_cost.amount) == ("captured", 600)
    assert accounter.called("commit_plan") == [(PLAN, (1, 2, 3))]
    assert limiter.committed["daily"] == 600
    assert dict(accounter.balances) == balances_after_capture(600)


def test_a_cancel_rolls_back_and_ends_cancelled(machine, accounter, limiter):
    machine.send(Init(request(hold="capture")))
    machine.send(Timeout())

    assert machine.send(cancel()).response == "finalizing_session"
    machine.run_timers()

    assert machine.state.status.status == "cancelled"
    assert accounter.plans[PLAN].state == "rolled_back"
    assert limiter.value("daily") == 0


def test_a_capture_outside_flow_waiting_is_refused_and_stores_nothing(machine):
    machine.send(Init(request()))
    before = list(machine.history)

    with pytest.raises(InvalidPaymentState):
        machine.send(capture())
    assert machine.history == before


def test_a_second_capture_is_refused(machine):
    machine.send(Init(request(hold="capture")))
    machine.send(Timeout())
    machine.send(capture())

    with pytest.raises(InvalidPaymentState):
        machine.send(capture())


def test_an_unknown_call_is_refused(machine):
    machine.send(Init(request(hold="capture")))

    with pytest.raises(TypeError):
        machine.send(Call({"refund": {}}))


# --- failures: transient, fatal, and the crash between a peer's effect and the commit ----------


def test_a_step_crashed_after_its_peer_acted_is_repeated_with_the_same_ids(
        machine, accounter, limiter):
    machine.send(Init(request()))
    accounter.lose_answer("hold", ResultUnknown("connection reset"))
    before = list(machine.history)

    with pytest.raises(ResultUnknown) as raised:
        machine.send(Timeout())
    assert is_transient(raised.value)
    assert machine.history == before
    machine.run_timers()

    assert accounter.called("hold") == [(PLAN, 1), (PLAN, 1)]
    assert limiter.called("hold_batch") == [OPERATION, OPERATION]
    assert accounter.holds == 1 and accounter.finals == 1
    assert limiter.committed["daily"] == 1000
    assert dict(accounter.balances) == balances_after_capture(1000)


def test_a_hold_refused_by_a_peer_fails_the_payment_not_the_machine(machine, limiter):
    machine.send(Init(request(hold="capture", limits=("no-such-limit",))))

    result = machine.run_timers()

    assert result.action == Action.unset()
    state = machine.state
    assert (state.status.status, state.activity) == ("failed", "idle")
    assert state.status.failure.code == "limit_not_found"


def test_a_fatal_provider_failure_is_repaired_by_failing_the_session(
        machine, provider, accounter, limiter):
    machine.send(Init(request(hold="capture")))
    machine.send(Timeout())
    machine.send(capture())
    provider.script(f"{PLAN}.captured", SessionResult("failed", failure_code="declined"))

    with pytest.raises(ProviderSessionFailed) as raised:
        machine.send(Timeout())
    assert not NAMESPACE.is_transient(raised.value)

    result = machine.send(repair("fail_session", failure={"code": "declined", "reason": "no"},
                                 operator="ops", reason="the bank said no"))
    assert event_types(result) == ["repaired", "session_finished", "rollback_started"]
    assert result.response == "fail_session" and result.action == Action.instant()
    assert result.step is None  # a repair runs whatever step the machine is in
    machine.run_timers()

    state = machine.state
    assert (state.status.status, state.status.failure.code) == ("failed", "declined")
    assert accounter.plans[PLAN].state == "rolled_back"
    assert limiter.operations[OPERATION].state == "rolled_back"


def test_fulfill_session_records_the_session_as_succeeded_and_the_chain_goes_on(
        machine, provider):
    machine.send(Init(request(hold="capture")))
    machine.send(Timeout())
    machine.send(capture())
    provider.script(f"{PLAN}.captured", SessionResult("failed", failure_code="lost"))
    with pytest.raises(ProviderSessionFailed):
        machine.send(Timeout())

    result = machine.send(repair("fulfill_session", trx_id="trx-7"))
    assert event_types(result) == ["repaired", "session_finished"]
    machine.run_timers()

    assert machine.state.status.status == "captured"
    assert machine.state.trx_id == "trx-7"


def test_resume_records_who_and_why_and_reruns_the_current_step(machine, limiter):
    machine.send(Init(request()))
    limiter.fail("hold_batch", ResourceUnavailable("down"))
    with pytest.raises(ResourceUnavailable):
        machine.send(Timeout())

    result = machine.send(repair("resume", operator="ops", reason="limiter is back"))

    assert result.events == [{"type": "repaired", "v": 1, "action": "resume",
                              "operator": "ops", "reason": "limiter is back"}]
    assert result.response == "resume" and result.action == Action.instant()
    machine.run_timers()
    assert machine.state.status.status == "captured"


def test_a_session_repair_outside_finalizing_session_is_refused(machine):
    machine.send(Init(request(hold="capture")))

    with pytest.raises(RepairNotApplicable):
        machine.send(repair("fulfill_session"))


@pytest.mark.parametrize("error, transient", [
    (ResourceUnavailable("refused"), True),
    (ResultUnknown("timeout"), True),
    (PeerUnavailable("503"), True),
    (ProviderUnavailable("429"), True),
    (ProviderSessionRetry("busy"), True),
    (ResultUnexpected("500"), False),
    (BusinessError("InvalidRequest"), False),
    (limiter_client.LimitNotFound(), False),
    (PeerRejected("400", status=400), False),
    (ProviderRejected("409", status=409), False),
    (PeerBadAnswer("garbage"), False),
    (ProviderSessionFailed("declined"), False),
    (InvalidHistory("bug"), False),
    (ValueError("bug"), False),
])
def test_which_failures_are_retried_on_a_timer(error, transient):
    assert is_transient(error) is transient
    assert NAMESPACE.is_transient(error) is transient


def test_the_namespace_names_every_step_as_its_task():
    assert NAMESPACE.name == "payments"
    assert NAMESPACE.steps == tuple(STEPS)
    assert machines.timeout_task_name("payments", "finalizing_session") == (
        "payments.finalizing_session")


def test_machine_ids_join_invoice_and_payment():
    assert machine_id("inv-1", "pay-1") == "inv-1.pay-1"
