"""The per-process fold cache: the state it returns is always the fold of the stored history.

A step folds only the events after those it folded before, so each case here is a history
that does not simply extend the remembered one: a step that never committed, a stored body
that differs, another machine. The result must equal a fold from the start, errors included.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from payments import decisions, events
from payments.events import InvalidHistory, from_json, to_json
from payments.folds import FoldCache
from payments.state import fold
from tests.fast.payment_data import NOW, WINDOW_S, request
from workers.machine_model import Event, Machine


def machine(bodies: list[dict[str, Any]], machine_id: str = "inv-1.pay-1") -> Machine:
    # The bodies come back from the store as parsed JSON, as the runner reads them.
    stored = json.loads(json.dumps(bodies))
    history = tuple(Event(i + 1, datetime.now(UTC), body) for i, body in enumerate(stored))
    return Machine("payments", machine_id, history, None)


def start_bodies() -> list[dict[str, Any]]:
    return [to_json(change) for change in decisions.start(request(), NOW, WINDOW_S)]


def full_fold(m: Machine):
    return fold(from_json(event.body) for event in m.history)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many stored bodies were read (validated) so far."""
    reads = [0]
    real = events.from_json

    def reading(body: dict[str, Any]):
        reads[0] += 1
        return real(body)
    monkeypatch.setattr("payments.folds.from_json", reading)
    return reads


def a_step(cache: FoldCache, bodies: list[dict[str, Any]]):
    """The first body stored and folded; the rest what a step appends (as the processor
    reports it, before the store's JSON round trip)."""
    stored, changes = bodies[:1], [from_json(body) for body in bodies[1:]]
    state = cache.state_of(machine(stored))
    after = fold(changes, state)
    cache.appended(machine(stored), [to_json(change) for change in changes], after)
    return stored, state, after


def test_a_committed_step_is_not_folded_again(counted: list[int]) -> None:
    cache, bodies = FoldCache(), start_bodies()
    _stored, _state, after = a_step(cache, bodies)
    assert counted[0] == 1
    assert cache.state_of(machine(bodies)) == after == full_fold(machine(bodies))
    assert counted[0] == 1  # nothing read again


def test_an_uncommitted_step_leaves_the_stored_fold(counted: list[int]) -> None:
    cache, bodies = FoldCache(), start_bodies()
    stored, state, _after = a_step(cache, bodies)
    # The step's transaction rolled back: the store holds the first body only.
    assert cache.state_of(machine(stored)) == state == full_fold(machine(stored))


def test_events_stored_by_another_process_are_folded_on_top(counted: list[int]) -> None:
    cache, bodies = FoldCache(), start_bodies()
    state = cache.state_of(machine(bodies[:1]))
    assert state == full_fold(machine(bodies[:1]))
    assert cache.state_of(machine(bodies)) == full_fold(machine(bodies))
    assert counted[0] == len(bodies)  # the first body once, the rest once


def test_a_changed_stored_body_is_folded_from_the_start(counted: list[int]) -> None:
    cache, bodies = FoldCache(), start_bodies()
    cache.state_of(machine(bodies))
    changed = json.loads(json.dumps(bodies))
    changed[0]["shop_id"] = "another-shop"
    assert cache.state_of(machine(changed)).started.shop_id == "another-shop"
    broken = json.loads(json.dumps(bodies))
    broken[0]["v"] = 99
    with pytest.raises(InvalidHistory):
        cache.state_of(machine(broken))


def test_machines_do_not_share_a_fold() -> None:
    cache, bodies = FoldCache(), start_bodies()
    cache.state_of(machine(bodies, "inv-1.pay-1"))
    assert cache.state_of(machine(bodies[:1], "inv-1.pay-2")) == full_fold(machine(bodies[:1]))


def test_the_least_recently_used_machine_is_dropped(counted: list[int]) -> None:
    cache, bodies = FoldCache(size=2), start_bodies()
    for name in ("a.1", "b.1", "a.1", "c.1"):  # b is the least recently used when c comes
        cache.state_of(machine(bodies, name))
    reads = counted[0]
    cache.state_of(machine(bodies, "a.1"))
    assert counted[0] == reads
    cache.state_of(machine(bodies, "b.1"))
    assert counted[0] == reads + len(bodies)
