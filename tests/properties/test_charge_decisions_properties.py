"""Properties of the cashback charge decision `cashback.charge.decide` (pure).

Invoices are drawn as transactions could show them: any status, any cashback already rewarded
(the target, or something else, written with another scale), and operations sent in order (the
version's base id, then its retries; older versions' ids mixed in).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import assume, given
from hypothesis import strategies as st

from cashback.charge import (
    ZERO,
    ChargePolicy,
    ChargeTarget,
    Decision,
    Done,
    Fail,
    Update,
    Wait,
    decide,
)
from clients.transactions import Invoice

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SOURCES = ("user", "service", "promo", "partner")
STATUSES = ("init", "in-progress", "success", "failed")

def policies_allowing(least_operations: int) -> st.SearchStrategy[ChargePolicy]:
    return st.builds(
        ChargePolicy,
        max_operations=st.integers(least_operations, 12),
        retry_min_delay_s=st.floats(0.1, 60),
        retry_max_delay_s=st.floats(60, 172800),
        poll_initial_s=st.floats(0.05, 5),
        poll_max_s=st.floats(5, 600),
        missing_invoice_limit=st.integers(1, 10),
    )


policies = policies_allowing(1)
values = st.builds(lambda units, scale: Decimal(units).scaleb(-scale),
                   st.integers(0, 10**9), st.integers(0, 2))
targets = st.dictionaries(st.sampled_from(SOURCES), values, max_size=len(SOURCES))
orders = st.builds(ChargeTarget, st.just("o1"), st.integers(1, 5), targets)


def rescaled(amount: Decimal, places: int) -> Decimal:
    """The same number written with `places` more decimal places ("100" -> "100.00")."""
    return amount.quantize(Decimal(1).scaleb(min(amount.as_tuple().exponent, 0) - places))


@st.composite
def invoices(draw: st.DrawFn, order: ChargeTarget, status: str | None = None,
             user_ips: tuple[str | None, ...] = ("::1", "10.0.0.1", None, "")) -> Invoice:
    status = status or draw(st.sampled_from(STATUSES))
    if draw(st.booleans()):  # the invoice already shows the target (maybe written otherwise)
        rewarded = {s: rescaled(v, draw(st.integers(0, 2))) for s, v in order.target.items()
                    if v != 0 or draw(st.booleans())}
    else:
        rewarded = draw(targets)
    sent = draw(st.integers(0, 4))  # of this version: the base id, then retry 1, 2...
    ours = [order.operation_id, *(f"{order.operation_id}/retry/{n}" for n in range(1, sent))]
    older = [f"o1/v{v}" for v in range(1, order.version)]
    ids = draw(st.permutations(older)) + ours[:sent]
    start = NOW - timedelta(seconds=draw(st.integers(0, 10**6)))
    operations = [{"operation_id": op, "status": draw(st.sampled_from(["done", "failed"])),
                   "created": (start + timedelta(seconds=i)).isoformat()}
                  for i, op in enumerate(ids)]
    return Invoice.model_validate({
        "id": "o1", "currency": "RUB", "status": "cleared",
        "user_ip": draw(st.sampled_from(user_ips)),
        "cashback": {"status": status, "version": draw(st.integers(0, 2**31)),
                     "rewarded": [{"source": s, "amount": str(a)} for s, a in rewarded.items()],
                     "operations": operations},
    })


@st.composite
def situations(draw: st.DrawFn, status: str | None = None, policy=policies, **invoice_options):
    order = draw(orders)
    return (order, draw(invoices(order, status, **invoice_options)), draw(policy),
            draw(st.integers(0, 40)))


# Where an update is likely: a user ip, an invoice not in progress, any retry long due, and
# room for one more operation (an invoice carries at most 4 of this version). Without that
# room a quarter of the draws were updates, and Hypothesis's filter health check failed now
# and then on the tests that `assume` an update.
sendable = st.sampled_from(["init", "success", "failed"]).flatmap(
    lambda status: situations(status, policies_allowing(5),
                              user_ips=("::1",)))
LATER = NOW + timedelta(days=30)


def rewarded_of(invoice: Invoice) -> dict[str, Decimal]:
    return {reward.source: reward.amount for reward in invoice.cashback.rewarded}


def equal_to_target(order: ChargeTarget, invoice: Invoice) -> bool:
    rewarded = rewarded_of(invoice)
    return all(order.target.get(s, ZERO) == rewarded.get(s, ZERO)
               for s in order.target.keys() | rewarded.keys())


def run(situation, now: datetime = NOW) -> Decision:
    order, invoice, policy, polls = situation
    return decide(order, invoice, now, policy, polls=polls)


@given(sendable)
def test_an_update_always_sends_the_whole_target_never_a_delta(situation):
    order, invoice, _, _ = situation
    decision = run(situation, LATER)
    assume(isinstance(decision, Update))

    sources = order.target.keys() | rewarded_of(invoice).keys()
    assert decision.reward == {s: order.target.get(s, ZERO) for s in sources}
    assert decision.invoice_version == invoice.cashback.version


@given(sendable)
def test_an_update_goes_under_the_version_id_or_its_next_retry_never_a_used_one(situation):
    order, invoice, _, _ = situation
    decision = run(situation, LATER)
    assume(isinstance(decision, Update))

    used = {op.operation_id for op in invoice.cashback.operations}
    assert decision.operation_id not in used
    base = order.operation_id
    assert decision.operation_id == base or decision.operation_id.startswith(base + "/retry/")


@given(st.sampled_from(["init", "success"]).flatmap(lambda status: situations(status)))
def test_a_terminal_invoice_is_done_exactly_when_it_equals_the_target(situation):
    order, invoice, _, _ = situation
    assert (run(situation) == Done()) == equal_to_target(order, invoice)


@given(situations())
def test_done_only_for_a_terminal_invoice_that_shows_the_target(situation):
    order, invoice, _, _ = situation
    if run(situation) == Done():
        assert invoice.cashback.status in ("init", "success")
        assert equal_to_target(order, invoice)


@given(situations(status="in-progress"), st.integers(0, 40))
def test_an_invoice_in_progress_is_polled_later_never_touched(situation, more_polls):
    order, invoice, policy, polls = situation
    first = run(situation)
    later = decide(order, invoice, NOW, policy, polls=polls + more_polls)

    assert isinstance(first, Wait) and isinstance(later, Wait)
    assert min(policy.poll_initial_s, policy.poll_max_s) <= first.delay_s <= later.delay_s \
        <= policy.poll_max_s


@given(situations())
def test_without_a_user_ip_nothing_is_sent(situation):
    _, invoice, _, _ = situation
    assume(not invoice.user_ip)
    assert not isinstance(run(situation), Update)


@given(situations(status="failed"))
def test_a_failed_invoice_is_retried_exactly_when_its_wait_runs_out(situation):
    order, invoice, policy, polls = situation
    decision = run(situation)
    if isinstance(decision, Wait):
        # the due time stays put: halfway there, the wait is for the rest of it
        assert decision.delay_s > 0
        due = NOW + timedelta(seconds=decision.delay_s)
        assert not isinstance(decide(order, invoice, due, policy, polls=polls), Wait)
        halfway = decide(order, invoice, NOW + timedelta(seconds=decision.delay_s / 2), policy,
                         polls=polls)
        assert isinstance(halfway, Wait)
        assert abs((NOW + timedelta(seconds=decision.delay_s / 2)
                    + timedelta(seconds=halfway.delay_s)) - due) < timedelta(milliseconds=1)
    if len(invoice.cashback.operations) >= policy.max_operations:
        assert isinstance(decision, Fail) and decision.reason == "retries_exhausted"


@given(st.integers(1, 64), st.text(max_size=20), policies)
def test_a_retry_delay_stays_within_the_contract_bounds(retry, retry_id, policy):
    delay = policy.retry_delay(retry, retry_id)
    base = min(policy.retry_max_delay_s, policy.retry_min_delay_s * 2 ** (retry - 1))

    assert policy.retry_min_delay_s <= delay
    assert base * 0.5 <= delay <= base * 1.5
    assert delay == policy.retry_delay(retry, retry_id), "the same on every run"


@given(situations())
def test_the_decision_depends_only_on_its_inputs(situation):
    assert run(situation) == run(situation)
    assert isinstance(run(situation), Update | Wait | Done | Fail)
