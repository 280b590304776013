"""Properties of the pure cashback rules, over generated inputs: the calc never pays more than
the rate allows nor less than one precision step below it; universal processing's target
ignores what must not count; the charge decision never sends past its operation limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from cashback.charge import ChargePolicy, ChargeTarget, Done, Update, decide
from cashback.rates import ClassRate, OrderRates, calc
from cashback.universal import target_of
from clients.transactions import Invoice

# Per test, not a global profile: other suites keep theirs.
bounded = settings(max_examples=200, deadline=None)


def decimals(integer_digits: int, places: int) -> st.SearchStrategy[Decimal]:
    return st.integers(0, 10 ** (integer_digits + places) - 1).map(
        lambda n: Decimal(n).scaleb(-places))


amounts = st.integers(0, 6).flatmap(lambda places: decimals(15, places))
rate_values = st.integers(0, 12).flatmap(lambda places: decimals(2, places))


@bounded
@given(cleared=amounts, held=amounts, rate=rate_values, cap=st.none() | amounts,
       instant=st.booleans(), precision=st.integers(0, 3))
def test_calc_rounds_down_within_one_step_and_never_above_rate_or_cap(
        cleared, held, rate, cap, instant, precision):
    rates = OrderRates("c", {"c": ClassRate(rate, cap)})

    value = calc(rates, cleared=cleared, held=held, instant=instant, precision=precision)

    exact = (cleared + (held if instant else 0)) * rate
    if cap is not None:
        exact = min(exact, cap)
    step = Decimal(1).scaleb(-precision)
    assert value.as_tuple().exponent == -precision
    assert 0 <= value <= exact
    assert exact - value < step


def payments(types: list[str]) -> st.SearchStrategy[list[dict]]:
    item = st.fixed_dictionaries({
        "item_id": st.sampled_from(["ride", "tips", "cashback", "toll"]),
        "amount": decimals(6, 2).map(lambda d: format(d, "f"))})
    return st.lists(st.fixed_dictionaries({
        "payment_type": st.sampled_from(types), "items": st.lists(item, max_size=4)}),
        max_size=4)


def invoice(cleared: list[dict], held: list[dict]) -> Invoice:
    return Invoice.model_validate({"id": "o", "currency": "RUB", "status": "cleared",
                                   "cleared": cleared, "held": held,
                                   "cashback": {"status": "init", "version": 1}})


RATES = OrderRates("c", {"c": ClassRate(Decimal("0.1"), None)})
BLACKLIST = frozenset({"personal_wallet"})


@bounded
@given(cleared=payments(["card", "applepay", "personal_wallet"]),
       held=payments(["card", "personal_wallet"]), instant=st.booleans(),
       noise=payments(["personal_wallet"]), tips=decimals(6, 2))
def test_tips_blacklisted_types_and_held_without_instant_change_nothing(
        cleared, held, instant, noise, tips):
    base = target_of(invoice(cleared, held), RATES, blacklist=BLACKLIST, instant=instant)
    padded = [*cleared, *noise,
              {"payment_type": "card", "items": [{"item_id": "tips",
                                                  "amount": format(tips, "f")}]}]

    assert target_of(invoice(padded, held), RATES, blacklist=BLACKLIST,
                     instant=instant) == base
    assert set(base) == {"service", "user"} and min(base.values()) >= 0
    if not instant:
        assert target_of(invoice(cleared, []), RATES, blacklist=BLACKLIST,
                         instant=False) == base
    user = sum((Decimal(i["amount"]) for p in cleared if p["payment_type"] != "personal_wallet"
                for i in p["items"] if i["item_id"] == "cashback"), Decimal(0))
    if not instant:
        assert base["user"] == int(user)  # RUB cashback is whole units, rounded down


NOW = datetime(2026, 5, 1, tzinfo=UTC)
POLICY = ChargePolicy(max_operations=4, retry_min_delay_s=1, retry_max_delay_s=4,
                      poll_initial_s=1, poll_max_s=8, missing_invoice_limit=3)


@st.composite
def histories(draw) -> tuple[ChargeTarget, Invoice]:
    """An order and an invoice whose operations are what our charge would have sent."""
    manual = draw(st.integers(0, 3))
    order = ChargeTarget("o", 2, {"user": Decimal(draw(st.integers(0, 3)))}, manual=manual)
    ids = ["o/v1", "o/v2"] + [f"o/v2/retry/{n}" for n in range(1, 6)]
    ids += [f"o/v2/manual/{n}" for n in range(1, manual + 1)]
    sent = draw(st.lists(st.sampled_from(ids), unique=True, max_size=8))
    status = draw(st.sampled_from(["init", "in-progress", "success", "failed"]))
    rewarded = draw(st.integers(0, 3))
    return order, Invoice.model_validate({
        "id": "o", "currency": "RUB", "status": "cleared", "user_ip": "::1",
        "cashback": {"status": status, "version": 5,
                     "rewarded": [{"source": "user", "amount": str(rewarded)}],
                     "operations": [{"operation_id": op, "status": "failed",
                                     "created": (NOW - timedelta(hours=1)).isoformat()}
                                    for op in sent]}})


@bounded
@given(histories())
def test_the_decision_never_sends_past_the_limit_nor_an_id_the_invoice_has(history):
    order, inv = history

    decision = decide(order, inv, NOW, POLICY)

    operations = inv.cashback.operations
    if isinstance(decision, Update):
        assert decision.operation_id.startswith("o/v2")
        if inv.cashback.status == "failed":
            assert len(operations) < POLICY.max_operations + order.manual
        assert decision.reward == {"user": order.target["user"]}
    if isinstance(decision, Done):
        assert inv.cashback.status in ("init", "success")
        assert inv.cashback.rewarded[0].amount == order.target["user"]
    if isinstance(decision, Update) and decision.operation_id != "o/v2":
        # A retry or operator id is new to the invoice, or the run repeats after a crash.
        assert decision.operation_id not in {op.operation_id for op in operations}
