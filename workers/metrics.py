"""Prometheus metrics of the runtime (names are in docs/contract.md, "Operations").

Two kinds live here:
- what a worker observes while it runs (step durations, timer lag, sweeper publishes):
  histograms and counters, updated by one call at the spot (the packages above the runtime
  keep their own the same way, each in its own metrics module);
- what the database knows (machines by status, STQ rows by state, overdue timers): gauges
  computed when scraped, from indexes, so a scrape costs the same at a thousand or a million
  machines.

A prefork worker runs tasks in child processes, so their samples go to per-process files of a
fresh directory (prometheus_client's multiprocess mode) and the metrics server of the parent
process adds them up. `serve_worker_metrics` turns that on before the pool forks.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    start_http_server,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Steps take milliseconds to a few seconds; timers may lag by minutes.
_FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)

STEP_DURATION = Histogram(
    "celgate_step_duration_seconds",
    "Time a machine step (one timer of a namespace) took, by outcome: ok, or error when the "
    "attempt failed and was recorded for a retry or for an operator.",
    ["namespace", "step", "outcome"], buckets=_FAST_BUCKETS)
TIMER_LAG = Histogram(
    "celgate_timer_lag_seconds",
    "How late a machine timer ran after its due time.",
    ["namespace"], buckets=_LAG_BUCKETS)
SWEEPER_PUBLISHED = Counter(
    "celgate_sweeper_published",
    "Messages the sweeper published again for timers (machines) and STQ rows (stq) whose "
    "message was missing or presumed lost.",
    ["kind"])


# --- what code calls at the spot -----------------------------------------------------------


def observe_step(namespace: str, step: str, outcome: str, seconds: float) -> None:
    STEP_DURATION.labels(namespace, step, outcome).observe(seconds)


def observe_timer_lag(namespace: str, seconds: float) -> None:
    TIMER_LAG.labels(namespace).observe(max(0.0, seconds))


def sweeper_published(kind: str, count: int) -> None:
    if count:
        SWEEPER_PUBLISHED.labels(kind).inc(count)


# --- gauges read from the database -----------------------------------------------------------

# A timer this late has been missed by its message and by a sweep: worth an operator's look.
OVERDUE_AFTER = timedelta(seconds=30)


class DatabaseGauges(Collector):
    """Machines by status, STQ rows by state, overdue timers; read from PostgreSQL per scrape.

    Machines are counted from `machine_counts`, totals kept by a trigger (migration
    0005_operate): counting a million rows per scrape is what this avoids. STQ rows are pending
    work or failed jobs only (finished rows are deleted) and overdue timers are found through the due-time
    index, so both read only rows that are waiting.
    """

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()  # names only: registration must not query

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from workers.db import transaction
        from workers.operations import machine_totals, overdue_timers, stq_totals

        machines, stq, overdue = self._families()
        with transaction() as tx:
            for (namespace, status), count in sorted(machine_totals(tx).items()):
                machines.add_metric([namespace, status], count)
            for (queue, state), count in sorted(stq_totals(tx).items()):
                stq.add_metric([queue, state], count)
            for namespace, count in sorted(overdue_timers(tx, OVERDUE_AFTER).items()):
                overdue.add_metric([namespace], count)
        yield from (machines, stq, overdue)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("celgate_machines", "Machines by namespace and status "
                              "(working, failed).", labels=["namespace", "status"]),
            GaugeMetricFamily("celgate_stq_tasks", "STQ rows by queue and state: "
                              "pending, retrying (a failed attempt is recorded), overdue "
                              f"(due more than {OVERDUE_AFTER.seconds} s ago) or failed (the "
                              "job raised STQ_RETRY_LIMIT times; kept until added again).",
                              labels=["queue", "state"]),
            GaugeMetricFamily("celgate_timers_overdue", "Machine timers due more than "
                              f"{OVERDUE_AFTER.seconds} s ago that have not run.",
                              labels=["namespace"]),
        )


_database_gauges: DatabaseGauges | None = None


def register_database_gauges() -> None:
    """Add the database gauges to the default registry once (the API serves it)."""
    global _database_gauges
    if _database_gauges is None:
        _database_gauges = DatabaseGauges()
        REGISTRY.register(_database_gauges)


# --- the worker's metrics server -------------------------------------------------------------

_run_dir: str | None = None


def serve_worker_metrics(host: str, port: int) -> None:
    """Serve this worker's metrics (its pool children's included) at http://host:port/metrics.

    Call in the worker's parent process before the pool starts: samples recorded from then on,
    in this process and in every child forked later, go to files of a directory made for this
    run, which the server reads and sums on each scrape.
    """
    global _run_dir
    _run_dir = tempfile.mkdtemp(prefix="celgate-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _run_dir
    # prometheus_client picks its value storage at import; the metrics above have labels, so
    # their storage is created on first use and takes the multiprocess kind from now on.
    values.ValueClass = values.get_value_class()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=_run_dir)
    start_http_server(port, addr=host, registry=registry)
    log.info("worker metrics served", extra={"metrics_url": f"http://{host}:{port}/metrics"})


def remove_run_dir() -> None:
    """Delete this run's sample files when the worker stops (a new run starts from zero)."""
    if _run_dir is not None:
        shutil.rmtree(_run_dir, ignore_errors=True)


def step_done(namespace: str, outcome: str, started: float) -> None:
    """Record a machine step that ran (`processed` or `failed_attempt`, from the runner) under
    the name of the Celery task that ran it: with a task per step, the step's own name."""
    if outcome not in _STEP_OUTCOMES:
        return  # busy, stale or early: no step ran
    from celery import current_task

    name = current_task.name if current_task else None
    step = name.split(".", 1)[-1] if name else "direct"
    observe_step(namespace, step, _STEP_OUTCOMES[outcome], time.perf_counter() - started)


_STEP_OUTCOMES = {"processed": "ok", "failed_attempt": "error"}

