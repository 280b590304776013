"""The operator CLI (`celgate`): migrations, machines and their repair, STQ rows, sweeping.

Readable tables by default (rich); `--json` where a script wants the raw data.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import workers
from foundation.errors import TypedError

console = Console(highlight=False)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("celgate")
    except PackageNotFoundError:  # pragma: no cover - a bare checkout
        return "unknown"


# --- migrate --------------------------------------------------------------------------------


def migrate(args: argparse.Namespace) -> None:
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    from workers.settings import get_settings

    if args.create or args.fresh:
        created = create_database(drop=args.fresh)
        if created:
            console.print(f"created database {created}")
    config = Config(str(Path(workers.__file__).parent / "migrations" / "alembic.ini"))
    engine = create_engine(get_settings().database_url)

    def current() -> set[str]:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())

    script = ScriptDirectory.from_config(config)
    try:
        before = current()
        if args.check:
            pending = set(script.get_heads()) - before
            if pending:
                console.print(f"migrations pending: at {', '.join(sorted(before)) or 'base'}, "
                              f"newest is {', '.join(sorted(script.get_heads()))}")
                raise SystemExit(1)
            console.print(f"up to date at {', '.join(sorted(before))}")
            return
        command.upgrade(config, "head")
        after = current()
    finally:
        engine.dispose()
    applied = [rev.revision for rev in reversed(list(script.walk_revisions()))
               if _between(script, rev.revision, before, after)]
    if applied:
        console.print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        console.print(f"nothing to apply: already at {', '.join(sorted(after)) or 'base'}")


def _between(script: Any, revision: str, before: set[str], after: set[str]) -> bool:
    """Whether `revision` is an ancestor of (or is) a head now but was not before."""
    def ancestors(heads: set[str]) -> set[str]:
        found: set[str] = set()
        for head in heads:
            found |= {rev.revision for rev in script.iterate_revisions(head, "base")}
        return found
    return revision in ancestors(after) - ancestors(before)


def create_database(*, drop: bool) -> str | None:
    """Create the configured database if it is missing (with `drop`, start from an empty one);
    return its name when it was created."""
    from sqlalchemy import create_engine, text

    from workers.settings import get_settings

    server, name = get_settings().database_url.rsplit("/", 1)
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if drop:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                  {"name": name}).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
                return name
            return None
    finally:
        admin.dispose()


def sweep(_: argparse.Namespace) -> None:
    from workers.tasks import sweep as run_sweep

    published = run_sweep()
    console.print(" ".join(f"{kind}: {count} published" for kind, count in published.items()))


# --- machines -------------------------------------------------------------------------------


def machines_list(args: argparse.Namespace) -> None:
    rows = _list_machines(args.namespace, args.status, args.limit)
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return
    table = Table(title=f"machines ({len(rows)} shown, latest change first)")
    for column in ("namespace", "id", "status", "error", "timer", "updated"):
        table.add_column(column, overflow="fold")
    for row in rows:
        error = row.get("error") or {}
        table.add_row(row["namespace"], row["id"], _status(row["status"]),
                      f"{error.get('code', '')} {error.get('message', '')}".strip()[:80],
                      _when(row.get("timer_due_at")), _when(row.get("updated_at")))
    console.print(table)


def _list_machines(namespace: str | None, status: str | None, limit: int) -> list[dict]:
    from workers.db import transaction
    from workers.operations import machine_rows

    with transaction() as tx:
        return machine_rows(tx, namespace=namespace, status=status, limit=limit)


def show(args: argparse.Namespace) -> None:
    from workers import machines

    machine = machines.get(args.namespace, args.machine_id)
    if args.json:
        print(json.dumps(_raw(machine), default=str, indent=2))
        return
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("machine", f"{machine.namespace}/{machine.id}")
    summary.add_row("machine status", _status(machine.status))
    for label, value in _business_state(machine).items():
        summary.add_row(label, value)
    summary.add_row("timer", _when(machine.timer_due_at) or "none")
    if machine.error:
        summary.add_row("error", f"{machine.error.get('code')}: {machine.error.get('message')}"
                        f" (attempts: {machine.error.get('attempts', '?')})")
    console.print(summary)
    events = Table(title=f"events ({len(machine.history)})")
    events.add_column("id", justify="right")
    events.add_column("occurred at")
    events.add_column("change", overflow="fold")
    for event in machine.history[-args.events:]:
        events.add_row(str(event.id), _when(event.occurred_at), _change(event.body))
    console.print(events)


def _raw(machine: Any) -> dict[str, Any]:
    return {
        "namespace": machine.namespace, "id": machine.id, "status": machine.status,
        "error": machine.error, "timer_due_at": machine.timer_due_at,
        "events": [{"id": e.id, "occurred_at": e.occurred_at, "body": e.body}
                   for e in machine.history],
    }


def _business_state(machine: Any) -> dict[str, str]:
    """What the machine's namespace says of it: a payment's status, activity and amounts."""
    from payments.processor import NAME as PAYMENTS

    if machine.namespace != PAYMENTS or not machine.history:
        return {}
    from payments.views import payment_view

    view = payment_view(machine)
    state = {"payment": f"{view.invoice_id}/{view.payment_id}", "status": view.status,
             "activity": view.activity, "cost": _money(view.cost)}
    if view.captured_cost:
        state["captured"] = _money(view.captured_cost)
    if view.failure:
        state["failure"] = f"{view.failure.get('code')}: {view.failure.get('reason')}"
    return state


def _change(body: dict[str, Any]) -> str:
    """`kind  key=value ...` for an event body of one key (the payment changes), else JSON."""
    if len(body) == 1:
        (kind, value), = body.items()
        if isinstance(value, dict):
            details = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in value.items())
            return f"{kind}  {details}"[:300]
        return f"{kind}  {json.dumps(value, default=str)}"[:300]
    return json.dumps(body, default=str)[:300]


def repair(args: argparse.Namespace) -> None:
    from workers import app, machines

    app.loader.import_default_modules()  # the task modules define the namespaces
    before = machines.get(args.namespace, args.machine_id)
    _request_repair(args)
    console.print(f"repair recorded for {args.namespace}/{args.machine_id} "
                  f"(action {args.action}); watching it for {args.wait:g} s ...")
    # Say what happened, not what was asked: the step runs again and may fail again.
    deadline = time.monotonic() + args.wait
    after = machines.get(args.namespace, args.machine_id)
    while time.monotonic() < deadline and after.status != "failed" and (
            after.timer_due_at is not None or after.history == before.history):
        time.sleep(0.2)
        after = machines.get(args.namespace, args.machine_id)
    state = _business_state(after)
    where = ", ".join(f"{k} {v}" for k, v in state.items() if k in ("status", "activity"))
    new_events = len(after.history) - len(before.history)
    if after.status == "failed":
        console.print(f"[red]failed again[/red]: {after.error.get('code')}: "
                      f"{after.error.get('message')}" + (f" ({where})" if where else ""))
        raise SystemExit(1)
    progress = "still running" if after.timer_due_at is not None else "at rest"
    console.print(f"[green]working[/green], {progress}; {new_events} new event(s)"
                  + (f"; {where}" if where else ""))


def _request_repair(args: argparse.Namespace) -> None:
    from payments.processor import NAME as PAYMENTS
    from workers import machines

    action = args.action.replace("-", "_")
    if args.namespace != PAYMENTS:
        if action != "resume":
            raise TypedError(f"namespace {args.namespace} knows only --action resume",
                             code="unsupported_action")
        machines.repair(machines.registered(args.namespace), args.machine_id)
        return
    # Payments record every repair with who and why, and settle provider sessions.
    from payments.repairs import repair_machine

    if action == "fail_session" and not args.failure_code:
        raise TypedError("fail-session needs --failure-code (and --failure-reason)",
                         code="invalid_repair")
    repair_machine(args.machine_id, action=action, trx_id=args.trx_id,
                   failure_code=args.failure_code, failure_reason=args.failure_reason or "",
                   operator=args.operator, reason=args.reason)


# --- cashback -------------------------------------------------------------------------------


def cashback_show(args: argparse.Namespace) -> None:
    from cashback import orders
    from cashback.api import OrderView
    from cashback.orders import OrderNotFound
    from workers.text import check_text

    # An argument that is not valid UTF-8 arrives with lone surrogates.
    order = orders.get(check_text(args.order_id, "order_id"), check_text(args.service, "service"))
    if order is None:
        raise OrderNotFound(f"no cashback registered for order {args.order_id} of "
                            f"{args.service}")
    print(OrderView.of(order).model_dump_json(indent=2))


def cashback_retry(args: argparse.Namespace) -> None:
    from cashback.api import OrderView
    from cashback.retry import retry
    from workers.text import check_text

    order = retry(check_text(args.order_id, "order_id"), check_text(args.service, "service"))
    print(OrderView.of(order).model_dump_json(indent=2))


# --- stq ------------------------------------------------------------------------------------


def stq_list(args: argparse.Namespace) -> None:
    from workers.db import transaction
    from workers.metrics import OVERDUE_AFTER
    from workers.operations import stq_rows

    with transaction() as tx:
        rows = stq_rows(tx, queue=args.queue, limit=args.limit)
    now = datetime.now(UTC)
    if args.json:
        print(json.dumps([{**vars(r), "state": r.state(now, OVERDUE_AFTER)} for r in rows],
                         default=str, indent=2))
        return
    table = Table(title=f"STQ rows waiting or failed ({len(rows)} shown, most due first)")
    for column in ("queue", "task id", "state", "due", "tries", "reschedules", "last error"):
        table.add_column(column, overflow="fold")
    for r in rows:
        state = r.state(now, OVERDUE_AFTER)
        table.add_row(r.queue, r.task_id, _status(state), _when(r.eta), str(r.exec_tries),
                      str(r.reschedule_counter), (r.last_error or "")[:80])
    console.print(table)


# --- formatting -----------------------------------------------------------------------------

_COLOURS = {"failed": "red", "overdue": "red", "retrying": "yellow", "working": "green",
            "pending": "cyan"}


def _status(status: str) -> str:
    colour = _COLOURS.get(status)
    return f"[{colour}]{status}[/{colour}]" if colour else status


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    delta = (moment - datetime.now(UTC)).total_seconds()
    relative = f"in {delta:.1f} s" if delta >= 0 else f"{-delta:.1f} s ago"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} ({relative})"


def _money(money: Any) -> str:
    return money_text(money.amount, money.currency)


def money_text(amount: int, currency: str) -> str:
    """Minor units in major units with the currency, exactly: (12345, RUB) -> "123.45 RUB"."""
    from foundation.currencies import MINOR_UNITS

    places = MINOR_UNITS.get(currency)
    exponent = 2 if places is None else places
    if exponent == 0:
        return f"{amount} {currency}"
    sign, digits = ("-" if amount < 0 else ""), str(abs(amount)).rjust(exponent + 1, "0")
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]} {currency}"


# --- the parser -----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="celgate", description=__doc__)
    root.add_argument("--version", action="version", version=f"celgate {_version()}")
    commands = root.add_subparsers(dest="command", required=True)

    p = commands.add_parser("migrate", help="apply Alembic migrations and say which")
    p.add_argument("--create", action="store_true",
                   help="create the database first if it does not exist")
    p.add_argument("--fresh", action="store_true",
                   help="drop and recreate the database first (tests, benchmarks)")
    p.add_argument("--check", action="store_true",
                   help="apply nothing; exit 1 when migrations are pending (health checks)")
    p.set_defaults(run=migrate)

    commands.add_parser("sweep", help="publish overdue timers and STQ tasks once").set_defaults(
        run=sweep)

    machines = commands.add_parser("machines", help="list machines").add_subparsers(
        dest="machines_command", required=True)
    p = machines.add_parser("list", help="machines, latest change first, e.g. every failed one")
    p.add_argument("--namespace")
    p.add_argument("--status", choices=["working", "failed"])
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="raw rows as JSON")
    p.set_defaults(run=machines_list)

    p = commands.add_parser("show", help="a machine: status, activity, timer, error, events")
    p.add_argument("namespace")
    p.add_argument("machine_id", help="for payments: <invoice_id>.<payment_id>")
    p.add_argument("--events", type=int, default=50, help="show the last N events [50]")
    p.add_argument("--json", action="store_true", help="the machine and all events as JSON")
    p.set_defaults(run=show)

    p = commands.add_parser("repair", help="re-open a failed machine, then say how it went")
    p.add_argument("namespace")
    p.add_argument("machine_id", help="for payments: <invoice_id>.<payment_id>")
    p.add_argument("--action", default="resume",
                   choices=["resume", "fulfill-session", "fail-session", "fulfill_session",
                            "fail_session"])
    p.add_argument("--trx-id", help="fulfill-session: the provider's transaction id")
    p.add_argument("--failure-code", help="fail-session: the failure code")
    p.add_argument("--failure-reason", help="fail-session: the failure reason")
    p.add_argument("--operator", help="who repairs (recorded in the history)")
    p.add_argument("--reason", help="why (recorded in the history)")
    p.add_argument("--wait", type=float, default=3.0,
                   help="seconds to watch the machine after the repair [3]")
    p.set_defaults(run=repair)

    stq = commands.add_parser("stq", help="STQ rows").add_subparsers(dest="stq_command",
                                                                     required=True)
    p = stq.add_parser("list", help="waiting rows (pending, retrying, overdue) and failed ones, most due first")
    p.add_argument("--queue")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=stq_list)

    cashback = commands.add_parser("cashback", help="cashback orders").add_subparsers(
        dest="cashback_command", required=True)
    for name, run, text in (
            ("show", cashback_show, "an order's cashback and charge status (JSON)"),
            ("retry", cashback_retry, "retry the charge of a failed order (operator retry)")):
        p = cashback.add_parser(name, help=text)
        p.add_argument("service")
        p.add_argument("order_id")
        p.set_defaults(run=run)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except TypedError as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
