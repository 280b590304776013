"""Log lines of requests: JSON by default, readable on demand, ids on every line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from tests.payments.conftest import Ledger, new_account, new_ids, payment_body
from workers import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_every_line_of_a_request_carries_its_request_id_and_the_access_line_its_ids(
        api, peers, captured):
    ledger = Ledger(*(new_account(peers) for _ in range(4)))
    invoice_id, payment_id = new_ids()
    response = api.post("/v1/payments/register", json=payment_body(ledger, invoice_id,
                                                                   payment_id, 100),
                        headers={"X-Request-Id": "req-42"})
    assert response.status_code == 202
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    ours = [line for line in lines if line.get("request_id") == "req-42"]
    assert ours and len(ours) == len([line for line in lines if "request_id" in line])
    [access] = [line for line in ours if line["logger"] == "celgate.access"]
    assert (access["method"], access["path"], access["status"]) == (
        "POST", "/v1/payments/register", 202)
    assert (access["invoice_id"], access["payment_id"]) == (invoice_id, payment_id)


def test_the_access_line_takes_ids_from_the_path(api, captured):
    api.get("/v1/cashback/eats/order-7")
    [access] = [json.loads(line) for line in captured.getvalue().splitlines()
                if '"celgate.access"' in line]
    assert (access["service"], access["order_id"], access["status"]) == ("eats", "order-7", 404)
    assert access["request_id"]


def test_the_text_format_is_one_readable_line_with_the_ids_after_the_message():
    record = logging.LogRecord("payments.processor", logging.INFO, __file__, 1,
                               "payment step done", None, None)
    with logs.bind(invoice_id="inv-1", payment_id="1"):
        line = logs.TextFormatter().format(record)
    assert line.endswith("INFO  payments.processor: payment step done  invoice_id=inv-1 "
                         "payment_id=1")


@pytest.mark.parametrize("message, data, shown", [
    ("Task %(name)s[%(id)s] received", {"name": "workers.sweep", "id": "1"}, False),
    ("Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s",
     {"name": "workers.sweep", "id": "1", "runtime": 0.1,
      "return_value": "{'machines': 0, 'stq': 0}"}, False),
    ("Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s",
     {"name": "workers.sweep", "id": "1", "runtime": 0.1,
      "return_value": "{'machines': 2, 'stq': 0}"}, True),
    ("Task %(name)s[%(id)s] received", {"name": "payments.capture", "id": "1"}, True),
])
def test_a_sweep_that_sent_nothing_writes_no_line(message, data, shown):
    record = logging.LogRecord("celery.app.trace", logging.INFO, __file__, 1, message, (data,),
                               None)
    record.data = data
    assert logs.QuietSweeps().filter(record) is shown
