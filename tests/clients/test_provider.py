"""ProviderClient against the provider adapter sandbox over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clients.json_http import PeerBadAnswer
from clients.provider import ProviderClient, ProviderRejected, ProviderUnavailable, SessionResult
from sandbox.control_client import Sandbox, SandboxControlError
from sandbox.server import serve_in_thread


@pytest.fixture
def provider(peers: Sandbox) -> Iterator[ProviderClient]:
    client = ProviderClient(peers.url("provider"), timeout_s=2, backoff_s=0.01)
    yield client
    client.close()


def _capture(client: ProviderClient, session_id: str = "inv-1/pay-1/capture", *,
             invoice_id: str = "inv-1", amount: int = 1000, **extra: str) -> SessionResult:
    return client.process_session(session_id=session_id, target="captured",
                                  invoice_id=invoice_id, payment_id="pay-1",
                                  cost_amount=amount, currency="RUB", **extra)


def _session(peers: Sandbox, session_id: str) -> dict:
    return peers.state("provider")["sessions"][session_id]


def test_a_session_succeeds_by_default_and_repeats_the_same_answer(
        provider: ProviderClient, peers: Sandbox) -> None:
    first = _capture(provider)
    again = _capture(provider)
    assert first.status == "succeeded" and first.trx_id == "trx-inv-1-pay-1"
    assert again == first
    session = _session(peers, "inv-1/pay-1/capture")
    assert session["calls"] == 2
    assert session["last_body"] == {"session_id": "inv-1/pay-1/capture", "target": "captured",
                                    "invoice_id": "inv-1", "payment_id": "pay-1",
                                    "cost": {"amount": 1000, "currency": "RUB"}}


def test_the_trx_id_sent_comes_back(provider: ProviderClient, peers: Sandbox) -> None:
    assert _capture(provider, trx_id="bank-trx-7").trx_id == "bank-trx-7"
    assert _session(peers, "inv-1/pay-1/capture")["last_body"]["trx_id"] == "bank-trx-7"


def test_a_scenario_answers_processing_until_it_succeeds(
        provider: ProviderClient, peers: Sandbox) -> None:
    peers.control("provider", "scenarios", {"invoice_id": "inv-1", "answers": [
        {"status": "processing", "poll_in_s": 3}, {"status": "processing", "poll_in_s": 0},
        {"status": "succeeded", "trx_id": "trx-42"}]})
    results = [_capture(provider) for _ in range(4)]
    assert [(r.status, r.poll_in_s) for r in results[:2]] == [("processing", 3),
                                                              ("processing", 0)]
    assert results[2].status == results[3].status == "succeeded"
    assert results[2].trx_id == results[3].trx_id == "trx-42"
    session = _session(peers, "inv-1/pay-1/capture")
    assert session["calls"] == 4
    assert session["answers"] == ["processing", "processing", "succeeded", "succeeded"]
    assert peers.state("provider")["scenarios"] == {}


def test_a_fatal_failure_is_final_and_a_transient_one_is_not(
        provider: ProviderClient, peers: Sandbox) -> None:
    peers.control("provider", "scenarios", {"invoice_id": "inv-1", "answers": [
        {"status": "failed", "failure": {"code": "no_route", "transient": False}},
        {"status": "succeeded"}]})
    peers.control("provider", "scenarios", {"invoice_id": "inv-2", "answers": [
        {"status": "failed", "failure": {"code": "bank_timeout", "transient": True}},
        {"status": "succeeded"}]})

    fatal = [_capture(provider, "s-fatal") for _ in range(2)]
    assert [(r.status, r.failure_code, r.transient) for r in fatal] == [
        ("failed", "no_route", False)] * 2

    transient = _capture(provider, "s-transient", invoice_id="inv-2")
    assert (transient.status, transient.failure_code, transient.transient) == (
        "failed", "bank_timeout", True)
    assert _capture(provider, "s-transient", invoice_id="inv-2").status == "succeeded"


def test_a_session_scenario_wins_over_the_invoice_one(
        provider: ProviderClient, peers: Sandbox) -> None:
    peers.control("provider", "scenarios", {"invoice_id": "inv-1", "answers": [
        {"status": "processing", "poll_in_s": 9}]})
    peers.control("provider", "scenarios", {"session_id": "s-own", "answers": [
        {"status": "processing", "poll_in_s": 1}]})
    assert _capture(provider, "s-own").poll_in_s == 1
    assert _capture(provider, "s-other").poll_in_s == 9


def test_a_malformed_scenario_is_refused(peers: Sandbox) -> None:
    with pytest.raises(SandboxControlError, match="failure"):
        peers.control("provider", "scenarios", {"invoice_id": "inv-1", "answers": [
            {"status": "failed"}]})
    with pytest.raises(SandboxControlError, match="exactly one"):
        peers.control("provider", "scenarios", {"answers": []})


def test_reusing_a_session_id_for_another_cost_is_rejected(provider: ProviderClient) -> None:
    _capture(provider, amount=1000)
    with pytest.raises(ProviderRejected) as raised:
        _capture(provider, amount=999)
    assert raised.value.status == 409 and raised.value.peer_code == "session_conflict"


def test_a_request_the_adapter_refuses_is_rejected_not_retried(
        provider: ProviderClient, peers: Sandbox) -> None:
    with pytest.raises(ProviderRejected) as raised:
        provider.process_session(session_id="s-bad", target="captured", invoice_id="inv-1",
                                 payment_id="pay-1", cost_amount=1, currency="rubles")
    assert raised.value.status == 400
    assert peers.state("provider")["sessions"] == {}


def test_a_503_is_retried_and_the_session_goes_on(
        provider: ProviderClient, peers: Sandbox) -> None:
    peers.faults("provider", {"once": ["503", "503"]})
    assert _capture(provider).status == "succeeded"
    assert peers.state("provider")["faults"]["injected"] == {"503": 2}
    assert _session(peers, "inv-1/pay-1/capture")["calls"] == 1


def test_a_dropped_answer_is_retried_and_gets_the_same_outcome(
        provider: ProviderClient, peers: Sandbox) -> None:
    # The adapter processed the call, but the connection dropped before the answer arrived.
    peers.faults("provider", {"once": ["reset"]})
    result = _capture(provider)
    assert (result.status, result.trx_id) == ("succeeded", "trx-inv-1-pay-1")
    assert _session(peers, "inv-1/pay-1/capture")["answers"] == ["succeeded", "succeeded"]


def test_a_peer_that_keeps_failing_is_unavailable_after_the_attempts(
        provider: ProviderClient, peers: Sandbox) -> None:
    peers.faults("provider", {"rates": {"502": 1}})
    with pytest.raises(ProviderUnavailable):
        _capture(provider)
    assert peers.state("provider")["faults"]["injected"] == {"502": 3}


def test_rate_limiting_is_unavailable_without_retrying_inline(
        provider: ProviderClient, peers: Sandbox) -> None:
    peers.faults("provider", {"rates": {"429": 1}})
    with pytest.raises(ProviderUnavailable, match="rate limited"):
        _capture(provider)
    assert peers.state("provider")["faults"]["injected"] == {"429": 1}


def test_a_timeout_is_unavailable(peers: Sandbox) -> None:
    peers.faults("provider", {"rates": {"timeout": 1}, "timeout_ms": 1000})
    client = ProviderClient(peers.url("provider"), timeout_s=0.2, attempts=2, backoff_s=0.01)
    with pytest.raises(ProviderUnavailable, match="Timeout"):
        _capture(client)
    client.close()
    assert peers.state("provider")["faults"]["injected"] == {"timeout": 2}


def test_faults_can_target_one_invoice(provider: ProviderClient, peers: Sandbox) -> None:
    peers.faults("provider", {"rates": {"503": 1}, "match": "sessions/process inv-2 "})
    assert _capture(provider, "s-1", invoice_id="inv-1").status == "succeeded"
    with pytest.raises(ProviderUnavailable):
        _capture(provider, "s-2", invoice_id="inv-2")


@pytest.fixture(scope="module")
def odd_adapter() -> Iterator[tuple[str, list[object]]]:
    """An adapter that answers whatever JSON the test puts in the list (a bad peer)."""
    answers: list[object] = [None]

    async def process(request: Request) -> Response:
        return JSONResponse(answers[0])

    server = serve_in_thread(Starlette(routes=[
        Route("/v1/sessions/process", process, methods=["POST"])]))
    yield server.url, answers
    server.stop()


@pytest.mark.parametrize("answer", [
    {"status": "processing"},
    {"status": "failed"},
    {"status": "done"},
    ["succeeded"],
])
def test_an_answer_outside_the_protocol_is_a_bad_answer(
        odd_adapter: tuple[str, list[object]], answer: object) -> None:
    url, answers = odd_adapter
    answers[0] = answer
    client = ProviderClient(url, timeout_s=2)
    with pytest.raises(PeerBadAnswer):
        _capture(client)
    client.close()
