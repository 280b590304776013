"""A malformed or unknown message is rejected once, logged with its code, and acked."""

from __future__ import annotations

import uuid

import pytest

from tests.runtime.helpers import messages_with, rejections
from tests.support import toys
from tests.support.waiting import wait_for
from workers.celery_app import app


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"machine_id": ["not", "a", "string"], "token": "t"}, "malformed_task_kwargs"),
        ({"token": "t"}, "malformed_task_kwargs"),
        ({"machine_id": "no-such-machine-{}", "token": "t"}, "machine_not_found"),
    ],
)
def test_bad_timeout_messages_are_rejected_and_acked(running_worker, broker, kwargs, code):
    marker = uuid.uuid4().hex
    if isinstance(kwargs.get("machine_id"), str):
        kwargs = {**kwargs, "machine_id": kwargs["machine_id"].format(marker)}
    else:
        kwargs = {**kwargs, "marker": marker}
    app.send_task(toys.NAMESPACE.task_name, kwargs=kwargs)
    log = running_worker.log_path
    wait_for(lambda: rejections(log, code, marker), what=f"a logged {code} rejection")
    wait_for(lambda: not messages_with(broker, marker), what="the message to be acked")
    assert len(rejections(log, code, marker)) == 1, "rejected once, not retried"


def test_positional_arguments_are_rejected(running_worker, broker):
    marker = uuid.uuid4().hex
    app.send_task(toys.STQ_QUEUE, args=[marker])
    wait_for(lambda: rejections(running_worker.log_path, "keyword arguments only", marker),
             what="a logged rejection")
    wait_for(lambda: not messages_with(broker, marker), what="the message to be acked")
