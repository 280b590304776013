"""Rates (`POST/GET /v1/cashback/rates`: first write wins) and the calc (`rates.calc`, one pure
function, and `POST /v1/cashback/calc`)."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from cashback.rates import ClassRate, OrderRates, calc
from tests.cashback.conftest import SERVICE


def rates_of(value: str, cap: str | None = None, tariff_class: str = "econom") -> OrderRates:
    return OrderRates(tariff_class, {"econom": ClassRate(
        Decimal(value), None if cap is None else Decimal(cap))})


# The worked examples and the edges around them.
@pytest.mark.parametrize(("rates", "cleared", "held", "instant", "precision", "expected"), [
    (rates_of("0.5"), "100", "0", False, 0, "50"),
    (rates_of("0.5", cap="40"), "100", "0", False, 0, "40"),
    (rates_of("0.5"), "503.1", "0", False, 0, "251"),  # RUB: whole units, rounded down
    (rates_of("0.5"), "503.1", "0", False, 1, "251.5"),  # BYN: tenths
    (rates_of("0.5"), "503.19", "0", False, 2, "251.59"),  # 251.595 down, not half-up
    (rates_of("0.5"), "100", "60", False, 0, "50"),  # held does not count...
    (rates_of("0.5"), "100", "60", True, 0, "80"),  # ...unless instant cashback is on
    (rates_of("0.5", cap="40.99"), "1000", "0", False, 0, "40"),  # the cap is rounded too
    (rates_of("0.1", tariff_class="business"), "1000", "0", False, 0, "0"),  # class has none
    (rates_of("0.1", tariff_class="business"), "1000", "0", False, 1, "0.0"),
    (rates_of("0"), "1000", "0", False, 0, "0"),
    # The largest inputs stay exact: no float, no context rounding.
    (rates_of("0.999999999999"), "999999999999999.99", "0", False, 2, "999999999998999.99"),
    (rates_of("999999"), "999999999999999", "999999999999999", True, 3,
     "1999997999999998000002.000"),
])
def test_calc_table(rates, cleared, held, instant, precision, expected):
    value = calc(rates, cleared=Decimal(cleared), held=Decimal(held), instant=instant,
                 precision=precision)

    assert format(value, "f") == expected


# --- the routes ------------------------------------------------------------------------------


def rates_body(order_id: str, tariff_class: str = "econom", **by_class: str) -> dict:
    return {"order_id": order_id, "service": SERVICE, "tariff_class": tariff_class,
            "by_classes": [{"class": c, "value": v} for c, v in
                           (by_class or {"econom": "0.1"}).items()]}


def test_the_first_write_wins_and_is_never_overwritten(api, new_order_id):
    first = api.post("/v1/cashback/rates", json={
        **rates_body(new_order_id), "by_classes": [
            {"class": "econom", "value": "0.1", "max_absolute_value": "300"},
            {"class": "business", "value": "0.2"}]})
    second = api.post("/v1/cashback/rates", json=rates_body(new_order_id, "business",
                                                            business="0.9"))

    assert (first.status_code, first.json()) == (200, {"created": True})
    assert (second.status_code, second.json()) == (200, {"created": False})
    shown = api.get(f"/v1/cashback/rates/{SERVICE}/{new_order_id}")
    assert shown.status_code == 200
    assert shown.json() == {"order_id": new_order_id, "service": SERVICE,
                            "tariff_class": "econom", "by_classes": [
                                {"class": "econom", "value": "0.1", "max_absolute_value": "300"},
                                {"class": "business", "value": "0.2"}]}


def test_two_concurrent_writers_create_once(api, new_order_id):
    barrier = threading.Barrier(2)
    answers: list[dict] = []

    def write(value: str) -> None:
        barrier.wait()
        answers.append(api.post("/v1/cashback/rates",
                                json=rates_body(new_order_id, econom=value)).json())

    threads = [threading.Thread(target=write, args=(v,)) for v in ("0.1", "0.2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(a["created"] for a in answers) == [False, True]
    stored = api.get(f"/v1/cashback/rates/{SERVICE}/{new_order_id}").json()
    assert stored["by_classes"][0]["value"] in ("0.1", "0.2")


def test_rates_of_an_order_without_any_are_404(api, new_order_id):
    response = api.get(f"/v1/cashback/rates/{SERVICE}/{new_order_id}")

    assert (response.status_code, response.json()["code"]) == (404, "rates_not_found")


@pytest.mark.parametrize(("change", "status", "code"), [
    ({"by_classes": [{"class": "a", "value": "-0.1"}]}, 400, "negative_value"),
    ({"by_classes": [{"class": "a", "value": "0.1"}, {"class": "a", "value": "0.2"}]}, 400,
     "duplicate_class"),
    ({"by_classes": [{"class": "a", "value": "1e3"}]}, 400, "invalid_value"),
    ({"by_classes": [{"class": "a", "value": "1000000"}]}, 400, "value_too_large"),
    ({"by_classes": [{"class": "a", "value": "0.1234567890123"}]}, 400, "too_precise"),
    ({"by_classes": [{"class": "a", "value": "0.1", "max_absolute_value": "x"}]}, 400,
     "invalid_value"),
    ({"by_classes": [{"class": "a\x00", "value": "0.1"}]}, 400, "invalid_text"),
    ({"tariff_class": "a\x00"}, 400, "invalid_text"),
    ({"by_classes": [{"class": "a", "value": 0.1}]}, 422, "invalid_request"),
    ({"tariff_class": None}, 422, "invalid_request"),
])
def test_bad_rates_are_refused_and_nothing_is_stored(api, new_order_id, change, status, code):
    response = api.post("/v1/cashback/rates", json={**rates_body(new_order_id), **change})

    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert api.get(f"/v1/cashback/rates/{SERVICE}/{new_order_id}").status_code == 404


def calc_body(order_id: str, cleared: str, held: str = "0", currency: str = "RUB") -> dict:
    return {"order_id": order_id, "service": SERVICE, "currency": currency, "held": held,
            "cleared": cleared}


def test_calc_without_rates_is_429_rates_not_ready(api, new_order_id):
    response = api.post("/v1/cashback/calc", json=calc_body(new_order_id, "100"))

    assert (response.status_code, response.json()["code"]) == (429, "rates_not_ready")


@pytest.mark.parametrize(("currency", "cleared", "held", "cap", "expected"), [
    ("RUB", "100", "0", None, "50"),
    ("RUB", "100", "0", "40", "40"),
    ("RUB", "503.1", "0", None, "251"),
    ("BYN", "503.1", "0", None, "251.5"),
    ("RUB", "10", "1000", None, "5"),  # held does not count without CASHBACK_INSTANT_ENABLED
    ("USD", "503.1", "0", None, "251.55"),  # not in CASHBACK_PRECISION: the ISO minor unit
])
def test_calc_answers_the_rate_of_the_orders_class(api, new_order_id, currency, cleared,
                                                   held, cap, expected):
    econom = {"class": "econom", "value": "0.5"}
    if cap is not None:
        econom["max_absolute_value"] = cap
    api.post("/v1/cashback/rates", json={**rates_body(new_order_id), "by_classes": [
        econom, {"class": "business", "value": "0.9"}]}).raise_for_status()

    response = api.post("/v1/cashback/calc", json=calc_body(new_order_id, cleared, held,
                                                            currency))

    assert (response.status_code, response.json()) == (200, {"cashback": expected})


def test_calc_is_0_for_a_class_without_a_rate(api, new_order_id):
    api.post("/v1/cashback/rates", json=rates_body(new_order_id, "vip", econom="0.5"))

    response = api.post("/v1/cashback/calc", json=calc_body(new_order_id, "100"))

    assert response.json() == {"cashback": "0"}


@pytest.mark.parametrize(("change", "status", "code"), [
    ({"cleared": "-1"}, 400, "negative_value"),
    ({"held": "abc"}, 400, "invalid_value"),
    ({"cleared": "1" * 16}, 400, "value_too_large"),
    ({"currency": "XXX"}, 400, "unknown_currency"),
    ({"order_id": "o\x00"}, 400, "invalid_text"),
    ({"cleared": 100}, 422, "invalid_request"),
])
def test_bad_calc_input_is_a_typed_answer(api, new_order_id, change, status, code):
    body = {**calc_body(new_order_id, "100"), **change}

    response = api.post("/v1/cashback/calc", json=body)

    assert (response.status_code, response.json()["code"]) == (status, code), response.text
