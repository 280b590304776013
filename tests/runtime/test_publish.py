"""Publishing on either broker (CELGATE_TEST_BROKER): batches, countdowns, RabbitMQ queues."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime

import pytest
from kombu import Connection

from tests.support import toys
from tests.support.broker import RabbitBroker
from tests.support.waiting import wait_for
from workers.celery_app import QUEUES, is_rabbitmq
from workers.publish import Message, publish, publish_many
from workers.settings import get_settings

on_rabbitmq = pytest.mark.skipif(not is_rabbitmq(get_settings().broker_url),
                                 reason="RabbitMQ only (make test-rabbitmq)")


def test_publish_many_delivers_every_message_once(running_worker):
    marker = uuid.uuid4().hex
    n = 300
    assert publish_many(Message(toys.RECORD_TASK, {"marker": marker, "index": i})
                        for i in range(n)) == n
    wait_for(lambda: len(toys.recorded(marker)) >= n, timeout=60, what=f"{n} runs")
    time.sleep(0.5)  # a duplicate would land now
    assert sorted(index for index, _ in toys.recorded(marker)) == list(range(n))


def test_publish_many_of_nothing_sends_nothing(running_worker):
    assert publish_many([]) == 0


@pytest.mark.parametrize("countdown", [0.3, 2.0])
def test_a_countdown_is_never_delivered_early(running_worker, countdown):
    marker = uuid.uuid4().hex
    sent = time.time()
    publish(toys.RECORD_TASK, {"marker": marker, "index": 0}, countdown)
    [(_, ran)] = wait_for(lambda: toys.recorded(marker), timeout=20, what="the delayed run")
    assert ran - sent >= countdown - 0.05  # clocks: the same machine, sub-ms apart


def test_countdowns_in_one_batch_each_wait_their_own_time(running_worker):
    marker = uuid.uuid4().hex
    delays = [3.0, 0.0, 1.5, 0.7]
    sent = time.time()
    publish_many(Message(toys.RECORD_TASK, {"marker": marker, "index": i}, delay)
                 for i, delay in enumerate(delays))
    runs = wait_for(lambda: len(toys.recorded(marker)) == 4 and toys.recorded(marker),
                    timeout=30, what="four runs")
    for index, ran in runs:
        assert ran - sent >= delays[index] - 0.05, (index, ran - sent)


def _rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                          text=True, timeout=60).stdout


@on_rabbitmq
def test_contract_queues_are_durable_quorum_queues(broker):
    listing = _rabbitmqctl("list_queues", "-p", broker.vhost, "--formatter", "json",
                           "name", "type", "durable", "arguments")
    queues = {q["name"]: q for q in json.loads(listing)}
    for name in QUEUES:
        assert queues[name]["type"] == "quorum", name
        assert queues[name]["durable"] is True, name


@on_rabbitmq
def test_a_publisher_on_a_fresh_vhost_can_send_a_countdown():
    """Before any worker has declared the delay exchanges, a countdown must not be refused
    (with publisher confirms a publish to a missing exchange raises) and must wait in the
    broker's delay queues."""
    vhost = f"celgate_fresh_{uuid.uuid4().hex[:8]}"
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        marker = uuid.uuid4().hex
        subprocess.run(
            [sys.executable, "-c", "from workers.publish import publish; "
             f"publish('workers.toy_record', {{'marker': '{marker}', 'index': 0}}, 30)"],
            env={**os.environ, "BROKER_URL": url}, check=True, capture_output=True, timeout=60)
        with Connection(url) as connection:
            channel = connection.channel()
            delayed = sum(channel.queue_declare(name, passive=True).message_count
                          for name in RabbitBroker.delay_queue_names())
        assert delayed == 1
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def _celery_message(task_name: str, kwargs: dict, countdown: float | None):
    from workers.celery_app import app

    return app.amqp.as_task_v2("an-id", task_name, (), kwargs, countdown=countdown,
                               reply_to=app.thread_oid, ignore_result=None,
                               create_sent_event=True)


@pytest.mark.parametrize("kwargs", [
    {"machine_id": "m-1", "token": "t" * 32},
    {"order": {"id": 7, "sums": [1, 2]}, "note": "x" * 2000},  # nested, longer than the repr cap
])
@pytest.mark.parametrize("countdown", [None, 12.5])
def test_a_built_message_is_the_one_celery_builds(kwargs, countdown):
    from workers.publish import _Batch

    ours = _Batch().build("counter.timeout", kwargs, countdown)
    theirs = _celery_message("counter.timeout", kwargs, countdown)
    headers = dict(ours.headers, id="an-id", root_id="an-id")
    assert headers.keys() == theirs.headers.keys()
    for name, value in theirs.headers.items():
        if name == "eta" and value is not None:  # built a moment apart
            delta = datetime.fromisoformat(headers[name]) - datetime.fromisoformat(value)
            assert abs(delta.total_seconds()) < 1
        else:
            assert headers[name] == value, name
    assert json.loads(ours.body) == json.loads(json.dumps(theirs.body))
    assert ours.properties["reply_to"] == theirs.properties["reply_to"]
    event = dict(ours.sent_event, uuid="an-id", root_id="an-id")
    for name, value in theirs.sent_event.items():
        if name != "eta":
            assert event[name] == value, name
    assert event.keys() >= {"queue", "exchange", "routing_key"}


def test_a_built_message_passes_the_workers_guard():
    from types import SimpleNamespace

    from workers.consumer import check
    from workers.publish import _Batch

    built = _Batch().build("counter.timeout", {"machine_id": "m-1", "token": "t"}, 3.0)
    check(SimpleNamespace(headers=built.headers, content_type="application/json",
                          body=built.body.encode()))


def test_kwargs_that_are_not_a_mapping_send_nothing(running_worker):
    marker = uuid.uuid4().hex
    with pytest.raises(TypeError):
        publish_many([Message(toys.RECORD_TASK, {"marker": marker, "index": 0}),
                      Message(toys.RECORD_TASK, ["not", "kwargs"])])
    time.sleep(1)
    assert toys.recorded(marker) == []


def test_confirms_are_counted_one_by_one_and_up_to_a_tag():
    from workers.publish import _Confirms

    confirms = _Confirms()
    confirms.ack(2, multiple=False)
    assert confirms.count == 1
    confirms.ack(3, multiple=True)  # 1..3, the 2 already counted
    assert confirms.count == 3
    confirms.ack(5, multiple=False)
    confirms.nack(4, multiple=False)
    assert (confirms.count, confirms.refused) == (5, 1)
