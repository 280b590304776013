"""Properties of the cash flow computation (payments/cashflow.py), against an exact reference.

The reference works in `fractions.Fraction`: a share p/q of an amount is the exact rational
p * amount / q, rounded by the posting's rounding method as the contract defines it. The code
must agree with it for every amount up to 2**63 - 1 and refuse with a typed error what does not
fit. To cover a new volume kind or rounding method, add its reference below (`ROUNDINGS`,
`reference_volume`) and a strategy for it to `volumes`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments.cashflow import (
    ACCOUNT_TYPES,
    ROUNDING_METHODS,
    CashFlowAccount,
    FinalPosting,
    FixedVolume,
    PostingTemplate,
    Share,
    ShareVolume,
    compute,
    divide_round_half_towards_zero,
    revert,
    to_batch,
)
from foundation.errors import TypedError
from payments.errors import InvalidAmount, InvalidShare
from payments.money import MAX_AMOUNT, Money

# --- the reference ----------------------------------------------------------------------------


def half_towards_zero(exact: Fraction) -> int:
    """The nearest integer; a tie (x.5) goes to the integer nearer zero."""
    low = math.floor(exact)
    above = exact - low
    if above != Fraction(1, 2):
        return low + 1 if above > Fraction(1, 2) else low
    return low if exact > 0 else low + 1


def half_away_from_zero(exact: Fraction) -> int:
    """The nearest integer; a tie (x.5) goes to the integer farther from zero."""
    low = math.floor(exact)
    above = exact - low
    if above != Fraction(1, 2):
        return low + 1 if above > Fraction(1, 2) else low
    return low + 1 if exact > 0 else low


# Every rounding method the code knows must have a reference here (test below says so).
ROUNDINGS: dict[str, Callable[[Fraction], int]] = {
    "round_half_towards_zero": half_towards_zero,
    "round_half_away_from_zero": half_away_from_zero,
}


def reference_volume(volume: FixedVolume | ShareVolume, cost: Money) -> int:
    if isinstance(volume, FixedVolume):
        return volume.fixed.amount
    if isinstance(volume, ShareVolume):
        share = volume.share
        return ROUNDINGS[share.rounding](Fraction(share.p * cost.amount, share.q))
    raise NotImplementedError(f"no reference for {volume!r} yet: add one")


# --- strategies -------------------------------------------------------------------------------

CURRENCY = "RUB"
amounts = st.integers(0, MAX_AMOUNT)
small_amounts = st.integers(0, 10**6)
roundings = st.sampled_from(sorted(ROUNDING_METHODS))
# Shares up to 1 (every real fee is one), and any share, which may overflow 64 bits.
fractions_of_one = st.integers(1, 10**6).flatmap(
    lambda q: st.builds(Share, st.integers(0, q), st.just(q), roundings))
shares = fractions_of_one | st.builds(Share, st.integers(0, 10**12), st.integers(1, 10**12),
                                      roundings)
volumes = st.one_of(
    st.builds(FixedVolume, st.builds(Money, small_amounts, st.just(CURRENCY))),
    st.builds(ShareVolume, shares),
)
account_types = st.sampled_from(sorted(ACCOUNT_TYPES))


@st.composite
def templates(draw: st.DrawFn, max_size: int = 6) -> tuple[PostingTemplate, ...]:
    postings = []
    for _ in range(draw(st.integers(1, max_size))):
        source, destination = draw(st.lists(st.integers(1, 8), min_size=2, max_size=2,
                                            unique=True))
        postings.append(PostingTemplate(
            CashFlowAccount(source, draw(account_types)),
            CashFlowAccount(destination, draw(account_types)),
            draw(volumes),
            draw(st.none() | st.text(max_size=10))))
    return tuple(postings)


def net(cash_flow: tuple[FinalPosting, ...]) -> Counter[int]:
    """What each account gains (positive) or gives (negative) over the postings."""
    moved: Counter[int] = Counter()
    for posting in cash_flow:
        moved[posting.source.account_id] -= posting.volume.amount
        moved[posting.destination.account_id] += posting.volume.amount
    return moved


# --- rounding ---------------------------------------------------------------------------------


def test_every_rounding_method_the_code_knows_has_a_reference():
    assert ROUNDING_METHODS <= ROUNDINGS.keys()


@given(st.integers(-(2**80), 2**80), st.integers(1, 2**70) | st.integers(-(2**70), -1))
def test_division_is_the_exact_quotient_rounded_half_towards_zero(numerator, denominator):
    result = divide_round_half_towards_zero(numerator, denominator)

    assert result == half_towards_zero(Fraction(numerator, denominator))
    assert abs(Fraction(numerator, denominator) - result) <= Fraction(1, 2)


@given(st.integers(0, 10**9), st.integers(1, 10**9))
def test_a_tie_goes_towards_zero_on_both_sides(whole, denominator):
    # (2w + 1) / 2 is exactly w + 0.5
    assert divide_round_half_towards_zero(2 * whole + 1, 2) == whole
    assert divide_round_half_towards_zero(-(2 * whole + 1), 2) == -whole


# --- shares -----------------------------------------------------------------------------------


@given(shares, amounts)
def test_a_share_is_the_reference_or_a_typed_refusal_when_it_leaves_64_bits(share, amount):
    exact = reference_volume(ShareVolume(share), Money(amount, CURRENCY))
    try:
        volume = compute((PostingTemplate(CashFlowAccount(1, "provider.settlement"),
                                          CashFlowAccount(2, "merchant.settlement"),
                                          ShareVolume(share)),), Money(amount, CURRENCY))
    except InvalidAmount:
        assert exact > MAX_AMOUNT
        return
    assert volume[0].volume == Money(exact, CURRENCY)


@given(st.integers(1, 10**6), st.integers(0, 10**9), roundings)
def test_a_share_landing_on_a_half_rounds_as_its_method_says(k, m, rounding):
    # (1 / 2k) of k(2m + 1) is exactly m + 1/2
    share = Share(1, 2 * k, rounding)
    assert share.of(k * (2 * m + 1)) == ROUNDINGS[rounding](Fraction(2 * m + 1, 2))


@given(fractions_of_one, amounts)
def test_a_share_of_at_most_one_never_exceeds_the_amount(share, amount):
    assert 0 <= share.of(amount) <= amount


@given(st.integers(1, 10**9), roundings, amounts)
def test_the_whole_share_is_the_whole_amount(q, rounding, amount):
    assert Share(q, q, rounding).of(amount) == amount
    assert Share(0, q, rounding).of(amount) == 0


@given(shares, small_amounts, small_amounts)
def test_a_share_grows_with_the_amount_and_splitting_costs_at_most_one_unit(share, a, b):
    assert share.of(min(a, b)) <= share.of(max(a, b))
    # Two captures' shares may differ from the share of their sum only by rounding.
    assert abs(share.of(a) + share.of(b) - share.of(a + b)) <= 1


@given(st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6), st.text(max_size=30))
def test_a_share_is_built_valid_or_refused_with_invalid_share(p, q, rounding):
    try:
        share = Share(p, q, rounding)
    except InvalidShare:
        assert p < 0 or q <= 0 or rounding not in ROUNDING_METHODS
        return
    assert p >= 0 and q > 0 and share.rounding in ROUNDING_METHODS


# --- whole cash flows -------------------------------------------------------------------------


@given(templates(), amounts)
def test_compute_matches_the_reference_posting_by_posting(template, amount):
    cost = Money(amount, CURRENCY)
    expected = [reference_volume(posting.volume, cost) for posting in template]
    if any(volume > MAX_AMOUNT for volume in expected):
        with pytest.raises(InvalidAmount):
            compute(template, cost)
        return

    final = compute(template, cost)

    assert [posting.volume for posting in final] == [Money(v, CURRENCY) for v in expected]
    assert [(p.source, p.destination, p.details) for p in final] == [
        (t.source, t.destination, t.details) for t in template]


@given(templates(), small_amounts)
def test_a_cash_flow_moves_money_without_creating_any(template, amount):
    final = compute(template, Money(amount, CURRENCY))

    moved = net(final)
    assert sum(moved.values()) == 0
    assert sum(v for v in moved.values() if v > 0) <= sum(p.volume.amount for p in final)


@given(templates(), small_amounts)
def test_a_cash_flow_and_its_revert_leave_every_account_as_it_was(template, amount):
    final = compute(template, Money(amount, CURRENCY))
    undone = revert(final)

    both = net(final)
    both.update(net(undone))
    assert all(v == 0 for v in both.values())
    assert [(p.source, p.destination, p.volume) for p in revert(undone)] == [
        (p.source, p.destination, p.volume) for p in final]


@given(templates(), small_amounts, st.integers(0, 2**31))
def test_a_batch_carries_each_posting_as_it_is(template, amount, batch_id):
    final = compute(template, Money(amount, CURRENCY))
    batch = to_batch(batch_id, final)

    assert batch.id == batch_id
    assert [(p.from_id, p.to_id, p.amount, p.currency, p.description) for p in batch.postings] \
        == [(p.source.account_id, p.destination.account_id, p.volume.amount,
             p.volume.currency, p.details or "") for p in final]


@given(st.integers(-(2**70), 2**70), st.text(max_size=30))
def test_an_account_is_built_valid_or_refused_with_a_typed_error(account_id, account_type):
    try:
        account = CashFlowAccount(account_id, account_type)
    except TypedError as refused:
        assert refused.is_answer, refused
        assert account_type not in ACCOUNT_TYPES or not -(2**63) <= account_id < 2**63
        return
    assert account.type in ACCOUNT_TYPES
