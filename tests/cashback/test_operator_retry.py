"""An operator's retry of a failed order (`POST /v1/cashback/{service}/{order_id}/retry` and
`celgate cashback retry`): charged again under `<order_id>/v<version>/manual/<n>`, once, with
one operation allowed past CASHBACK_RETRY_MAX_OPERATIONS."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from cashback.settings import get_settings
from sandbox.processes import ROOT
from tests.cashback.conftest import SERVICE, register, view, wait_status
from tests.support.waiting import wait_for


def seed_exhausted(transactions, order_id: str) -> None:
    """An invoice whose cashback failed with as many operations as the policy allows, all of
    them this order's version 1 and its retries."""
    limit = get_settings().cashback_retry_max_operations
    ids = [f"{order_id}/v1"] + [f"{order_id}/v1/retry/{n}" for n in range(1, limit)]
    transactions.seed(order_id, cashback={
        "status": "failed", "version": limit + 1,
        "operations": [{"operation_id": op, "status": "failed"} for op in ids]})


def retry(api, order_id: str):
    return api.post(f"/v1/cashback/{SERVICE}/{order_id}/retry")


def test_a_failed_order_retried_by_an_operator_ends_charged_under_the_manual_id_once(
        running_worker, api, transactions, new_order_id):
    seed_exhausted(transactions, new_order_id)
    register(api, new_order_id, {"user": "100"})
    failed = wait_status(api, new_order_id, "failed")
    assert failed["error"]["code"] == "retries_exhausted"
    assert transactions.updates(new_order_id, outcome=None) == []

    response = retry(api, new_order_id)

    assert response.status_code == 202, response.text
    assert response.json()["charge_status"] == "pending"
    assert response.json()["error"] is None
    charged = wait_status(api, new_order_id, "charged")
    manual_id = f"{new_order_id}/v1/manual/1"
    assert charged["last_operation_id"] == manual_id
    assert charged["version"] == 1, "a retry is not a new version"
    [sent] = transactions.updates(new_order_id, outcome=None)
    assert (sent["operation_id"], sent["outcome"]) == (manual_id, "accepted")
    invoice = transactions.invoice(new_order_id)
    assert [op["operation_id"] for op in invoice["cashback"]["operations"]].count(manual_id) == 1
    assert invoice["cashback"]["status"] == "success"

    again = retry(api, new_order_id)
    assert (again.status_code, again.json()["code"]) == (409, "order_not_failed")


def test_a_manual_try_that_fails_again_fails_the_order_and_a_second_retry_gets_the_next_id(
        running_worker, api, transactions, new_order_id):
    seed_exhausted(transactions, new_order_id)
    transactions.settings(outcomes=["failed"], outcome="success")
    register(api, new_order_id, {"user": "100"})
    wait_status(api, new_order_id, "failed")

    retry(api, new_order_id).raise_for_status()
    wait_for(lambda: transactions.updates(new_order_id), what="the first manual try")
    refailed = wait_status(api, new_order_id, "failed")
    assert refailed["error"]["code"] == "retries_exhausted"
    retry(api, new_order_id).raise_for_status()

    charged = wait_status(api, new_order_id, "charged")
    assert charged["last_operation_id"] == f"{new_order_id}/v1/manual/2"
    assert [u["operation_id"] for u in transactions.updates(new_order_id)] == [
        f"{new_order_id}/v1/manual/1", f"{new_order_id}/v1/manual/2"]


def test_a_new_version_after_a_manual_retry_goes_out_under_its_plain_id(
        running_worker, api, transactions, new_order_id):
    transactions.seed(new_order_id, user_ip=None)  # fails: transactions needs a user ip
    register(api, new_order_id, {"user": "100"})
    assert wait_status(api, new_order_id, "failed")["error"]["code"] == "no_user_ip"
    transactions.seed(new_order_id)
    retry(api, new_order_id).raise_for_status()
    wait_status(api, new_order_id, "charged")

    register(api, new_order_id, {"user": "60"})

    wait_for(lambda: len(transactions.updates(new_order_id)) == 2, what="the second update")
    assert [u["operation_id"] for u in transactions.updates(new_order_id)] == [
        f"{new_order_id}/v1/manual/1", f"{new_order_id}/v2"]


@pytest.mark.parametrize("status", ["pending", "charged"])
def test_an_order_that_is_not_failed_is_409(running_worker, api, transactions, new_order_id,
                                            status):
    if status == "charged":
        transactions.seed(new_order_id)
    else:  # an invoice busy with another operation keeps the order pending
        transactions.seed(new_order_id, cashback={"status": "in-progress", "version": 2})
    register(api, new_order_id, {"user": "1"})
    wait_status(api, new_order_id, status)

    response = retry(api, new_order_id)

    assert (response.status_code, response.json()["code"]) == (409, "order_not_failed")
    assert view(api, new_order_id)["charge_status"] == status


def test_retry_of_an_unknown_order_is_404(api, new_order_id):
    response = retry(api, new_order_id)

    assert (response.status_code, response.json()["code"]) == (404, "order_not_found")


def celgate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "celgate.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_the_cli_shows_and_retries_an_order(running_worker, api, transactions, new_order_id):
    transactions.seed(new_order_id, user_ip=None)
    register(api, new_order_id, {"user": "100"})
    wait_status(api, new_order_id, "failed")
    transactions.seed(new_order_id)

    shown = celgate("cashback", "show", SERVICE, new_order_id)
    retried = celgate("cashback", "retry", SERVICE, new_order_id)

    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["charge_status"] == "failed"
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["charge_status"] == "pending"
    charged = wait_status(api, new_order_id, "charged")
    assert charged["last_operation_id"] == f"{new_order_id}/v1/manual/1"
    again = celgate("cashback", "retry", SERVICE, new_order_id)
    assert again.returncode == 2
    assert again.stderr.startswith("order_not_failed:")
    unknown = celgate("cashback", "show", SERVICE, new_order_id + "-none")
    assert (unknown.returncode, unknown.stderr.split(":")[0]) == (2, "order_not_found")


def test_two_operators_retrying_at_once_make_one_retry(running_worker, api, transactions,
                                                       new_order_id):
    seed_exhausted(transactions, new_order_id)
    register(api, new_order_id, {"user": "100"})
    wait_status(api, new_order_id, "failed")
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def operator() -> None:
        barrier.wait()
        statuses.append(retry(api, new_order_id).status_code)

    threads = [threading.Thread(target=operator) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [202, 409]
    charged = wait_status(api, new_order_id, "charged")
    assert charged["last_operation_id"] == f"{new_order_id}/v1/manual/1"
    assert [u["operation_id"] for u in transactions.updates(new_order_id, outcome=None)] == [
        f"{new_order_id}/v1/manual/1"]
