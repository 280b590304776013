"""Event paging (`?after=&limit=`) and the operators' machine list (`GET /v1/machines`)."""

from __future__ import annotations

import pytest

from tests.payments.conftest import events, new_ids, payment_body, wait_payment


@pytest.fixture
def captured(running_worker, peers, api, ledger) -> tuple[str, str]:
    ids = new_ids()
    api.post("/v1/payments/register", json=payment_body(ledger, *ids, 500))
    wait_payment(api, *ids, status="captured")
    return ids


def _page(api, ids, **params):
    response = api.get(f"/v1/payments/{ids[0]}/{ids[1]}/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_event_pages_join_up_to_the_whole_history(api, captured):
    whole = events(api, *captured)
    count = len(whole)
    assert count == 10 and [e["id"] for e in whole] == list(range(1, count + 1))
    for size in (1, 3, count, 1000):
        pages, after = [], 0
        while True:
            page = _page(api, captured, after=after, limit=size)
            if not page:
                break
            assert len(page) <= size
            pages += page
            after = page[-1]["id"]
        assert pages == whole, f"pages of {size}"
    assert _page(api, captured, after=4, limit=3) == whole[4:7]
    assert _page(api, captured, after=count) == []
    assert _page(api, captured, after=2**63 - 1) == []


@pytest.mark.parametrize(("params", "status"), [
    ({"limit": 0}, 400), ({"limit": 1001}, 400), ({"limit": -1}, 400),
    ({"after": -1}, 400), ({"after": 2**63}, 400), ({"limit": "many"}, 422),
    ({"after": "x"}, 422),
])
def test_bad_event_paging_is_refused(api, captured, params, status):
    response = api.get(f"/v1/payments/{captured[0]}/{captured[1]}/events", params=params)
    assert response.status_code == status, response.text
    assert response.json()["code"] and response.json()["message"]


def test_events_of_an_unknown_payment_are_404(api, database):
    response = api.get("/v1/payments/nope/1/events", params={"after": 0, "limit": 5})
    assert (response.status_code, response.json()["code"]) == (404, "payment_not_found")


def test_the_machine_list_pages_by_cursor_without_gaps_or_repeats(running_worker, peers, api,
                                                                  ledger):
    made = set()
    for _ in range(5):
        ids = new_ids()
        api.post("/v1/payments/register", json=payment_body(ledger, *ids, 100))
        made.add(f"{ids[0]}.{ids[1]}")
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        params = {"namespace": "payments", "limit": 2}
        if after is not None:
            params["after"] = after
        response = api.get("/v1/machines", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["machines"]) <= 2
        for item in page["machines"]:
            assert item["namespace"] == "payments"
            assert set(item) == {"namespace", "id", "status", "error", "updated_at"}
            seen.append((item["namespace"], item["id"]))
        after = page["next"]
        if after is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)), "ordered, no repeats"
    assert made <= {machine_id for _, machine_id in seen}
    whole = api.get("/v1/machines", params={"namespace": "payments", "limit": 1000}).json()
    assert [(m["namespace"], m["id"]) for m in whole["machines"]] == seen
    assert whole["next"] is None


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 1001}, {"status": "sleeping"}, {"after": "not-a-cursor"},
    {"after": "WyJhIl0="}, {"namespace": "pay\x00ments"},
])
def test_bad_machine_list_queries_are_400(api, database, params):
    response = api.get("/v1/machines", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_query"


def test_the_machine_list_needs_the_token(database):
    from fastapi.testclient import TestClient

    from celgate.api import create_app

    with TestClient(create_app()) as anonymous:
        assert anonymous.get("/v1/machines").status_code == 401
