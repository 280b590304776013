"""The composed HTTP app: authentication, error bodies, OpenAPI and metrics."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from celgate.api import check_auth_configured, create_app
from celgate.settings import ApiSettings


@pytest.fixture
def client(database: str) -> TestClient:
    return TestClient(create_app())


def test_health_needs_no_token(client):
    assert client.get("/health").json() == {"status": "ok"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_business_routes_refuse_a_missing_or_wrong_token(client, headers):
    response = client.get("/v1/payments/inv/1", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_unknown_routes_and_ids_answer_typed_errors(client):
    auth = {"Authorization": "Bearer test-token"}
    assert client.get("/v1/nowhere", headers=auth).json()["code"] == "not_found"
    response = client.get("/v1/payments/no-such-invoice/1", headers=auth)
    assert response.status_code == 404
    assert set(response.json()) == {"code", "message"}


def test_a_body_that_is_not_an_object_is_a_schema_error(client):
    response = client.post("/v1/payments/register", content=b"[1, 2]",
                           headers={"Authorization": "Bearer test-token",
                                    "Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_openapi_lists_the_contract_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/payments/register", "/v1/payments",
                 "/v1/payments/{invoice_id}/{payment_id}/capture",
                 "/v1/cashback/register", "/v1/cashback/{service}/{order_id}",
                 "/v1/wallet/balance-callback"):
        assert path in paths


def test_metrics_are_served_behind_the_token(client):
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers={"Authorization": "Bearer test-token"})
    assert response.status_code == 200
    assert "celgate_cashback_failed_orders" in response.text


def test_the_api_refuses_to_start_without_a_token_unless_auth_is_off():
    with pytest.raises(SystemExit):
        check_auth_configured(ApiSettings(api_token=None, api_auth="on"))
    check_auth_configured(ApiSettings(api_token=None, api_auth="off"))
