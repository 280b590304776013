"""Bytes on the wire, decoded with a hand-written codec and checked against docs/wire.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from starlette.responses import Response

from clients.accounter import AccounterClient, Batch, Posting
from clients.limiter import LimitChange, LimiterClient, PaymentContext
from clients.woody import ResourceUnavailable
from clients.woody_wire import format_deadline
from tests.clients import thrift_wire as wire
from tests.clients.conftest import CannedPeer, Recorded, WoodyPeers

THRIFT = "application/x-thrift"


def _sent(peer: CannedPeer) -> wire.Message:
    """The one message a client sent to the canned peer (which refused it with a 503)."""
    assert len(peer.requests) == 1
    return wire.decode_message(peer.requests[0].body)


def _struct(fields: wire.Fields, field_id: int) -> wire.Fields:
    ttype, value = fields[field_id]
    assert ttype == wire.STRUCT
    return value


def _woody_headers(**extra: str) -> dict[str, str]:
    return {"content-type": THRIFT, "accept": THRIFT, "woody.trace-id": "t1",
            "woody.span-id": "s1", "woody.parent-id": "undefined", **extra}


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(url, data=body, headers=headers or _woody_headers(), timeout=5)


POSTING_TYPES = {1: wire.I64, 2: wire.I64, 3: wire.I64, 4: wire.STRING, 5: wire.STRING}


def test_hold_request_uses_accounter_field_ids(canned_peer: CannedPeer) -> None:
    client = AccounterClient(canned_peer.url, attempts=1)
    with pytest.raises(ResourceUnavailable):
        client.hold("inv.pay.1", Batch(1, (Posting(10, 20, 1_500, "RUB", "payment"),)))
    message = _sent(canned_peer)
    assert (message.type, message.name) == (wire.CALL, "Hold")
    assert wire.field_types(message.body) == {1: wire.STRUCT}  # 1 plan_change
    change = _struct(message.body, 1)
    assert wire.field_types(change) == {1: wire.STRING, 2: wire.STRUCT}  # 1 id, 2 batch
    assert change[1][1] == b"inv.pay.1"
    batch = _struct(change, 2)
    assert wire.field_types(batch) == {1: wire.I64, 2: wire.LIST}  # 1 id, 2 postings
    item_type, postings = batch[2][1]
    assert batch[1][1] == 1 and item_type == wire.STRUCT and len(postings) == 1
    assert wire.field_types(postings[0]) == POSTING_TYPES  # no exchange_context (6)
    assert {fid: value for fid, (_, value) in postings[0].items()} == {
        1: 10, 2: 20, 3: 1_500, 4: b"RUB", 5: b"payment"}


def test_commit_plan_request_lists_every_batch(canned_peer: CannedPeer) -> None:
    client = AccounterClient(canned_peer.url, attempts=1)
    batches = [Batch(1, (Posting(1, 2, 100, "RUB", "a"),)),
               Batch(2, (Posting(2, 1, 100, "RUB", "revert(a)"),))]
    with pytest.raises(ResourceUnavailable):
        client.commit_plan("inv.pay.1", batches)
    message = _sent(canned_peer)
    assert message.name == "CommitPlan"
    plan = _struct(message.body, 1)  # 1 plan
    assert wire.field_types(plan) == {1: wire.STRING, 2: wire.LIST}  # 1 id, 2 batch_list
    _, batch_list = plan[2][1]
    assert [b[1][1] for b in batch_list] == [1, 2]


def _limiter_context(captured: int | None = None) -> PaymentContext:
    return PaymentContext(
        invoice_id="inv1", payment_id="pay1", party_id="party1", shop_id="shop1",
        created_at="2026-05-18T12:00:00Z", domain_revision=42, cost_amount=1_000,
        currency="RUB", provider_id=11, terminal_id=22, captured_amount=captured,
        flow_hold=("capture", "2026-05-25T12:00:00Z"),
    )


def _payment_of(args: wire.Fields) -> tuple[wire.Fields, wire.Fields]:
    """(domain invoice, payproc InvoicePayment) from HoldBatch/CommitBatch args."""
    context = _struct(_struct(args, 2), 2)  # 2 context -> 2 payment_processing
    invoice = _struct(context, 2)  # payproc Context: 2 invoice
    return _struct(invoice, 1), _struct(invoice, 2)


def test_hold_batch_request_uses_limiter_field_ids(canned_peer: CannedPeer) -> None:
    client = LimiterClient(canned_peer.url, attempts=1)
    with pytest.raises(ResourceUnavailable):
        client.hold_batch("op-1", [LimitChange("daily", version=42)], _limiter_context())
    message = _sent(canned_peer)
    assert message.name == "HoldBatch"
    assert wire.field_types(message.body) == {1: wire.STRUCT, 2: wire.STRUCT}  # request, context
    request = _struct(message.body, 1)
    assert wire.field_types(request) == {1: wire.STRING, 2: wire.LIST}
    _, changes = request[2][1]
    assert {fid: value for fid, (_, value) in changes[0].items()} == {1: b"daily", 3: 42}

    context = _struct(_struct(message.body, 2), 2)
    assert wire.field_types(context) == {1: wire.STRUCT, 2: wire.STRUCT}  # op, invoice
    assert wire.field_types(_struct(context, 1)) == {3: wire.STRUCT}  # op = invoice_payment
    invoice, payproc_payment = _payment_of(message.body)
    assert wire.field_types(invoice) == {1: wire.STRING, 2: wire.I64, 3: wire.STRUCT,
                                         4: wire.STRUCT, 5: wire.STRING, 6: wire.STRUCT,
                                         7: wire.STRUCT, 8: wire.STRING, 9: wire.STRUCT}
    assert invoice[1][1] == b"inv1" and invoice[2][1] == 42
    assert wire.field_types(payproc_payment) == {1: wire.STRUCT, 5: wire.STRUCT}  # payment, route
    route = _struct(payproc_payment, 5)
    assert _struct(route, 1) == {1: (wire.I32, 11)} and _struct(route, 2) == {1: (wire.I32, 22)}
    payment = _struct(payproc_payment, 1)
    assert set(wire.field_types(payment)) >= {1, 2, 3, 5, 7, 8, 9}  # every required field
    status = _struct(payment, 3)
    assert wire.field_types(status) == {3: wire.STRUCT}  # captured
    assert _struct(status, 3) == {}  # no cost outside a commit
    flow = _struct(_struct(payment, 8), 2)  # hold flow
    assert flow == {1: (wire.I32, 1), 2: (wire.STRING, b"2026-05-25T12:00:00Z")}
    cost = _struct(payment, 5)
    assert cost == {1: (wire.I64, 1_000), 2: (wire.STRUCT, {1: (wire.STRING, b"RUB")})}


def test_commit_batch_carries_the_captured_cost(canned_peer: CannedPeer) -> None:
    client = LimiterClient(canned_peer.url, attempts=1)
    with pytest.raises(ResourceUnavailable):
        client.commit_batch("op-1", [LimitChange("daily")], _limiter_context(captured=600))
    message = _sent(canned_peer)
    assert message.name == "CommitBatch"
    _, payproc_payment = _payment_of(message.body)
    captured = _struct(_struct(_struct(payproc_payment, 1), 3), 3)
    assert _struct(captured, 2) == {1: (wire.I64, 600),
                                    2: (wire.STRUCT, {1: (wire.STRING, b"RUB")})}


# --- what the sandbox answers ---------------------------------------------------------------


def _posting(from_id: int, to_id: int, amount: int, *extra: bytes) -> bytes:
    return wire.struct_(wire.field(1, wire.I64, wire.i64(from_id)),
                        wire.field(2, wire.I64, wire.i64(to_id)),
                        wire.field(3, wire.I64, wire.i64(amount)),
                        wire.field(4, wire.STRING, wire.string("RUB")),
                        wire.field(5, wire.STRING, wire.string("hand-made")), *extra)


def _hold_call(plan_id: str, batch_id: int, posting: bytes, *extra_args: bytes) -> bytes:
    batch = wire.struct_(wire.field(1, wire.I64, wire.i64(batch_id)),
                         wire.field(2, wire.LIST, wire.list_(wire.STRUCT, [posting])))
    change = wire.struct_(wire.field(1, wire.STRING, wire.string(plan_id)),
                          wire.field(2, wire.STRUCT, batch))
    return wire.message(wire.CALL, "Hold", 7, wire.struct_(
        wire.field(1, wire.STRUCT, change), *extra_args))


def test_sandbox_reply_to_hold_uses_result_field_0_and_tolerates_unknown_fields(
        woody_peers: WoodyPeers) -> None:
    src, dst = woody_peers.add_account("RUB"), woody_peers.add_account("RUB")
    future_struct = wire.struct_(wire.field(1, wire.LIST, wire.list_(wire.I32, [wire.i32(5)])))
    posting = _posting(src, dst, 900,
                       wire.field(42, wire.STRUCT, future_struct),  # unknown to our IDL
                       wire.field(43, wire.STRING, wire.string("later")))
    call = _hold_call("wire.plan.1", 1, posting, wire.field(9, wire.I64, wire.i64(1)))
    response = _post(woody_peers.accounter_url, call)
    assert response.status_code == 200
    assert response.headers["content-type"] == THRIFT
    reply = wire.decode_message(response.content)
    assert (reply.type, reply.name, reply.seqid) == (wire.REPLY, "Hold", 7)
    plan_log = _struct(reply.body, 0)
    assert wire.field_types(plan_log) == {2: wire.MAP}  # PostingPlanLog has no field 1
    key_type, value_type, accounts = plan_log[2][1]
    assert (key_type, value_type) == (wire.I64, wire.STRUCT)
    by_id = dict(accounts)
    assert by_id[src][4] == (wire.I64, -900)  # 4 min_available_amount
    assert by_id[dst][3] == (wire.I64, 900)  # 3 max_available_amount
    assert set(wire.field_types(by_id[src])) >= {1, 2, 3, 4, 5}


def test_sandbox_business_errors_sit_in_their_declared_result_fields(
        woody_peers: WoodyPeers) -> None:
    src, dst = woody_peers.add_account("RUB"), woody_peers.add_account("RUB")
    negative = _post(woody_peers.accounter_url, _hold_call("wire.plan.2", 1,
                                                           _posting(src, dst, -5)))
    assert negative.status_code == 200
    assert negative.headers["woody.error-class"] == "Business Error"
    assert negative.headers["woody.error-reason"] == "InvalidPostingParams"
    result = wire.decode_message(negative.content).body
    assert wire.field_types(result) == {1: wire.STRUCT}  # e1: InvalidPostingParams
    key_type, value_type, wrong = _struct(result, 1)[1][1]
    assert (key_type, value_type) == (wire.STRUCT, wire.STRING)  # map<Posting, string>
    assert wrong[0][1] == b"Amount cannot be negative"

    unknown_plan = _post(woody_peers.accounter_url, wire.message(
        wire.CALL, "GetPlan", 3, wire.struct_(wire.field(1, wire.STRING, wire.string("nope")))))
    assert unknown_plan.headers["woody.error-reason"] == "PlanNotFound"
    result = wire.decode_message(unknown_plan.content).body
    assert result == {1: (wire.STRUCT, {1: (wire.STRING, b"nope")})}  # e1: PlanNotFound


def test_hold_batch_invalid_request_is_result_field_3(woody_peers: WoodyPeers,
                                                      canned_peer: CannedPeer) -> None:
    # Take the exact bytes the client sends, then replay them to the sandbox by hand.
    woody_peers.add_limit("daily", "RUB")
    limiter = LimiterClient(woody_peers.limiter_url)
    limiter.hold_batch("op-final", [LimitChange("daily")], _limiter_context())
    limiter.commit_batch("op-final", [LimitChange("daily")], _limiter_context())
    with pytest.raises(ResourceUnavailable):
        LimiterClient(canned_peer.url, attempts=1).hold_batch(
            "op-final", [LimitChange("daily")], _limiter_context())
    response = _post(woody_peers.limiter_url, canned_peer.requests[0].body)
    assert response.headers["woody.error-reason"] == "InvalidRequest"
    result = wire.decode_message(response.content).body
    assert wire.field_types(result) == {3: wire.STRUCT}  # HoldBatch declares no id 2
    assert _struct(result, 3)[1][1] == (wire.STRING, [b"OperationAlreadyInFinalState"])


def test_void_commit_batch_replies_with_an_empty_result(woody_peers: WoodyPeers,
                                                        canned_peer: CannedPeer) -> None:
    woody_peers.add_limit("daily", "RUB")
    LimiterClient(woody_peers.limiter_url).hold_batch("op-void", [LimitChange("daily")],
                                                      _limiter_context())
    with pytest.raises(ResourceUnavailable):
        LimiterClient(canned_peer.url, attempts=1).commit_batch(
            "op-void", [LimitChange("daily")], _limiter_context())
    response = _post(woody_peers.limiter_url, canned_peer.requests[0].body)
    assert response.status_code == 200 and "woody.error-class" not in response.headers
    assert wire.decode_message(response.content).body == {}


def test_client_tolerates_unknown_fields_in_a_reply(canned_peer: CannedPeer) -> None:
    def answer(recorded: Recorded) -> Response:
        call = wire.decode_message(recorded.body)
        account = wire.struct_(
            wire.field(1, wire.I64, wire.i64(5)), wire.field(2, wire.I64, wire.i64(10)),
            wire.field(3, wire.I64, wire.i64(30)), wire.field(4, wire.I64, wire.i64(-20)),
            wire.field(5, wire.STRING, wire.string("RUB")),
            wire.field(40, wire.MAP, wire.map_(wire.STRING, wire.I64,
                                               [(wire.string("k"), wire.i64(1))])),
            wire.field(41, wire.STRUCT, wire.struct_(wire.field(1, wire.STRING,
                                                                wire.string("x")))),
        )
        result = wire.struct_(wire.field(0, wire.STRUCT, account),
                              wire.field(9, wire.STRING, wire.string("new result field")))
        return Response(wire.message(wire.REPLY, call.name, call.seqid, result),
                        media_type=THRIFT)

    canned_peer.answer = answer
    account = AccounterClient(canned_peer.url).get_account(5)
    assert (account.id, account.own_amount, account.max_available_amount,
            account.min_available_amount, account.currency) == (5, 10, 30, -20, "RUB")


# --- transport checks of the sandbox server -------------------------------------------------


def _get_plan_call() -> bytes:
    return wire.message(wire.CALL, "GetPlan", 1, wire.struct_(
        wire.field(1, wire.STRING, wire.string("p"))))


def _past_deadline() -> str:
    return format_deadline(datetime.now(UTC) - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("method", "headers", "body", "status", "error_class"),
    [
        ("GET", _woody_headers(), b"", 405, "Result Unexpected"),
        ("POST", _woody_headers(**{"content-type": "application/json"}), None, 415,
         "Result Unexpected"),
        ("POST", _woody_headers(accept="*/*"), None, 406, "Result Unexpected"),
        ("POST", {k: v for k, v in _woody_headers().items() if k != "woody.span-id"}, None,
         400, "Result Unexpected"),
        ("POST", _woody_headers(**{"woody.deadline": "tomorrow"}), None, 400,
         "Result Unexpected"),
        ("POST", _woody_headers(**{"woody.deadline": _past_deadline()}), None, 503,
         "Resource Unavailable"),
        ("POST", _woody_headers(), b"", 400, "Result Unexpected"),
        ("POST", _woody_headers(), b"\x00\x00\x00\x07GetPlan\x01\x00\x00\x00\x01\x00", 400,
         "Result Unexpected"),  # unversioned (non-strict) header
        ("POST", _woody_headers(), wire.message(wire.CALL, "Accounter:GetPlan", 1,
                                                wire.struct_()), 400, "Result Unexpected"),
        ("POST", _woody_headers(), _hold_call("p", 1, wire.struct_(
            wire.field(1, wire.I64, wire.i64(1)), wire.field(2, wire.I64, wire.i64(2)))), 400,
         "Result Unexpected"),  # a posting without its required amount, currency, description
    ],
    ids=["method", "content-type", "accept", "ids", "bad-deadline", "past-deadline",
         "empty-body", "unversioned", "multiplexed", "missing-required"],
)
def test_sandbox_refuses_bad_requests_like_a_woody_server(
        woody_peers: WoodyPeers, method: str, headers: dict[str, str], body: bytes | None,
        status: int, error_class: str) -> None:
    response = requests.request(method, woody_peers.accounter_url, headers=headers,
                                data=_get_plan_call() if body is None else body, timeout=5)
    assert response.status_code == status
    assert response.headers["woody.error-class"] == error_class
    assert response.content == b""
    if status == 405:
        assert response.headers["allow"] == "POST"
    assert woody_peers.accounter_state()["calls"] == {}


def test_sandbox_answers_an_absent_accept_header(woody_peers: WoodyPeers) -> None:
    headers: dict[str, Any] = {k: v for k, v in _woody_headers().items() if k != "accept"}
    session = requests.Session()
    session.headers.pop("Accept", None)
    response = session.post(woody_peers.accounter_url, data=_get_plan_call(),
                            headers=headers, timeout=5)
    assert response.status_code == 200
    assert response.headers["woody.error-reason"] == "PlanNotFound"
