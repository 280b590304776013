"""Broker and database restarts under load: the same workers go on and every payment completes.

Each test owns its server (a private Redis or PostgreSQL on a free port), so it may restart it
at will. Redis runs without persistence, as here in production: a restart loses every queued
and unacked message, and the sweeper brings the work back from PostgreSQL.
"""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

from payments import commands
from payments.schemas import RegisterBody
from sandbox.processes import worker as worker_process
from tests.payments.conftest import new_ids, payment_body
from tests.support.private_servers import PrivatePostgres, PrivateRedis, pointed_at
from tests.support.waiting import wait_for
from workers import machines
from workers.tasks import sweep


def _register(ledger) -> str:
    invoice_id, payment_id = new_ids()
    commands.register(RegisterBody.model_validate(payment_body(ledger, invoice_id, payment_id,
                                                                1000)))
    return f"{invoice_id}.{payment_id}"


def _captured(machine_id: str) -> bool:
    try:
        machine = machines.get("payments", machine_id)
    except Exception:  # the database may be down for a moment in the restart test
        return False
    return any(e.body["type"] == "status_changed" and e.body["status"]["status"] == "captured"
               for e in machine.history)


def _sweeping(stop: threading.Event) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            try:
                sweep()
            except Exception:  # the broker or database is restarting; beat would try again
                pass
            time.sleep(0.3)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _commit_plans(peers) -> int:
    return peers.state("accounter")["calls"].get("CommitPlan", 0)


def _run_under_restarts(server, worker, peers, ledger, *, payments: int, restarts: int,
                        seed: int) -> None:
    rng = random.Random(seed)
    committed_before = _commit_plans(peers)
    pids = worker.proc.pid
    stop = threading.Event()
    sweeper = _sweeping(stop)
    ids: list[str] = []
    try:
        for round_ in range(restarts):
            for _ in range(payments // restarts):
                ids.append(_register_retrying(ledger))
            time.sleep(rng.uniform(0.2, 1.0))
            server.restart(down_s=rng.uniform(0.0, 1.5))
        wait_for(lambda: all(_captured(m) for m in ids), timeout=120, interval=0.5,
                 what="every payment captured after the restarts")
    finally:
        stop.set()
        sweeper.join(10)
    assert worker.alive and worker.proc.pid == pids, worker.log_tail()
    assert _commit_plans(peers) - committed_before == len(ids), "one CommitPlan per payment"


def _register_retrying(ledger) -> str:
    """Register a payment, retrying while the database is coming back (the broker being
    down never fails a committed command)."""
    return wait_for(lambda: _try(lambda: _register(ledger)), timeout=30,
                    what="a payment registered")


def _try(action):
    try:
        return action()
    except Exception:
        return None


@pytest.mark.parametrize(("payments", "restarts"), [
    (36, 12),
    # The run that found kombu issue 582: about half the workers died in 19 restarts.
    pytest.param(76, 19, marks=pytest.mark.chaos),
])
def test_workers_survive_redis_restarts(peers, database, ledger, tmp_path, payments, restarts):
    redis_server = PrivateRedis(tmp_path / "redis")
    redis_server.start()
    env = {**os.environ, "BROKER_URL": redis_server.url(0), "REDIS_URL": redis_server.url(1)}
    worker = worker_process(tmp_path / "worker.log", name="redis-restarts", env=env)
    try:
        with pointed_at(broker_url=redis_server.url(0)):
            worker.start()
            _run_under_restarts(redis_server, worker, peers, ledger, payments=payments,
                                restarts=restarts, seed=11)
    finally:
        worker.stop()
        redis_server.stop()


@pytest.mark.chaos
def test_workers_survive_postgres_restarts(peers, ledger, tmp_path):
    from celgate import cli

    postgres = PrivatePostgres()
    postgres.init()
    postgres.start()
    env = {**os.environ, "DATABASE_URL": postgres.url}
    worker = worker_process(tmp_path / "worker.log", name="pg-restarts", env=env)
    try:
        with pointed_at(database_url=postgres.url):
            cli.main(["migrate"])
            worker.start()
            _run_under_restarts(postgres, worker, peers, ledger, payments=20, restarts=4,
                                seed=12)
    finally:
        worker.stop()
        postgres.remove()
