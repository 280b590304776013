"""Readiness and a lost database, against a real API process pointed at closed ports."""

from __future__ import annotations

import os

import pytest
import requests

from tests.operations.conftest import closed_port_url

AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture(scope="module")
def no_database(start_api, database) -> str:
    url = closed_port_url("postgresql+psycopg2") + "/celgate"
    return start_api(DATABASE_URL=url.replace("://", "://postgres@"))


def test_ready_says_ok_for_each_dependency(start_api, database, broker):
    base = start_api()
    response = requests.get(f"{base}/health/ready", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_ready_is_503_and_names_the_database_when_it_is_closed(no_database):
    response = requests.get(f"{no_database}/health/ready", timeout=10)
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["checks"] == {"database": "down", "broker": "ok"}
    assert body["message"].startswith("database:")
    # Liveness is about the process, which serves.
    assert requests.get(f"{no_database}/health", timeout=10).json() == {"status": "ok"}


def test_ready_is_503_and_names_the_broker_when_it_is_closed(start_api, database):
    base = start_api(BROKER_URL=closed_port_url("redis") + "/0")
    response = requests.get(f"{base}/health/ready", timeout=10)
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "down"}


def test_ready_answers_in_bounded_time_when_the_database_host_never_answers(start_api,
                                                                              database):
    # A TEST-NET-1 address (RFC 5737): connecting hangs or fails, it never succeeds.
    base = start_api(DATABASE_URL="postgresql+psycopg2://postgres@192.0.2.1:5432/celgate")
    response = requests.get(f"{base}/health/ready", timeout=8)  # the check waits 1 s
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "down"


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/v1/payments/inv-1/1", None),
    ("GET", "/v1/payments/inv-1/1/events", None),
    ("POST", "/v1/payments/inv-1/1/cancel", {"reason": "x"}),
    ("GET", "/v1/cashback/eats/order-1", None),
    ("GET", "/metrics", None),
])
def test_any_route_answers_503_database_unavailable_as_json(no_database, method, path, body):
    response = requests.request(method, f"{no_database}{path}", json=body, headers=AUTH,
                                timeout=15)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["code"] == "database_unavailable"
    assert set(response.json()) == {"code", "message"}


def test_a_bad_request_is_still_a_schema_error_without_the_database(no_database):
    response = requests.post(f"{no_database}/v1/payments/register", data=b"{", headers={
        **AUTH, "Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_a_worker_does_not_report_ready_without_the_database(tmp_path, database):
    from sandbox.processes import worker as worker_process
    from tests.operations.conftest import closed_port_url as closed

    url = closed("postgresql+psycopg2").replace("://", "://postgres@") + "/celgate"
    process = worker_process(tmp_path / "worker.log", name="no-db",
                             env={**os.environ, "DATABASE_URL": url})
    with pytest.raises(RuntimeError, match="not ready in 8"):
        process.start(timeout=8)
    try:
        log = process.log_tail(200)
        assert "database unavailable, worker waits before it reports ready" in log
        assert " ready." not in log
    finally:
        process.kill()
