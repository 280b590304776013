"""The machine runner against real PostgreSQL, Redis and a real worker process."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest

from tests.runtime.helpers import (
    event_ids,
    finished,
    messages_with,
    new_counter,
    row,
    set_timer_due_now,
    steps,
)
from tests.support import toys
from tests.support.waiting import wait_for
from workers import machines
from workers.tasks import sweep

pytestmark = pytest.mark.usefixtures("database")


def test_a_machine_runs_its_steps_through_the_worker(running_worker):
    machine_id = new_counter(target=5)
    wait_for(lambda: finished(machine_id, 5), what="5 steps")
    assert steps(machine_id) == [1, 2, 3, 4, 5]
    assert event_ids(machine_id) == [1, 2, 3, 4, 5, 6]


def test_lost_message_is_brought_back_by_one_sweep(running_worker, broker):
    running_worker.stop()
    machine_id = new_counter(target=2)
    assert messages_with(broker, machine_id), "start publishes the first timer"
    broker.flush()  # the message is lost
    # The sweeper waits for the redelivery allowance before it presumes a message lost.
    with_stamp_aged(machine_id)
    running_worker.start()
    assert sweep()["machines"] >= 1
    wait_for(lambda: finished(machine_id, 2), what="steps after the sweep")
    assert steps(machine_id) == [1, 2]


def with_stamp_aged(machine_id: str) -> None:
    from sqlalchemy import update

    from workers.db import transaction
    from workers.tables import machines as table

    with transaction() as tx:
        tx.conn.execute(
            update(table)
            .where(table.c.id == machine_id)
            .values(timer_sent_at=machines.now() - timedelta(minutes=5),
                    timer_due_at=machines.now() - timedelta(minutes=5),
                    timer_publish_at=machines.now() - timedelta(minutes=4))
        )


def test_a_recent_message_is_not_swept_again(running_worker):
    running_worker.stop()  # keep the message in the broker, unconsumed
    machine_id = new_counter(target=1)
    # Published a moment ago: the sweeper leaves it to the broker.
    sweep()
    assert row(machine_id).timer_sent_at is not None
    before = row(machine_id).timer_sent_at
    sweep()
    assert row(machine_id).timer_sent_at == before


def test_duplicate_and_stale_messages_change_nothing(database):
    machine_id = new_counter(target=2)
    token = row(machine_id).timer_token
    assert machines.handle_timeout(toys.NAMESPACE, machine_id, token) == "processed"
    assert machines.handle_timeout(toys.NAMESPACE, machine_id, token) == "stale"
    assert machines.handle_timeout(toys.NAMESPACE, machine_id, "not-a-token") == "stale"
    assert steps(machine_id) == [1]


def test_racing_deliveries_never_interleave(database):
    """Eight threads deliver every timer at once: each step runs exactly once, in order."""
    machine_id = new_counter(target=6)
    outcomes: list[str] = []
    while row(machine_id).timer_token is not None:
        token = row(machine_id).timer_token
        threads = [
            threading.Thread(
                target=lambda: outcomes.append(
                    machines.handle_timeout(toys.NAMESPACE, machine_id, token)
                )
            )
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert steps(machine_id) == [1, 2, 3, 4, 5, 6]
    assert event_ids(machine_id) == list(range(1, 8))
    assert outcomes.count("processed") == 6
    assert set(outcomes) <= {"processed", "busy", "stale"}


def test_racing_workers_keep_history_gapless(running_worker):
    """The same timer messages duplicated many times through the real worker pool."""
    from workers.timers import publish

    ids = [new_counter(target=8) for _ in range(5)]
    for machine_id in ids:
        for _ in range(5):
            publish(toys.NAMESPACE.task_name,
                    {"machine_id": machine_id, "token": row(machine_id).timer_token or "x"}, 0)
    for machine_id in ids:
        wait_for(lambda m=machine_id: finished(m, 8), what="8 steps")
        assert steps(machine_id) == list(range(1, 9))
        assert event_ids(machine_id) == list(range(1, 10))


def test_a_worker_killed_mid_step_leaves_work_that_is_finished(running_worker, tmp_path):
    machine_id = new_counter(target=3, sleep_s=1.5, marker_dir=str(tmp_path))
    wait_for(lambda: list(tmp_path.glob(f"{machine_id}.2.*")), what="step 2 in progress")
    running_worker.kill()
    assert steps(machine_id) == [1], "the killed step committed nothing"
    running_worker.start()
    # The killed step's message died with the worker; the sweeper sends it again.
    wait_for(lambda: sweep()["machines"] or finished(machine_id), timeout=15, interval=0.5,
             what="the sweeper to resend the lost step")
    wait_for(lambda: finished(machine_id), timeout=30, what="the machine to finish")
    assert steps(machine_id) == [1, 2, 3]
    assert event_ids(machine_id) == [1, 2, 3, 4]


def test_a_long_timer_waits_in_postgres_not_in_redis(running_worker, broker):
    machine_id = new_counter(target=2, delay_s=7 * 24 * 3600)
    wait_for(lambda: steps(machine_id) == [1], what="first step")
    timer = row(machine_id)
    assert timer.timer_due_at - machines.now() > timedelta(days=6)
    assert timer.timer_sent_at is None
    sweep()
    assert not messages_with(broker, machine_id), "a 7-day timer is not parked in Redis"
    set_timer_due_now(machine_id)  # a week passes
    assert sweep()["machines"] >= 1
    wait_for(lambda: finished(machine_id, 2), what="the long timer to fire")


def test_a_failing_step_is_retried_with_backoff(running_worker):
    machine_id = new_counter(target=2, fail_times=2)
    wait_for(lambda: finished(machine_id, 2), what="steps after retries")
    assert steps(machine_id) == [1, 2]
    assert row(machine_id).status == "working"
    assert row(machine_id).error is None


def test_a_step_failing_past_the_limit_marks_the_machine_failed_until_repaired(running_worker):
    outage = f"outage-{uuid.uuid4().hex}"
    toys._redis().set(outage, 1)
    machine_id = new_counter(target=1, fail_while_key=outage)
    wait_for(lambda: row(machine_id).status == "failed", what="machine failed")
    failed = row(machine_id)
    assert failed.error["type"] == "RuntimeError"
    assert failed.error["attempts"] == 4  # MACHINE_RETRY_LIMIT in tests
    assert failed.timer_due_at is None
    with pytest.raises(machines.MachineFailed):
        machines.call(toys.NAMESPACE, machine_id, {"x": 1})
    toys._redis().delete(outage)  # the fault is cleared
    machines.repair(toys.NAMESPACE, machine_id)
    wait_for(lambda: finished(machine_id, 1), what="the repaired machine to finish")
    assert steps(machine_id) == [1]
    assert row(machine_id).status == "working"
    with pytest.raises(machines.MachineNotFailed):
        machines.repair(toys.NAMESPACE, machine_id)


def test_calls_are_answered_and_stored(database):
    machine_id = new_counter(target=0)  # takes no step, whether a worker runs or not
    assert machines.call(toys.NAMESPACE, machine_id, {"hello": "world"}) == 1
    assert machines.get(toys.NAME, machine_id).history[-1].body == {"called": {"hello": "world"}}
    with pytest.raises(machines.MachineNotFound):
        machines.call(toys.NAMESPACE, "no-such-machine", {})
    with pytest.raises(machines.MachineAlreadyExists):
        machines.start(toys.NAMESPACE, machine_id, {"target": 1})
