"""Property tests: the cash flow `compute` posts exactly what an independent reference, written
with fractions over the JSON volumes, computes; and end to end the Accounter receives exactly
those amounts."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payments.cashflow import compute
from payments.errors import InvalidAmount
from payments.money import MAX_AMOUNT, Money
from payments.schemas import PostingBody
from tests.payments.conftest import CURRENCY, new_ids, payment_body, wait_payment

ROUNDINGS = ["round_half_away_from_zero", "round_half_towards_zero", None]


def reference_round(value: Fraction, rounding: str | None) -> int:
    """Nearest integer; a tie goes away from zero (the default) or towards zero."""
    magnitude = abs(value)
    whole = math.floor(magnitude)
    rest = magnitude - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2)
                                 and rounding in (None, "round_half_away_from_zero")):
        whole += 1
    return whole if value >= 0 else -whole


def reference_amount(volume: dict[str, Any], amount: int) -> int:
    if "fixed" in volume:
        return volume["fixed"]["amount"]
    if "share" in volume:
        share = volume["share"]
        return reference_round(Fraction(share["p"], share["q"]) * amount, share.get("rounding"))
    (function, inner), = volume["product"].items()
    amounts = [reference_amount(v, amount) for v in inner]
    return {"min_of": min, "max_of": max, "sum_of": sum}[function](amounts)


def _share(p: int, q: int, rounding: str | None) -> dict[str, Any]:
    share: dict[str, Any] = {"p": p, "q": q}
    if rounding is not None:
        share["rounding"] = rounding
    return {"share": share}


leaves = st.one_of(
    st.builds(lambda a: {"fixed": {"amount": a, "currency": CURRENCY}},
              st.integers(0, 10**12)),
    st.builds(_share, st.integers(0, 1000), st.integers(1, 1000), st.sampled_from(ROUNDINGS)),
)
volumes = st.recursive(
    leaves,
    lambda inner: st.builds(lambda f, vs: {"product": {f: vs}},
                            st.sampled_from(["min_of", "max_of", "sum_of"]),
                            st.lists(inner, min_size=1, max_size=4)),
    max_leaves=12,
)
costs = st.one_of(st.integers(0, 10**6), st.integers(0, MAX_AMOUNT))


def _posting(volume: dict[str, Any]) -> PostingBody:
    return PostingBody.model_validate({
        "source": {"account_id": 1, "type": "provider.settlement"},
        "destination": {"account_id": 2, "type": "merchant.settlement"},
        "volume": volume, "details": "property"})


@settings(max_examples=400, deadline=None)
@given(volume=volumes, cost=costs)
def test_compute_posts_what_the_fraction_reference_computes(volume, cost):
    template = (_posting(volume).to_domain(),)
    expected = reference_amount(volume, cost)
    if not 0 <= expected <= MAX_AMOUNT:
        with pytest.raises(InvalidAmount):
            compute(template, Money(cost, CURRENCY))
        return
    (posting,) = compute(template, Money(cost, CURRENCY))
    assert posting.volume == Money(expected, CURRENCY)


@settings(max_examples=300, deadline=None)
@given(p=st.integers(0, 10**6), q=st.integers(1, 10**6), amount=st.integers(0, 10**12))
def test_shares_round_half_away_by_default_and_towards_zero_on_request(p, q, amount):
    exact = Fraction(p, q) * amount
    for rounding in ROUNDINGS:
        (posting,) = compute((_posting(_share(p, q, rounding)).to_domain(),),
                             Money(amount, CURRENCY))
        assert posting.volume.amount == reference_round(exact, rounding)
        assert abs(posting.volume.amount - exact) <= Fraction(1, 2)


def test_ties_are_where_the_two_roundings_differ():
    (away,) = compute((_posting(_share(1, 2, None)).to_domain(),), Money(5, CURRENCY))
    (towards,) = compute((_posting(_share(1, 2, "round_half_towards_zero")).to_domain(),),
                         Money(5, CURRENCY))
    assert (away.volume.amount, towards.volume.amount) == (3, 2)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fee=volumes.filter(lambda v: "product" in v), cost=st.integers(1, 10**6))
def test_the_accounter_receives_exactly_the_reference_amounts(running_worker, peers, api, ledger,
                                                              fee, cost):
    """A registered payment whose fee posting is a generated product volume: the committed
    plan holds the amounts the reference computes."""
    expected = reference_amount(fee, cost)
    invoice_id, payment_id = new_ids()
    body = payment_body(ledger, invoice_id, payment_id, cost)
    body["cash_flow"][1]["volume"] = fee
    body["cash_flow"][0]["volume"] = _share(1, 1, None)
    response = api.post("/v1/payments/register", json=body)
    if not 0 <= expected <= MAX_AMOUNT:
        assert (response.status_code, response.json()["code"]) == (400, "invalid_amount")
        return
    assert response.status_code == 202, response.text
    wait_payment(api, invoice_id, payment_id, status="captured")
    plan = peers.state("accounter")["plans"][f"{invoice_id}.{payment_id}.1"]
    assert plan["state"] == "COMMIT"
    amounts = [p["amount"] for p in plan["batches"][0]["postings"]]
    assert amounts == [cost, expected, 15]
