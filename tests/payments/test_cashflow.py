"""Cash flow computation: integer shares rounded half away from or towards zero, fixed and
product volumes, reverts."""

from __future__ import annotations

import pytest

from clients.accounter import Posting
from payments.cashflow import (
    CashFlowAccount,
    FixedVolume,
    PostingTemplate,
    Share,
    ShareVolume,
    check_template,
    compute,
    divide_round_half_towards_zero,
    revert,
    to_batch,
)
from payments.errors import InvalidCashFlow, InvalidShare, UnknownAccountType
from payments.money import Money

PROVIDER = CashFlowAccount(1, "provider.settlement")
MERCHANT = CashFlowAccount(2, "merchant.settlement")
SYSTEM = CashFlowAccount(3, "system.settlement")
EXTERNAL = CashFlowAccount(4, "external.outcome")

TOWARDS = "round_half_towards_zero"
TEMPLATE = (
    PostingTemplate(PROVIDER, MERCHANT, ShareVolume(Share(1, 1, TOWARDS)), "payment amount"),
    PostingTemplate(MERCHANT, SYSTEM, ShareVolume(Share(3, 100, TOWARDS)), "system fee"),
    PostingTemplate(SYSTEM, EXTERNAL, FixedVolume(Money(15, "RUB")), "acquiring fee"),
)


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (5, 2, 2),      # 2.5: the tie goes towards zero
        (7, 2, 3),      # 3.5 -> 3
        (-5, 2, -2),    # -2.5 -> -2, towards zero
        (11, 4, 3),     # 2.75 -> 3
        (9, 4, 2),      # 2.25 -> 2
        (-11, 4, -3),
        (0, 7, 0),
        (10**30 + 1, 2, 5 * 10**29),  # exact far beyond float precision
    ],
)
def test_division_rounds_to_nearest_with_ties_towards_zero(numerator, denominator, expected):
    assert divide_round_half_towards_zero(numerator, denominator) == expected


def test_compute_applies_shares_and_fixed_volumes_to_the_cost():
    final = compute(TEMPLATE, Money(1000, "RUB"))
    assert [p.volume for p in final] == [Money(1000, "RUB"), Money(30, "RUB"), Money(15, "RUB")]
    assert [(p.source, p.destination, p.details) for p in final] == [
        (t.source, t.destination, t.details) for t in TEMPLATE]


def test_compute_for_a_partial_cost_rounds_each_share_half_towards_zero():
    # 3 % of 650 = 19.5 -> 19; the fixed fee does not scale with the cost.
    final = compute(TEMPLATE, Money(650, "RUB"))
    assert [p.volume.amount for p in final] == [650, 19, 15]
    assert all(isinstance(p.volume.amount, int) for p in final)


def test_compute_of_a_tiny_cost_can_round_a_share_to_zero():
    assert [p.volume.amount for p in compute(TEMPLATE, Money(16, "RUB"))] == [16, 0, 15]


def test_revert_swaps_accounts_and_wraps_details():
    final = compute(TEMPLATE, Money(1000, "RUB"))
    reverted = revert(final)
    assert [(p.source, p.destination) for p in reverted] == [
        (p.destination, p.source) for p in final]
    assert [p.volume for p in reverted] == [p.volume for p in final]
    assert [p.details for p in reverted] == [
        "revert(payment amount)", "revert(system fee)", "revert(acquiring fee)"]


def test_revert_keeps_absent_details_absent():
    posting = PostingTemplate(PROVIDER, MERCHANT, ShareVolume(Share(1, 1)))
    assert revert(compute((posting,), Money(5, "RUB")))[0].details is None


def test_to_batch_renders_accounter_postings_in_order():
    batch = to_batch(1, compute(TEMPLATE, Money(1000, "RUB")))
    assert batch.id == 1
    assert batch.postings == (
        Posting(1, 2, 1000, "RUB", "payment amount"),
        Posting(2, 3, 30, "RUB", "system fee"),
        Posting(3, 4, 15, "RUB", "acquiring fee"),
    )


def test_a_template_must_not_be_empty_nor_mix_currencies():
    with pytest.raises(InvalidCashFlow):
        check_template((), "RUB")
    with pytest.raises(InvalidCashFlow):
        check_template(TEMPLATE, "USD")  # the fixed fee is in RUB


@pytest.mark.parametrize(("p", "q", "rounding"), [(1, 0, "round_half_towards_zero"),
                                                   (-1, 2, "round_half_towards_zero"),
                                                   (1, 2, "round_half_up")])
def test_bad_shares_are_refused(p, q, rounding):
    with pytest.raises(InvalidShare):
        Share(p, q, rounding)


def test_unknown_account_types_and_self_postings_are_refused():
    with pytest.raises(UnknownAccountType):
        CashFlowAccount(1, "merchant.wallet")
    with pytest.raises(InvalidCashFlow):
        PostingTemplate(PROVIDER, PROVIDER, ShareVolume(Share(1, 1)))
