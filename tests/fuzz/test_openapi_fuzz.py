"""The HTTP API fuzzed from its own OpenAPI document (schemathesis), against the real app and
the test slot's PostgreSQL.

For every route schemathesis draws valid and invalid requests (wrong types, missing fields,
odd text, huge numbers); the app must never answer 5xx, and every 4xx body must be exactly
`{code, message}` JSON (docs/contract.md). Requests carry the bearer token, and callback requests a
correct signature, so the fuzz reaches the body handling behind the authentication.

The number of examples per route follows the hypothesis profile: short in `make test`, long in
`make fuzz` (HYPOTHESIS_PROFILE=fuzz), which also runs schemathesis' coverage phase.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import settings

from cashback.settings import get_settings as cashback_settings
from celgate.api import create_app
from celgate.settings import get_settings
from tests.fuzz.conftest import LONG

APP = create_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(max_examples=settings().max_examples)
if not LONG:
    # The coverage phase (every boundary value of every field) takes minutes: long runs only.
    schema.config.phases.update(phases=["examples", "fuzzing"])

SIGNED = {"/v1/wallet/balance-callback"}


@pytest.fixture(scope="module")
def client(database: str) -> Iterator[TestClient]:
    # Server exceptions stay in the app: an unhandled one is answered 500, which fails below.
    with TestClient(APP, raise_server_exceptions=False) as client:
        yield client


def raw_request(case: schemathesis.Case) -> dict[str, Any]:
    """The case as one request with its body as the exact bytes sent (the callback's
    signature is over those bytes)."""
    sent = case.as_transport_kwargs()
    headers = {k: v for k, v in sent.get("headers", {}).items() if k.lower() != "authorization"}
    headers["Authorization"] = f"Bearer {get_settings().api_token}"
    if "json" in sent:
        content = json.dumps(sent["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    else:
        content = sent.get("content", sent.get("data"))
        if isinstance(content, str):
            content = content.encode()
    if case.operation.path in SIGNED:
        secret = cashback_settings().billing_callback_secret.encode()
        headers["X-Signature"] = hmac.new(secret, content or b"", hashlib.sha256).hexdigest()
    return {"method": sent["method"], "url": sent["url"], "params": sent.get("params"),
            "headers": headers, "content": content}


@schema.parametrize()
def test_no_request_gets_a_5xx_and_every_error_is_code_and_message(case, client):
    request = raw_request(case)
    response = client.request(**request)
    shown = f"{request['method']} {request['url']} {request['content']!r:.2000}"

    assert response.status_code < 500, f"{response.status_code} for {shown}: {response.text}"
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), shown
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"code", "message"}, (shown, body)
        assert isinstance(body["code"], str) and body["code"], (shown, body)
        assert isinstance(body["message"], str), (shown, body)
