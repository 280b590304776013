"""The woody transport: error classes, retry decisions, deadlines, trace headers."""

from __future__ import annotations

import re
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
from starlette.responses import Response

from clients.accounter import accounter_thrift
from clients.woody import (
    BusinessError,
    ResourceUnavailable,
    ResultUnexpected,
    ResultUnknown,
    WoodyClient,
    WoodyError,
)
from clients.woody_wire import WoodyContext, format_deadline, parse_deadline
from tests.clients import thrift_wire as wire
from tests.clients.conftest import CannedPeer, Recorded, WoodyPeers


def _client(url: str, **kwargs: float) -> WoodyClient:
    return WoodyClient(url, accounter_thrift.Accounter, **kwargs)  # type: ignore[arg-type]


def _get_account(client: WoodyClient, idempotent: bool, **kwargs: object) -> object:
    return client.call("GetAccountByID", {"id": 1}, idempotent=idempotent, **kwargs)


@pytest.mark.parametrize(
    ("fault", "idempotent", "raised", "calls"),
    [
        # resource unavailable: nothing ran, so any call is retried
        ("503", False, None, 2),
        ("502_resource_unavailable", False, None, 2),
        # result unknown: retried only when the call is idempotent
        ("504", True, None, 2),
        ("504", False, ResultUnknown, 1),
        ("502_result_unknown", True, None, 2),
        ("502_result_unknown", False, ResultUnknown, 1),
        # result unexpected: never retried
        ("500", True, ResultUnexpected, 1),
        ("502", True, ResultUnexpected, 1),
    ],
)
def test_each_woody_error_class_maps_to_its_exception_and_retry_decision(
        woody_peers: WoodyPeers, fault: str, idempotent: bool,
        raised: type[WoodyError] | None, calls: int) -> None:
    account_id = woody_peers.add_account("RUB")
    woody_peers.accounter_faults({"once": [fault]})
    client = _client(woody_peers.accounter_url)
    if raised is None:
        account = client.call("GetAccountByID", {"id": account_id}, idempotent=idempotent)
        assert account.id == account_id
    else:
        with pytest.raises(raised):
            client.call("GetAccountByID", {"id": account_id}, idempotent=idempotent)
    assert woody_peers.accounter_calls("GetAccountByID") == calls


def test_retries_stop_after_the_configured_attempts(woody_peers: WoodyPeers) -> None:
    woody_peers.accounter_faults({"once": ["503", "503", "503", "503"]})
    client = _client(woody_peers.accounter_url, attempts=3)
    with pytest.raises(ResourceUnavailable) as raised:
        _get_account(client, idempotent=True)
    assert raised.value.reason == "injected fault 503"
    assert woody_peers.accounter_calls("GetAccountByID") == 3


def test_business_error_is_raised_with_the_thrift_exception_and_not_retried(
        woody_peers: WoodyPeers) -> None:
    client = _client(woody_peers.accounter_url)
    with pytest.raises(BusinessError) as raised:
        client.call("GetAccountByID", {"id": 404}, idempotent=True)
    assert raised.value.name == "AccountNotFound"
    assert raised.value.exception.account_id == 404
    assert raised.value.trace_id
    assert woody_peers.accounter_calls("GetAccountByID") == 1


def test_connection_refused_is_resource_unavailable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = _client(f"http://127.0.0.1:{port}/accounter", attempts=2)
    with pytest.raises(ResourceUnavailable):
        _get_account(client, idempotent=False)


def test_read_timeout_is_result_unknown_within_the_call_timeout(woody_peers: WoodyPeers) -> None:
    woody_peers.accounter_faults({"once": ["timeout"], "timeout_ms": 3000})
    client = _client(woody_peers.accounter_url, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(ResultUnknown):
        _get_account(client, idempotent=False)
    assert time.monotonic() - started < 1.0
    assert woody_peers.accounter_calls("GetAccountByID") == 1


def test_slow_server_gives_result_unknown_within_the_deadline(woody_peers: WoodyPeers) -> None:
    woody_peers.accounter_faults({"latency_ms": 2000})
    client = _client(woody_peers.accounter_url, timeout_s=0.6, attempts=3)
    started = time.monotonic()
    with pytest.raises(ResultUnknown):
        _get_account(client, idempotent=True)
    assert time.monotonic() - started < 1.0
    # the idempotent call split its time over its attempts and used all of them
    assert woody_peers.accounter_calls("GetAccountByID") == 3


def test_nothing_is_sent_once_the_context_deadline_has_passed(canned_peer: CannedPeer) -> None:
    context = WoodyContext.new(deadline=datetime.now(UTC) - timedelta(milliseconds=1))
    with pytest.raises(ResourceUnavailable) as raised:
        _get_account(_client(canned_peer.url), idempotent=True, context=context)
    assert raised.value.reason == "deadline reached"
    assert canned_peer.requests == []


def test_a_root_call_sends_woody_headers_with_a_fresh_span_per_call(
        canned_peer: CannedPeer) -> None:
    client = _client(canned_peer.url, attempts=1)
    for _ in range(2):
        with pytest.raises(ResourceUnavailable):
            _get_account(client, idempotent=True)
    first, second = (r.headers for r in canned_peer.requests)
    assert first["content-type"] == first["accept"] == "application/x-thrift"
    assert first["woody.parent-id"] == "undefined"
    assert first["woody.trace-id"] != second["woody.trace-id"]
    assert first["woody.span-id"] != second["woody.span-id"]
    assert "woody.deadline" not in first


def test_a_child_call_keeps_the_trace_and_sends_deadline_and_meta(
        canned_peer: CannedPeer) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    context = WoodyContext(trace_id="trace-1", span_id="caller-span", deadline=deadline,
                           meta={"user-identity.id": "u-1"})
    client = _client(canned_peer.url, attempts=2)
    with pytest.raises(ResourceUnavailable) as raised:
        _get_account(client, idempotent=True, context=context)
    assert raised.value.trace_id == "trace-1"
    first, retry = (r.headers for r in canned_peer.requests)
    for headers in (first, retry):
        assert headers["woody.trace-id"] == "trace-1"
        assert headers["woody.parent-id"] == "caller-span"
        assert headers["woody.meta.user-identity.id"] == "u-1"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", headers["woody.deadline"])
    assert parse_deadline(first["woody.deadline"]) == deadline.replace(
        microsecond=deadline.microsecond // 1000 * 1000)
    assert first["woody.span-id"] != retry["woody.span-id"]


def test_retried_attempts_send_identical_bytes(canned_peer: CannedPeer) -> None:
    client = _client(canned_peer.url, attempts=3)
    with pytest.raises(ResourceUnavailable):
        _get_account(client, idempotent=True)
    bodies = {r.body for r in canned_peer.requests}
    assert len(canned_peer.requests) == 3 and len(bodies) == 1


@pytest.mark.parametrize(
    ("status", "error_class", "raised"),
    [
        (502, None, ResultUnexpected),
        (502, "Something Else", ResultUnexpected),
        (502, "RESOURCE UNAVAILABLE", ResourceUnavailable),
        (400, "Result Unexpected", ResultUnexpected),
        (404, None, ResultUnexpected),
        (406, "Result Unexpected", ResultUnexpected),
    ],
)
def test_http_status_and_error_class_header_pick_the_exception(
        canned_peer: CannedPeer, status: int, error_class: str | None,
        raised: type[WoodyError]) -> None:
    headers = {"woody.error-class": error_class} if error_class else {}
    canned_peer.answer = lambda recorded: Response(status_code=status, headers=headers)
    with pytest.raises(raised):
        _get_account(_client(canned_peer.url, attempts=1), idempotent=True)


def _reply_to(recorded: Recorded, message_type: int, body: bytes) -> Response:
    call = wire.decode_message(recorded.body)
    return Response(wire.message(message_type, call.name, call.seqid, body),
                    media_type="application/x-thrift")


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda r: Response(b"\x00garbage", media_type="application/x-thrift"),
                     id="garbage"),
        pytest.param(lambda r: Response(b"", media_type="application/x-thrift"), id="empty"),
        pytest.param(lambda r: _reply_to(r, wire.EXCEPTION, wire.struct_(
            wire.field(1, wire.STRING, wire.string("boom")))), id="application-exception"),
        pytest.param(lambda r: _reply_to(r, wire.REPLY, wire.struct_()), id="no-result"),
        pytest.param(lambda r: Response(wire.message(wire.REPLY, "GetPlan", 1, wire.struct_()),
                                        media_type="application/x-thrift"), id="wrong-method"),
    ],
)
def test_an_undecodable_or_foreign_reply_is_result_unexpected_and_not_retried(
        canned_peer: CannedPeer, answer) -> None:
    canned_peer.answer = answer
    with pytest.raises(ResultUnexpected):
        _get_account(_client(canned_peer.url), idempotent=True)
    assert len(canned_peer.requests) == 1


def test_a_truncated_response_is_result_unknown(canned_peer: CannedPeer) -> None:
    canned_peer.answer = lambda r: Response(b"\x80\x01", headers={"content-length": "64"},
                                            media_type="application/x-thrift")
    with pytest.raises(ResultUnknown):
        _get_account(_client(canned_peer.url, attempts=1), idempotent=True)


def test_deadline_format_round_trips_in_utc() -> None:
    moment = datetime(2026, 5, 18, 12, 29, 11, 123000, tzinfo=UTC)
    assert format_deadline(moment) == "2026-05-18T12:29:11.123Z"
    assert parse_deadline("2026-05-18T12:29:11.123+00:00") == moment
    assert parse_deadline("2026-05-18T12:29:11Z") == moment.replace(microsecond=0)
    with pytest.raises(ValueError):
        parse_deadline("2026-05-18T12:29:11.123+03:00")


def test_ids_longer_than_64_bytes_are_refused() -> None:
    with pytest.raises(ValueError):
        WoodyContext(trace_id="x" * 65)


def test_arguments_that_cannot_be_encoded_are_a_value_error(canned_peer: CannedPeer) -> None:
    client = _client(canned_peer.url)
    with pytest.raises(ValueError):
        client.call("GetAccountByID", {"id": "not-a-number"}, idempotent=True)
    with pytest.raises(ValueError):
        client.call("GetAccountByID", {"account": 1}, idempotent=True)
    assert canned_peer.requests == []
