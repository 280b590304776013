"""Payments to drive through the steps: a request, its starting state, and a loop that runs
the steps the way the machine runner does (fold what a step returns, run the next one)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from payments import decisions
from payments.decisions import CaptureCommand
from payments.cashflow import CashFlowAccount, FixedVolume, PostingTemplate, Share, ShareVolume
from payments.events import Change
from payments.model import HoldFlow, PaymentRequest, Route, TransactionInfo, TurnoverLimit
from payments.money import Money
from payments.peers import Peers
from payments.state import PaymentState, fold
from payments.steps import STEPS, Step

NOW = datetime.now(UTC)
WINDOW_S = 30 * 86400
PROVIDER, MERCHANT, SYSTEM, EXTERNAL = 101, 102, 103, 104
# 3 % fee, rounded half towards zero, and a fixed 15 to the outside.
TEMPLATE = (
    PostingTemplate(CashFlowAccount(PROVIDER, "provider.settlement"),
                    CashFlowAccount(MERCHANT, "merchant.settlement"),
                    ShareVolume(Share(1, 1)), "payment amount"),
    PostingTemplate(CashFlowAccount(MERCHANT, "merchant.settlement"),
                    CashFlowAccount(SYSTEM, "system.settlement"),
                    ShareVolume(Share(3, 100, "round_half_towards_zero")), "system fee"),
    PostingTemplate(CashFlowAccount(SYSTEM, "system.settlement"),
                    CashFlowAccount(EXTERNAL, "external.outcome"),
                    FixedVolume(Money(15, "RUB")), "acquiring fee"),
)
PLAN = "inv-1.pay-1.1"
OPERATION = "limiter.batch-request.7.42.inv-1.pay-1.1"


def balances_after_capture(cost: int) -> dict[int, int]:
    fee = (3 * cost + 49) // 100
    return {PROVIDER: -cost, MERCHANT: cost - fee, SYSTEM: fee - 15, EXTERNAL: 15}


def request(*, hold: str | None = None, limits: Sequence[TurnoverLimit] = (
        TurnoverLimit("daily", 1),), cost: int = 1000) -> PaymentRequest:
    """A payment of `cost` RUB; `hold` is its on_hold_expiration (None: registered)."""
    flow = None if hold is None else HoldFlow(hold, NOW + timedelta(days=1))
    return PaymentRequest(
        invoice_id="inv-1", payment_id="pay-1", party_id="party", shop_id="shop",
        cost=Money(cost, "RUB"), route=Route(7, 42), cash_flow=TEMPLATE,
        turnover_limits=tuple(limits), transaction_info=TransactionInfo("trx-0", {"rrn": "42"}),
        flow=flow)


def started(req: PaymentRequest) -> PaymentState:
    return fold(decisions.start(req, NOW, WINDOW_S))


def then(state: PaymentState, changes: Sequence[Change]) -> PaymentState:
    return fold(changes, state)


def run_step(state: PaymentState, peers: Peers) -> tuple[Step, PaymentState]:
    """The step of the state's activity, and the state its changes lead to."""
    step = STEPS[state.activity](state, peers)
    return step, fold(step.changes, state)


def run_until_rest(state: PaymentState, peers: Peers, *, limit: int = 20) -> PaymentState:
    """Run steps while the last one asks for an instant timer (as the runner would)."""
    for _ in range(limit):
        step, state = run_step(state, peers)
        if step.action.kind != "set" or step.action.at is not None or step.action.after_s:
            return state
    raise AssertionError(f"no rest after {limit} steps: {state.activity}")


def types(changes: Sequence[Change]) -> list[str]:
    return [change.TYPE for change in changes]


def held(peers: Peers, hold: str = "cancel", **kwargs) -> PaymentState:
    """A hold payment after its first step: held, waiting for a capture or its expiry."""
    state = started(request(hold=hold, **kwargs))
    _step, state = run_step(state, peers)
    assert state.activity == "flow_waiting"
    return state


def partially_captured(peers: Peers, amount: int = 600) -> PaymentState:
    """A held payment the shop captured in part: the next step updates the accounter."""
    state = held(peers, "cancel")
    changes = decisions.capture(state, CaptureCommand("partial", Money(amount, "RUB")))
    state = then(state, changes)
    assert state.activity == "updating_accounter"
    return state
