"""A message that is not a task message is logged with its queue and a reason, and dropped.

Any service that can publish can put anything on our queues. Before the guard, a body such as
`[]` or a header such as `timelimit: "x"` made the worker's main process exit, and with late
acks the message came back and killed the next worker too.
"""

from __future__ import annotations

import json
import uuid

import pytest
from kombu import Producer

from tests.support import toys
from tests.support.waiting import wait_for
from workers.celery_app import app


def _deep(levels: int) -> bytes:
    """A task body whose kwargs nest `levels` deep, written out (json.dumps would recurse)."""
    return b'[[], {"deep": ' + b'{"k": ' * levels + b"{}" + b"}" * levels + b"}, {}]"


# (body, extra headers). Each body is sent as JSON unless it is bytes.
POISONS = {
    "not-json": (b"hello \xff ", {}),
    "string": ("hello", {}),
    "empty-list": ([], {}),
    "two-items": ([[], {}], {}),
    "four-items": ([[], {}, {}, "extra"], {}),
    "null": (None, {}),
    "number": (123, {}),
    "object": ({}, {}),
    "kwargs-not-object": ([[], [1, 2], {}], {}),
    "args-not-list": ([{"a": 1}, {}, {}], {}),
    "embed-not-object": ([[], {}, "x"], {}),
    "deep-kwargs": (_deep(500), {}),
    "very-deep-kwargs": (_deep(5000), {}),
    "timelimit-string": ([[], {}, {}], {"timelimit": "x"}),
    "timelimit-list-of-strings": ([[], {}, {}], {"timelimit": ["a", "b"]}),
    "eta-garbage": ([[], {}, {}], {"eta": "not a date"}),
    "expires-garbage": ([[], {}, {}], {"expires": {"x": 1}}),
    "retries-string": ([[], {}, {}], {"retries": "many"}),
    "id-not-string": ([[], {}, {}], {"id": ["x"]}),
    "task-not-string": ([[], {}, {}], {"task": 5}),
    "root-id-object": ([[], {}, {}], {"root_id": {"a": 1}}),
    "unknown-task": ([[], {}, {}], {"task": "payments.no_such_task"}),
    "no-task-header": ({"not": "a task"}, {"task": None}),
}


def _publish_raw(queue: str, body, headers: dict, marker: str) -> None:
    base = {"task": toys.STQ_QUEUE, "id": f"poison-{marker}", "lang": "py",
            "argsrepr": marker}
    merged = {k: v for k, v in {**base, **headers}.items() if v is not None}
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    content_type = "application/json"
    with app.connection_for_write() as conn:
        Producer(conn).publish(
            payload, exchange=queue, routing_key=queue, headers=merged,
            content_type=content_type, content_encoding="utf-8", serializer=None,
            delivery_mode=2, retry=True,
        )


def _toy_finishes(marker: str) -> None:
    from tests.runtime.helpers import finished, new_counter

    machine_id = new_counter()
    wait_for(lambda: finished(machine_id), timeout=30,
             what=f"a toy machine to finish after poison {marker}")


@pytest.mark.parametrize("name", list(POISONS))
def test_a_poison_message_is_dropped_and_the_worker_goes_on(running_worker, broker, name):
    body, headers = POISONS[name]
    marker = uuid.uuid4().hex
    pid = running_worker.proc.pid
    _publish_raw("workers", body, headers, marker)

    _toy_finishes(marker)  # the same worker consumed the poison and then went on working
    assert running_worker.alive and running_worker.proc.pid == pid, running_worker.log_tail()
    wait_for(lambda: not broker.messages_with(marker), what="the poison message to be acked")
    assert marker in running_worker.log_path.read_text(errors="replace"), "logged"
