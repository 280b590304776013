"""The JSON transport: which failures are retried, how answers map to typed errors, Decimals."""

from __future__ import annotations

import json
import socket
from decimal import Decimal

import pytest
from starlette.responses import Response

from clients.json_http import (
    JsonAnswer,
    JsonHttp,
    PeerBadAnswer,
    PeerRejected,
    PeerUnavailable,
    dumps,
    loads,
    to_wire,
)
from sandbox.control_client import Sandbox
from tests.clients.conftest import CannedPeer

SESSION = {"session_id": "s-1", "target": "captured", "invoice_id": "inv-1",
           "payment_id": "pay-1", "cost": {"amount": 100, "currency": "RUB"}}


def _json(status: int, body: object) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("idempotent, attempts_made", [(True, 3), (False, 1)])
def test_a_503_is_unavailable_and_retried_only_when_idempotent(
        canned_peer: CannedPeer, idempotent: bool, attempts_made: int) -> None:
    http = JsonHttp(canned_peer.url, timeout_s=2, attempts=3, backoff_s=0.01)
    with pytest.raises(PeerUnavailable, match="HTTP 503"):
        http.post("", {"a": 1}, idempotent=idempotent)
    assert len(canned_peer.requests) == attempts_made


def test_a_retried_call_that_recovers_returns_the_answer(canned_peer: CannedPeer) -> None:
    answers = iter([Response(status_code=502), _json(200, {"ok": True})])
    canned_peer.answer = lambda recorded: next(answers)
    http = JsonHttp(canned_peer.url, timeout_s=2, attempts=3, backoff_s=0.01)
    assert http.post("", {}, idempotent=True) == JsonAnswer(200, {"ok": True})
    assert len(canned_peer.requests) == 2


def test_connection_refused_is_unavailable() -> None:
    http = JsonHttp(f"http://127.0.0.1:{_closed_port()}", timeout_s=1, attempts=2,
                    backoff_s=0.01, unavailable=_MyUnavailable)
    with pytest.raises(_MyUnavailable, match="ConnectionError"):
        http.get("/anything", {})


class _MyUnavailable(PeerUnavailable):
    code = "my_unavailable"


@pytest.mark.parametrize("idempotent, attempts_made", [(True, 2), (False, 1)])
def test_a_timeout_is_unavailable_and_retried_only_when_idempotent(
        peers: Sandbox, idempotent: bool, attempts_made: int) -> None:
    peers.faults("provider", {"rates": {"timeout": 1}, "timeout_ms": 1000})
    http = JsonHttp(peers.url("provider"), timeout_s=0.2, attempts=2, backoff_s=0.01)
    with pytest.raises(PeerUnavailable, match="ReadTimeout"):
        http.post("/v1/sessions/process", SESSION, idempotent=idempotent)
    assert peers.state("provider")["faults"]["injected"] == {"timeout": attempts_made}


@pytest.mark.parametrize("idempotent, answers", [(True, 2), (False, 1)])
def test_a_dropped_connection_is_retried_only_when_idempotent(
        peers: Sandbox, idempotent: bool, answers: int) -> None:
    peers.faults("provider", {"once": ["reset"]})
    http = JsonHttp(peers.url("provider"), timeout_s=2, attempts=2, backoff_s=0.01)
    if idempotent:
        assert http.post("/v1/sessions/process", SESSION, idempotent=True).status == 200
    else:
        with pytest.raises(PeerUnavailable):
            http.post("/v1/sessions/process", SESSION, idempotent=False)
    assert peers.state("provider")["sessions"]["s-1"]["calls"] == answers


def test_a_4xx_is_answered_not_retried_and_raises_rejected_with_the_peer_code(
        canned_peer: CannedPeer) -> None:
    canned_peer.answer = lambda recorded: _json(409, {"code": "stale", "message": "too old"})
    answer = JsonHttp(canned_peer.url, timeout_s=2).post("", {}, idempotent=True)
    assert len(canned_peer.requests) == 1
    with pytest.raises(PeerRejected, match="HTTP 409 stale too old") as raised:
        answer.raise_for_status("update")
    assert (raised.value.status, raised.value.peer_code) == (409, "stale")


def test_a_4xx_error_page_keeps_its_status(canned_peer: CannedPeer) -> None:
    canned_peer.answer = lambda recorded: Response("<html>not found</html>", status_code=404,
                                                   media_type="text/html")
    answer = JsonHttp(canned_peer.url, timeout_s=2).get("", {})
    assert answer == JsonAnswer(404, None)
    with pytest.raises(PeerRejected) as raised:
        answer.raise_for_status("read")
    assert (raised.value.status, raised.value.peer_code) == (404, None)


def test_429_means_later_not_rejected(canned_peer: CannedPeer) -> None:
    canned_peer.answer = lambda recorded: Response(status_code=429)
    answer = JsonHttp(canned_peer.url, timeout_s=2, attempts=3).post("", {}, idempotent=True)
    assert len(canned_peer.requests) == 1
    with pytest.raises(_MyUnavailable, match="rate limited"):
        answer.raise_for_status("update", unavailable=_MyUnavailable)


def test_any_2xx_passes_and_a_redirect_is_a_bad_answer() -> None:
    JsonAnswer(201, {}).raise_for_status("create")
    with pytest.raises(PeerBadAnswer, match="HTTP 302"):
        JsonAnswer(302, None).raise_for_status("create")


def test_a_2xx_that_is_not_json_is_a_bad_answer(canned_peer: CannedPeer) -> None:
    canned_peer.answer = lambda recorded: Response("ok", status_code=200)
    with pytest.raises(PeerBadAnswer, match="not JSON"):
        JsonHttp(canned_peer.url, timeout_s=2).get("", {})


def test_bodies_carry_decimals_as_strings_both_ways(canned_peer: CannedPeer) -> None:
    canned_peer.answer = lambda recorded: Response(b'{"balance": 10.10, "count": 3}',
                                                   media_type="application/json")
    answer = JsonHttp(canned_peer.url, timeout_s=2).post(
        "", {"amount": Decimal("0.10"), "big": Decimal("1E+2")}, idempotent=False)
    sent = canned_peer.requests[0]
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.body) == {"amount": "0.10", "big": "100"}
    assert answer.body == {"balance": Decimal("10.10"), "count": 3}
    assert isinstance(answer.body["balance"], Decimal)


def test_wire_helpers_refuse_what_json_cannot_carry_exactly() -> None:
    assert to_wire(Decimal("-0.5")) == "-0.5"
    with pytest.raises(ValueError):
        to_wire(Decimal("NaN"))
    with pytest.raises(TypeError):
        dumps({"amount": 0.1})
    assert loads(b"[1.5]") == [Decimal("1.5")]
