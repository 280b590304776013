"""The shared `sandbox` / `peers` fixtures: every registered peer runs where settings point."""

from __future__ import annotations

import requests

from clients.settings import get_settings
from sandbox import peers as registry
from sandbox.control_client import Sandbox


def test_every_registered_peer_answers_at_its_settings_url(peers: Sandbox) -> None:
    settings = get_settings()
    for server in registry.SERVERS:
        for peer in server.peers:
            assert peers.url(peer.name) == getattr(settings, peer.url_setting)
            assert "faults" in peers.state(peer.name)


def test_reset_clears_faults_and_state(sandbox: Sandbox) -> None:
    sandbox.faults("provider", {"once": ["503"]})
    sandbox.reset()
    assert sandbox.state("provider")["faults"]["once"] == []
    answer = requests.post(sandbox.url("provider") + "/v1/sessions/process", timeout=5, json={
        "session_id": "fixture-1", "target": "captured", "invoice_id": "i", "payment_id": "p",
        "cost": {"amount": 1, "currency": "RUB"}})
    assert answer.status_code == 200
    sandbox.reset()
    assert sandbox.state("provider")["sessions"] == {}


def test_clear_faults_of_one_peer_keeps_the_others(peers: Sandbox) -> None:
    peers.faults("provider", {"once": ["503"]})
    peers.faults("accounter", {"once": ["503"]})
    peers.clear_faults("provider")
    assert peers.state("provider")["faults"]["once"] == []
    assert peers.state("accounter")["faults"]["once"] == ["503"]
    peers.clear_faults()
    assert peers.state("accounter")["faults"]["once"] == []
