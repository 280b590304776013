"""STQ-style tasks: one pending task per id, durable reschedules, lost messages swept back."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.runtime.helpers import messages_with
from tests.support import toys
from tests.support.waiting import wait_for
from workers import stq
from workers.db import transaction
from workers.tables import stq_tasks
from workers.tasks import sweep
from workers.timers import allowance_s, publish

pytestmark = pytest.mark.usefixtures("database")


def add(name: str, **kwargs) -> None:
    with transaction() as tx:
        stq.add(tx, toys.STQ_QUEUE, name, {"name": name, **kwargs})


def test_a_task_reschedules_itself_then_finishes(running_worker):
    name = uuid.uuid4().hex
    add(name, reschedules=3)
    wait_for(lambda: stq.pending(toys.STQ_QUEUE, name) is None and toys.runs(name),
             what="the task to finish")
    assert toys.runs(name) == ["0:0", "1:0", "2:0", "3:0"]


def test_adding_a_pending_task_again_updates_it_without_a_duplicate(running_worker):
    running_worker.stop()
    name = uuid.uuid4().hex
    add(name, reschedules=5)
    add(name, reschedules=0)  # same id: replaces kwargs, rotates the token
    pending = stq.pending(toys.STQ_QUEUE, name)
    assert pending.kwargs["reschedules"] == 0
    running_worker.start()
    wait_for(lambda: stq.pending(toys.STQ_QUEUE, name) is None, what="the task to finish")
    assert toys.runs(name) == ["0:0"], "the older message was stale: one run only"


def test_a_lost_message_is_brought_back_by_the_sweeper(running_worker, broker):
    running_worker.stop()
    name = uuid.uuid4().hex
    add(name)
    broker.flush()
    with transaction() as tx:  # the redelivery allowance has passed
        tx.conn.execute(
            update(stq_tasks)
            .where(stq_tasks.c.task_id == name)
            .values(sent_at=stq.now() - timedelta(minutes=5), eta=stq.now() - timedelta(minutes=5),
                    publish_at=stq.now() - timedelta(minutes=4))
        )
    running_worker.start()
    assert sweep()["stq"] >= 1
    wait_for(lambda: toys.runs(name), what="the swept task to run")
    wait_for(lambda: stq.pending(toys.STQ_QUEUE, name) is None, what="the task to finish")
    assert toys.runs(name) == ["0:0"]


def test_a_message_from_another_service_without_token_runs_the_task(running_worker):
    from workers.celery_app import app

    name = uuid.uuid4().hex
    app.send_task(toys.STQ_QUEUE, kwargs={"name": name})
    wait_for(lambda: toys.runs(name), what="the external message to run the task")
    wait_for(lambda: stq.pending(toys.STQ_QUEUE, name) is None, what="the task to finish")
    assert toys.runs(name) == ["0:0"]


def test_duplicate_messages_run_the_task_once(running_worker, broker):
    running_worker.stop()
    name = uuid.uuid4().hex
    add(name)
    assert len(messages_with(broker, name)) == 1
    duplicate = {"name": name, "reschedules": 0, "delay_s": 0.0, stq.TOKEN_KEY: token_of(name)}
    for _ in range(4):
        publish(toys.STQ_QUEUE, duplicate, 0)
    running_worker.start()
    wait_for(lambda: stq.pending(toys.STQ_QUEUE, name) is None, what="the task to finish")
    wait_for(lambda: not messages_with(broker, name), what="duplicates to be consumed")
    assert toys.runs(name) == ["0:0"]


def token_of(name: str) -> str:
    with transaction() as tx:
        return tx.conn.execute(
            select(stq_tasks.c.token).where(stq_tasks.c.task_id == name)
        ).scalar_one()


def test_a_job_whose_connection_dies_is_not_recorded_on_the_broken_transaction():
    """A database restart mid-job: the job's own error comes out (not PendingRollbackError
    from recording a retry on the dead transaction), the row is left as it was, and the same
    message runs the job once the database answers again."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    name = uuid.uuid4().hex
    with transaction() as tx:
        stq.add(tx, "workers.toy_unpublished", name, {"name": name})
        token = tx.conn.execute(select(stq_tasks.c.token).where(
            stq_tasks.c.task_id == name)).scalar_one()

    def dies(tx, task):
        tx.conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return stq.Finish()

    with pytest.raises(DBAPIError) as raised:
        stq.execute("workers.toy_unpublished", name, {"name": name}, token, dies)
    assert raised.value.connection_invalidated
    with transaction() as tx:
        row = tx.conn.execute(select(stq_tasks).where(stq_tasks.c.task_id == name)).one()
    assert (row.token, row.exec_tries) == (token, 0)

    outcome = stq.execute("workers.toy_unpublished", name, {"name": name}, token,
                          lambda tx, task: stq.Finish())
    assert outcome == "finished"


# --- a job that keeps raising ----------------------------------------------------------------

UNPUBLISHED = "workers.toy_unpublished"  # no worker consumes it: only this test runs its jobs


def stored(name: str):
    with transaction() as tx:
        return tx.conn.execute(select(stq_tasks).where(stq_tasks.c.task_id == name)).one()


def failed_gauge(queue: str) -> float:
    from workers.metrics import DatabaseGauges

    return sum(sample.value for family in DatabaseGauges().collect() for sample in family.samples
               if family.name == "celgate_stq_tasks"
               and sample.labels == {"queue": queue, "state": "failed"})


def test_a_job_that_always_raises_fails_after_the_limit_is_not_swept_and_shows(monkeypatch):
    from workers.settings import get_settings

    monkeypatch.setattr(get_settings(), "stq_retry_limit", 3)
    name = uuid.uuid4().hex
    with transaction() as tx:
        stq.add(tx, UNPUBLISHED, name, {"name": name})
    failed_before = failed_gauge(UNPUBLISHED)
    runs = []

    def raises(tx, task):
        runs.append(task.exec_tries)
        raise RuntimeError("the job keeps breaking")

    outcomes = [stq.execute(UNPUBLISHED, name, {"name": name}, stored(name).token, raises)
                for _ in range(3)]

    assert outcomes == ["failed_attempt", "failed_attempt", "failed"]
    assert runs == [0, 1, 2]
    row = stored(name)
    assert row.failed_at is not None and row.exec_tries == 3
    assert row.publish_at is None and "the job keeps breaking" in row.last_error
    # Its last message (or a duplicate of it) runs nothing more.
    assert stq.execute(UNPUBLISHED, name, {"name": name}, row.token, raises) == "stale"
    assert runs == [0, 1, 2]

    # Long overdue, yet the sweeper leaves it alone (the batch takes every due row there is).
    with transaction() as tx:
        tx.conn.execute(update(stq_tasks).where(stq_tasks.c.task_id == name)
                        .values(eta=stq.now() - timedelta(days=1)))
    stq.sweep_due(limit=1_000_000)
    assert stored(name).sent_at is None and stored(name).publish_at is None

    assert failed_gauge(UNPUBLISHED) == failed_before + 1


def test_a_failed_task_added_again_starts_over(monkeypatch):
    from workers.settings import get_settings

    monkeypatch.setattr(get_settings(), "stq_retry_limit", 1)
    name = uuid.uuid4().hex
    with transaction() as tx:
        stq.add(tx, UNPUBLISHED, name, {"name": name})

    def raises(tx, task):
        raise RuntimeError("broken")

    assert stq.execute(UNPUBLISHED, name, {"name": name}, stored(name).token, raises) == "failed"
    with transaction() as tx:
        stq.add(tx, UNPUBLISHED, name, {"name": name})
    row = stored(name)
    assert (row.failed_at, row.exec_tries) == (None, 0) and row.publish_at is not None

    assert stq.execute(UNPUBLISHED, name, {"name": name}, row.token,
                       lambda tx, task: stq.Finish()) == "finished"


def test_a_transient_failure_is_waited_out_past_the_limit(monkeypatch):
    """A peer that is down for long is not the job's fault: its row keeps retrying (at most
    STQ_RETRY_MAX_S apart), where a job raising anything else would have failed."""
    from foundation.errors import TypedError
    from workers.settings import get_settings

    class PeerDown(TypedError):
        code = "peer_down"
        transient = True

    monkeypatch.setattr(get_settings(), "stq_retry_limit", 2)
    name = uuid.uuid4().hex
    with transaction() as tx:
        stq.add(tx, UNPUBLISHED, name, {"name": name})

    def peer_down(tx, task):
        raise PeerDown("transactions: 503")

    outcomes = [stq.execute(UNPUBLISHED, name, {"name": name}, stored(name).token, peer_down)
                for _ in range(4)]

    assert outcomes == ["failed_attempt"] * 4
    row = stored(name)
    assert row.failed_at is None and row.exec_tries == 4 and row.publish_at is not None


def test_a_far_task_is_sent_ahead_runs_at_its_due_time_and_is_not_sent_again(running_worker):
    """The STQ sweep shares the machines' look-ahead: a row never sent is published up to two
    beat intervals before it is due, with a countdown to its eta, and not re-sent on the next
    pass."""
    name = uuid.uuid4().hex
    with transaction() as tx:
        stq.add(tx, toys.STQ_QUEUE, name, {"name": name}, delay_s=3600)
    eta = stq.now() + timedelta(seconds=3)
    with transaction() as tx:  # now due in 3 s, publishable only from then on, never sent
        tx.conn.execute(update(stq_tasks).where(stq_tasks.c.task_id == name)
                        .values(eta=eta, publish_at=eta, sent_at=None))

    assert sweep()["stq"] >= 1
    claimed = _row(name)
    assert claimed.sent_at is not None, "claimed ahead of its publish time"
    assert claimed.publish_at >= eta + timedelta(seconds=allowance_s())
    sweep()
    assert _row(name).sent_at == claimed.sent_at, "not re-sent early"
    assert toys.runs(name) == [], "not run before its eta"
    wait_for(lambda: toys.runs(name), timeout=30, what="the task at its eta")
    assert stq.now() >= eta
    wait_for(lambda: stq.pending(toys.STQ_QUEUE, name) is None, what="the task to finish")
    assert toys.runs(name) == ["0:0"]


def _row(name: str):
    with transaction() as tx:
        return tx.conn.execute(select(stq_tasks).where(stq_tasks.c.task_id == name)).one()
