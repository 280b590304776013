"""The sweeper under a backlog and with odd rows: it never multiplies work, never stops.

Before, every pass re-sent every due row whose message was older than the redelivery
allowance: with queues lagging longer than that, each pass added a full copy of the backlog
(4,000 messages in one run). And one stored due time that psycopg2 cannot read back (year 0 in
UTC, from `0001-01-01T00:00:00+14:00`) made every sweep fail for everyone.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.runtime.helpers import finished, new_counter, row, steps
from tests.support.waiting import wait_for
from workers import machines, timers
from workers.db import transaction
from workers.settings import get_settings
from workers.tasks import sweep


@pytest.fixture
def short_allowance():
    settings = get_settings()
    before = settings.redelivery_allowance_s
    settings.redelivery_allowance_s = 0.2
    yield 0.2
    settings.redelivery_allowance_s = before


def _messages_for(broker, ids: list[str]) -> int:
    return sum(len(broker.messages_with(machine_id)) for machine_id in ids)


def test_a_backlog_is_not_resent_on_every_pass(running_worker, broker, short_allowance):
    running_worker.stop()  # the queue lags: nothing is consumed for a while
    ids = [new_counter(target=2) for _ in range(20)]
    passes, window = 0, 15 * short_allowance
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        sweep()
        passes += 1
        time.sleep(0.02)
    queued = _messages_for(broker, ids)
    # Each row is re-sent after 1, 2, 4 ... allowances: about log2(window) times, where a
    # re-send on every pass would have queued about `passes` copies of each.
    bound = len(ids) * (2 + math.ceil(math.log2(window / short_allowance)))
    assert passes > 50
    assert len(ids) <= queued <= bound, (queued, bound, passes)

    running_worker.start()
    wait_for(lambda: all(finished(m, 2) for m in ids), timeout=60,
             what="the backlog to drain")
    for machine_id in ids:
        assert steps(machine_id) == [1, 2], "duplicates changed nothing"


@pytest.mark.parametrize("due", [
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),  # year 0 in UTC
    datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-12))),  # year 10000
    datetime(1, 1, 1, tzinfo=UTC),
])
def test_an_odd_due_time_is_kept_readable(due):
    assert datetime(1, 1, 2, tzinfo=UTC) <= timers.in_range(due) <= datetime(9999, 12, 30,
                                                                             tzinfo=UTC)


def test_a_row_psycopg_cannot_read_does_not_stop_the_sweep(running_worker):
    odd = new_counter(target=5, delay_s=3600)
    wait_for(lambda: steps(odd) == [1], what="the first step")
    with transaction() as tx:  # as stored by a version before the due times were bounded
        tx.conn.exec_driver_sql(
            "UPDATE machines SET timer_due_at = '0001-01-01 00:00:00+14',"
            " timer_publish_at = now() - interval '1 hour', timer_sent_at = NULL"
            " WHERE namespace = 'counter' AND id = %(id)s", {"id": odd})
    others = [new_counter(target=1) for _ in range(3)]
    with transaction() as tx:  # their messages are lost: only the sweep brings them
        tx.conn.exec_driver_sql(
            "UPDATE machines SET timer_publish_at = now() - interval '1 hour'"
            " WHERE namespace = 'counter' AND id = ANY(%(ids)s) AND timer_due_at IS NOT NULL",
            {"ids": others})
    assert sweep()["machines"] >= 1  # no exception
    wait_for(lambda: all(finished(m, 1) for m in others), what="the other machines")
    # The odd row was due long ago, so the swept message ran its step at once.
    wait_for(lambda: steps(odd) == [1, 2], what="the odd row's step")
    assert machines.get("counter", odd).timer_due_at is not None
    for machine_id in others:  # the bounds keep a missing timer missing
        assert machines.get("counter", machine_id).timer_due_at is None


def test_one_pass_drains_more_than_a_batch(running_worker, broker):
    """A burst of timers due together goes out in one pass, batch after batch."""
    settings = get_settings()
    before = settings.sweep_batch
    running_worker.stop()
    ids = [new_counter(target=1) for _ in range(12)]
    with transaction() as tx:  # their messages are lost
        tx.conn.exec_driver_sql(
            "UPDATE machines SET timer_publish_at = now() - interval '1 hour'"
            " WHERE namespace = 'counter' AND id = ANY(%(ids)s)", {"ids": ids})
    settings.sweep_batch = 5
    try:
        assert sweep()["machines"] >= 12
    finally:
        settings.sweep_batch = before
    running_worker.start()
    wait_for(lambda: all(finished(m, 1) for m in ids), what="every swept machine")


def _far_counter() -> str:
    """A machine whose next step is a far timer (never sent)."""
    machine_id = new_counter(target=2, delay_s=3600)
    wait_for(lambda: steps(machine_id) == [1], what="the first step")
    return machine_id


def _due_in(machine_id: str, seconds: float) -> datetime:
    """The far timer now falls due in `seconds` and is publishable only from its due time on:
    nothing but the sweep's look-ahead sends it early."""
    due = timers.now() + timedelta(seconds=seconds)
    with transaction() as tx:
        tx.conn.exec_driver_sql(
            "UPDATE machines SET timer_due_at = %(due)s, timer_publish_at = %(due)s,"
            " timer_sent_at = NULL WHERE namespace = 'counter' AND id = %(id)s",
            {"due": due, "id": machine_id})
    return due


def _step_times(machine_id: str) -> list[datetime]:
    return [e.occurred_at for e in machines.get("counter", machine_id).history
            if "step" in e.body]


def test_a_timer_sent_ahead_runs_at_its_due_time_not_before(running_worker):
    assert timers.look_ahead_s() >= 3
    machine_id = _far_counter()
    due = _due_in(machine_id, 3)
    assert sweep()["machines"] >= 1
    claimed = row(machine_id)
    assert claimed.timer_sent_at is not None, "claimed ahead of its publish time"
    # Its re-send counts from the due time: the message gets the whole allowance.
    assert claimed.timer_publish_at >= due + timedelta(seconds=timers.allowance_s())
    sweep()
    assert row(machine_id).timer_sent_at == claimed.timer_sent_at, "not re-sent early"
    wait_for(lambda: steps(machine_id) == [1, 2], timeout=30, what="the timed step")
    assert _step_times(machine_id)[1] >= due


def test_a_lost_message_sent_ahead_is_sent_again(running_worker, broker, short_allowance):
    machine_id = _far_counter()
    running_worker.stop()
    due = _due_in(machine_id, 1)
    sweep()
    first = row(machine_id).timer_sent_at
    assert first is not None and len(broker.messages_with(machine_id)) == 1
    broker.flush()  # the message is lost
    sweep()
    assert row(machine_id).timer_sent_at == first, "no re-send before due + allowance"
    wait_for(lambda: sweep() is not None and row(machine_id).timer_sent_at != first,
             timeout=10, what="the re-send")
    assert timers.now() >= due + timedelta(seconds=short_allowance)
    running_worker.start()
    wait_for(lambda: steps(machine_id) == [1, 2], timeout=30, what="the re-sent step")
