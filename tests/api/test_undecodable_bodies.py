"""Bodies the JSON parser cannot use: each is a 422 schema error with a `{code, message}` body.

docs/contract.md counts a body that is not valid JSON, or not an object, as a schema error (422);
no body, however odd, may answer 500.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from fastapi.testclient import TestClient

from cashback.settings import get_settings
from celgate.api import create_app

# Every route that reads a JSON body. Path ids need not exist: the body is read first.
BODY_ROUTES = (
    "/v1/payments/register",
    "/v1/payments",
    "/v1/payments/inv-x/1/capture",
    "/v1/payments/inv-x/1/cancel",
    "/v1/payments/inv-x/1/repair",
    "/v1/cashback/register",
    "/v1/wallet/balance-callback",
)
CALLBACK = "/v1/wallet/balance-callback"
# The billing callback parses its raw body itself.
PARSED_BY_FASTAPI = tuple(r for r in BODY_ROUTES if r != CALLBACK)

NOT_UTF8 = {
    "latin-1 text in a string": '{"invoice_id": "caf\u00e9"}'.encode("latin-1"),
    "a lone continuation byte": b'{"invoice_id": "\x80"}',
    "an overlong encoding of '/'": b'{"invoice_id": "\xc0\xaf"}',
    "an encoded surrogate": b'{"invoice_id": "\xed\xa0\x80"}',
}
NOT_JSON = {
    "truncated object": b'{"invoice_id": ',
    "bare word": b"hello",
    "single quotes": b"{'a': 1}",
    "trailing comma": b'{"a": 1,}',
    "NaN": b'{"a": NaN',
}
NOT_AN_OBJECT = {"list": b"[1, 2]", "empty list": b"[]", "number": b"123",
                 "string": b'"text"', "true": b"true"}


@pytest.fixture(scope="module")
def client(database: str) -> TestClient:
    return TestClient(create_app(), raise_server_exceptions=False)


def post(client: TestClient, route: str, body: bytes):
    """POST `body` as JSON with the token, and the callback's signature where it wants one."""
    secret = get_settings().billing_callback_secret.encode()
    return client.post(route, content=body, headers={
        "Authorization": "Bearer test-token", "Content-Type": "application/json",
        "X-Signature": hmac.new(secret, body, hashlib.sha256).hexdigest()})


def assert_schema_error(response) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == "invalid_request"
    assert body["message"]


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("body", NOT_UTF8.values(), ids=NOT_UTF8.keys())
def test_a_body_that_is_not_utf8_is_a_schema_error(client, route, body):
    assert_schema_error(post(client, route, body))


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_a_body_that_is_not_json_is_a_schema_error(client, route, body):
    assert_schema_error(post(client, route, body))


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("body", NOT_AN_OBJECT.values(), ids=NOT_AN_OBJECT.keys())
def test_a_json_body_that_is_not_an_object_is_a_schema_error(client, route, body):
    assert_schema_error(post(client, route, body))


@pytest.mark.parametrize("route", PARSED_BY_FASTAPI)
@pytest.mark.parametrize("depth", [600, 5_000, 100_000])
@pytest.mark.parametrize("shape", ["lists", "objects"])
def test_a_deeply_nested_body_is_a_schema_error_never_a_500(client, route, depth, shape):
    if shape == "lists":
        body = b"[" * depth + b"]" * depth
    else:
        body = b'{"a": ' * depth + b"1" + b"}" * depth
    assert_schema_error(post(client, route, body))


@pytest.mark.parametrize("route", PARSED_BY_FASTAPI)
def test_deep_nesting_inside_a_valid_field_is_refused_as_a_schema_error(client, route):
    # Parsed fine, then nested far below a field that wants a string or a number.
    deep = b"[" * 700 + b"]" * 700
    nested = b'{"invoice_id": ' + deep + b', "reason": {"a": ' + deep + b"}}"
    assert_schema_error(post(client, route, nested))


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_a_deeply_nested_callback_body_is_a_schema_error_never_a_500(client, depth):
    assert_schema_error(post(client, CALLBACK, b"[" * depth + b"]" * depth))


@pytest.mark.parametrize("signature", ["\u00e9", "\u00ff" * 64])
def test_a_signature_that_is_not_ascii_is_refused_never_a_500(client, signature):
    response = client.post(CALLBACK, content=b"{}", headers={
        "Content-Type": "application/json", "X-Signature": signature.encode()})
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "bad_signature"
