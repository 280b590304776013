"""Properties of folding a payment's history (payments/state.py).

The test keeps its own table of the allowed activity transitions (the state module's docstring,
docs/wire.md 4.1) and checks `fold` against it: any sequence of changes the table allows folds to
the activity the table predicts; any other sequence is refused with `InvalidHistory` and never
with another exception. Sequences are random walks through the table and near misses made from
them (a change dropped, repeated, swapped or put in the wrong place).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from payments import decisions
from payments.cashflow import (
    CashFlowAccount,
    FixedVolume,
    PostingTemplate,
    Share,
    ShareVolume,
    compute,
)
from payments.decisions import CaptureCommand
from payments.events import (
    CaptureStarted,
    CashFlowChanged,
    Change,
    InvalidHistory,
    LimitsCommitted,
    LimitsHeld,
    LimitsRolledBack,
    PaymentStarted,
    PlanBatchHeld,
    PlanCommitted,
    PlanRolledBack,
    RouteChanged,
    SessionFinished,
    SessionStarted,
    StatusChanged,
    from_json,
    to_json,
)
from payments.model import (
    PENDING,
    PROCESSED,
    CaptureData,
    Cart,
    CartLine,
    HoldFlow,
    PaymentRequest,
    Route,
    Status,
    Target,
    TurnoverLimit,
)
from foundation.errors import TypedError
from payments.money import Money
from payments.state import PaymentState, fold

NOW = datetime(2026, 5, 18, 12, 0, tzinfo=UTC)
COST = Money(1000, "RUB")
TEMPLATE = (
    PostingTemplate(CashFlowAccount(1, "provider.settlement"),
                    CashFlowAccount(2, "merchant.settlement"), ShareVolume(Share(1, 1)), "amount"),
    PostingTemplate(CashFlowAccount(2, "merchant.settlement"),
                    CashFlowAccount(3, "system.settlement"), ShareVolume(Share(3, 100)), "fee"),
    PostingTemplate(CashFlowAccount(3, "system.settlement"),
                    CashFlowAccount(4, "external.outcome"), FixedVolume(Money(7, "RUB")), None),
)

# --- the reference: allowed transitions, written out independently of payments/state.py ------

# (activity, change kind) -> the activity after it. A change kind is the change's TYPE, with
# the new status for status_changed.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("new", "payment_started"): "processing_accounter",
    ("processing_accounter", "route_changed"): "processing_accounter",
    ("processing_accounter", "cash_flow_changed"): "processing_accounter",
    ("processing_accounter", "status_changed:processed"): "flow_waiting",
    ("flow_waiting", "capture_started"): "processing_capture",
    ("processing_capture", "cash_flow_changed"): "updating_accounter",
    ("processing_capture", "session_started"): "finalizing_session",
    ("flow_waiting", "session_started"): "finalizing_session",
    ("updating_accounter", "session_started"): "finalizing_session",
    ("finalizing_session", "session_finished"): "finalizing_accounter",
    ("finalizing_accounter", "status_changed:captured"): "idle",
    ("finalizing_accounter", "status_changed:cancelled"): "idle",
}
# Records of peer effects (limits, plan batches): allowed in any activity, they never move it.
BOOKKEEPING = {"limits_held", "limits_committed", "limits_rolled_back", "plan_batch_held",
               "plan_committed", "plan_rolled_back"}


def kind(change: Change) -> str:
    if isinstance(change, StatusChanged):
        return f"status_changed:{change.status.status}"
    return change.TYPE


@dataclass(frozen=True)
class Model:
    activity: str = "new"
    target: Target | None = None  # of the last session started
    batches: frozenset[int] = frozenset()

    def after(self, change: Change) -> Model | None:
        """The model after `change`, or None when the change is not allowed here."""
        if change.TYPE in BOOKKEEPING:
            if isinstance(change, PlanBatchHeld):
                if change.batch_id in self.batches:
                    return None  # a batch is held once
                return replace(self, batches=self.batches | {change.batch_id})
            return self
        following = TRANSITIONS.get((self.activity, kind(change)))
        if following is None:
            return None
        if isinstance(change, SessionFinished) and change.target != self.target:
            return None  # a session finishes for the target it started with
        target = change.target if isinstance(change, SessionStarted) else self.target
        return replace(self, activity=following, target=target)


def expected(changes: list[Change]) -> Model | None:
    model: Model | None = Model()
    for change in changes:
        model = model.after(change)
        if model is None:
            return None
    return model


# --- the changes the walks draw from ---------------------------------------------------------

TARGETS = (
    Target("captured", "Timeout", COST),
    Target("captured", "part", Money(600, "RUB"),
           Cart((CartLine("tea", 3, Money(200, "RUB")),))),
    Target("cancelled", "changed my mind"),
    Target("cancelled", "Timeout"),
)
CASH_FLOW = compute(TEMPLATE, COST)


def started(hold: bool) -> PaymentStarted:
    flow = HoldFlow("cancel", NOW + timedelta(days=1)) if hold else None
    return PaymentStarted("inv-1", "1", "party", "shop", COST, flow, NOW, None, TEMPLATE)


CHANGES: tuple[Change, ...] = (
    started(hold=True),
    started(hold=False),
    RouteChanged(Route(10, 20), (TurnoverLimit("daily", 3),)),
    CashFlowChanged(CASH_FLOW),
    CashFlowChanged(compute(TEMPLATE, Money(600, "RUB"))),
    StatusChanged(PENDING),
    StatusChanged(PROCESSED),
    *(StatusChanged(Status.of_target(target)) for target in TARGETS),
    CaptureStarted(CaptureData("Timeout", COST)),
    *(SessionStarted(target) for target in TARGETS),
    *(SessionFinished(target, trx_id=trx) for target in TARGETS for trx in (None, "trx-9")),
    LimitsHeld("op"),
    LimitsCommitted("op", 1000),
    LimitsRolledBack("op"),
    *(PlanBatchHeld("inv-1.1.1", batch, CASH_FLOW) for batch in (1, 2, 3)),
    PlanCommitted("inv-1.1.1", (1,)),
    PlanRolledBack("inv-1.1.1", (1, 2)),
)
any_change = st.sampled_from(CHANGES)


@st.composite
def valid_walks(draw: st.DrawFn, max_size: int = 25) -> list[Change]:
    """A history the reference allows: each change drawn among those allowed at that point."""
    changes: list[Change] = []
    model = Model()
    for _ in range(draw(st.integers(0, max_size))):
        allowed = [c for c in CHANGES if model.after(c) is not None]
        if not allowed:
            break
        change = draw(st.sampled_from(allowed))
        changes.append(change)
        model = model.after(change)
    return changes


@st.composite
def near_misses(draw: st.DrawFn) -> list[Change]:
    """A valid walk with one edit: most are refused, some happen to stay valid."""
    changes = draw(valid_walks())
    at = draw(st.integers(0, len(changes)))
    edit = draw(st.sampled_from(["insert", "drop", "repeat", "swap"]))
    if edit == "insert" or not changes:
        return [*changes[:at], draw(any_change), *changes[at:]]
    at = min(at, len(changes) - 1)
    if edit == "drop":
        return changes[:at] + changes[at + 1:]
    if edit == "repeat":
        return [*changes[:at + 1], changes[at], *changes[at + 1:]]
    other = draw(st.integers(0, len(changes) - 1))
    changes = list(changes)
    changes[at], changes[other] = changes[other], changes[at]
    return changes


def step(state: PaymentState, change: Change) -> PaymentState | None:
    """The state after `change`, or None when the fold refused it with InvalidHistory (any
    other exception escapes and fails the test)."""
    try:
        return fold([change], state)
    except InvalidHistory:
        return None


# --- the properties ---------------------------------------------------------------------------


@given(valid_walks())
def test_every_allowed_history_folds_to_the_activity_the_table_predicts(changes):
    state = fold(changes)

    model = expected(changes)
    assert model is not None
    assert state.activity == model.activity
    assert len(state.sessions) == sum(isinstance(c, SessionStarted) for c in changes)
    assert state.target == model.target
    assert [b.batch_id for b in state.held_batches] == [
        c.batch_id for c in changes if isinstance(c, PlanBatchHeld)]
    statuses = [c.status for c in changes if isinstance(c, StatusChanged)]
    assert state.status == (statuses[-1] if statuses else PENDING)


@given(valid_walks())
def test_at_every_point_of_a_history_each_change_is_taken_or_refused_as_the_table_says(changes):
    state, model = PaymentState(), Model()
    for change in (*changes, None):
        for candidate in CHANGES:
            taken = step(state, candidate)
            allowed = model.after(candidate)
            assert (taken is None) == (allowed is None), (
                f"{kind(candidate)} after {kinds(changes)}: table "
                f"{'allows' if allowed else 'refuses'} it, fold "
                f"{'refuses' if taken is None else 'takes'} it")
            if taken is not None:
                assert taken.activity == allowed.activity
        if change is not None:
            state, model = fold([change], state), model.after(change)


@given(st.one_of(near_misses(), st.lists(any_change, max_size=20)))
def test_a_history_is_refused_with_invalid_history_exactly_where_the_table_refuses_it(changes):
    state, model = PaymentState(), Model()
    for at, change in enumerate(changes):
        state, model = step(state, change), model.after(change)
        assert (state is None) == (model is None), f"change {at} of {kinds(changes)}"
        if state is None:
            return
        assert state.activity == model.activity


@given(valid_walks(), st.data())
def test_folding_in_two_parts_is_folding_at_once(changes, data):
    cut = data.draw(st.integers(0, len(changes)))
    assert fold(changes[cut:], fold(changes[:cut])) == fold(changes)


@given(valid_walks())
def test_a_history_read_back_from_its_stored_json_folds_the_same(changes):
    stored = [from_json(to_json(change)) for change in changes]
    assert stored == changes
    assert fold(stored) == fold(changes)


# The commands' decisions, applied to a held payment, only ever make allowed histories.

def held(on_expiration: str = "cancel") -> list[Change]:
    request = PaymentRequest(
        invoice_id="inv-1", payment_id="1", party_id="party", shop_id="shop", cost=COST,
        route=Route(10, 20), cash_flow=TEMPLATE,
        flow=HoldFlow(on_expiration, NOW + timedelta(days=1)))
    return [*decisions.start(request, NOW, max_hold_lifetime_s=30 * 24 * 3600), LimitsHeld("op"),
            PlanBatchHeld("inv-1.1.1", 1, CASH_FLOW), StatusChanged(PROCESSED)]


carts = st.none() | st.builds(
    lambda lines: Cart(tuple(lines)),
    st.lists(st.builds(CartLine, st.sampled_from(["tea", "cake"]), st.integers(-1, 5),
                       st.builds(Money, st.integers(0, 1200), st.sampled_from(["RUB", "USD"]))),
             max_size=3))
captures = st.builds(
    CaptureCommand, st.sampled_from(["done", "part"]),
    st.none() | st.builds(Money, st.integers(0, 1500), st.sampled_from(["RUB", "USD"])), carts)


@given(captures)
def test_a_capture_is_refused_with_a_typed_error_or_folds_into_an_allowed_history(command):
    history = held()
    try:
        changes = decisions.capture(fold(history), command)
    except TypedError as refused:
        assert refused.is_answer, refused  # a refusal, not a broken history
        return
    assert expected([*history, *changes]) is not None, kinds(changes)
    state = fold(changes, fold(history))
    assert state.activity in ("finalizing_session", "updating_accounter")
    assert state.capture.cost.amount <= COST.amount


@given(st.sampled_from(["capture", "cancel"]), st.text(min_size=1, max_size=20))
def test_cancel_and_an_expired_hold_fold_into_an_allowed_history(on_expiration, reason):
    history = held(on_expiration)
    for changes in (decisions.cancel(fold(history), reason),
                    decisions.hold_expired(fold(history))):
        assert expected([*history, *changes]) is not None, kinds(changes)
        assert fold(changes, fold(history)).activity in ("finalizing_session",
                                                          "processing_capture")


def kinds(changes: list[Change]) -> list[str]:
    return [kind(change) for change in changes]


# A stored change this code cannot read is InvalidHistory as well (the machine fails with that
# code), whatever is wrong with it: unknown tag, a field missing or of another type, a bad value.
json_leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=8)


@st.composite
def damaged(draw: st.DrawFn) -> dict:
    body = to_json(draw(any_change))
    key = draw(st.sampled_from(sorted(body)))
    if draw(st.booleans()):
        del body[key]
    else:
        body[key] = draw(json_values)
    return body


@given(damaged() | json_values)
def test_a_stored_change_that_cannot_be_read_is_invalid_history(body):
    try:
        from_json(body)
    except InvalidHistory:
        pass  # any other exception fails the test
