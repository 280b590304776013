"""The OpenAPI document: every route declares the errors it answers, with the error schema.

Declared statuses are checked against answers: each operation is sent requests that go wrong
in the generic ways (no token, a body that is not an object, unknown ids) and every status it
answers must be one it declares.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from celgate.api import create_app

AUTH = {"Authorization": "Bearer test-token"}
ERROR_REF = "#/components/schemas/ErrorBody"


@pytest.fixture(scope="module")
def client(database) -> TestClient:
    return TestClient(create_app(), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def spec(client) -> dict:
    return client.get("/openapi.json").json()


def operations(spec: dict):
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            yield path, method, op


def test_the_error_body_is_code_and_message(spec):
    schema = spec["components"]["schemas"]["ErrorBody"]
    assert set(schema["properties"]) == {"code", "message"}
    assert set(schema["required"]) == {"code", "message"}
    # FastAPI's own validation body is never sent, so it is not described either.
    assert "HTTPValidationError" not in str(spec)


def test_every_error_status_of_every_route_uses_the_error_body(spec):
    for path, method, op in operations(spec):
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
        if path not in ("/health", "/health/ready"):
            assert "503" in errors, (method, path)
        for status, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            if path == "/health/ready":
                assert schema["$ref"].endswith("/NotReady"), status
            else:
                assert schema == {"$ref": ERROR_REF}, (method, path, status)


def test_routes_that_take_input_declare_400_and_422_and_secured_ones_401(spec):
    for path, method, op in operations(spec):
        places = {p["in"] for p in op.get("parameters", [])}
        statuses = set(op["responses"])
        if "requestBody" in op or "query" in places:
            assert {"400", "422"} <= statuses, (method, path)
        if "path" in places:
            assert "404" in statuses, (method, path)
        if path.startswith("/v1/") or path == "/metrics":
            assert "401" in statuses, (method, path)


def test_operations_routes_are_documented(spec):
    assert spec["paths"]["/health"]["get"]["responses"]["200"]
    ready = spec["paths"]["/health/ready"]["get"]["responses"]
    assert {"200", "503"} <= set(ready)
    metrics = spec["paths"]["/metrics"]["get"]
    assert "text/plain" in str(metrics["responses"]["200"]["content"])
    assert metrics.get("security"), "metrics need the bearer token"
    assert spec["info"]["description"].strip()


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "no-such-id", path)


def test_generic_wrong_requests_answer_only_declared_statuses(client, spec):
    checked = 0
    for path, method, op in operations(spec):
        declared = {int(s) for s in op["responses"]}
        url = _concrete(path)
        attempts = [
            ({}, None),  # no token
            (AUTH, b"[1, 2]"),  # a body that is not an object
            (AUTH, b"{"),  # not JSON
            (AUTH, b"{}"),  # an empty object: required fields missing
            (AUTH, "\x00".encode()),
        ]
        for headers, body in attempts:
            response = client.request(method.upper(), url, content=body, headers={
                **headers, "Content-Type": "application/json"})
            if response.status_code >= 400:
                assert response.status_code in declared, (method, path, response.status_code,
                                                          response.text)
                assert set(response.json()) >= {"code", "message"}, response.text
            checked += 1
    assert checked >= 5 * 10


def test_docs_are_served_from_local_assets(client):
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources, page
        for source in sources:
            assert source.startswith("/"), f"{page} loads {source} from elsewhere"
            asset = client.get(source)
            assert asset.status_code == 200, source
            assert len(asset.content) > 1000 or source.endswith(".png"), source
