"""The operator CLI (`celgate`): migrations, sweeping by hand, machine inspection and repair."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import workers
from workers.errors import TypedError


def migrate(args: argparse.Namespace) -> None:
    from alembic import command
    from alembic.config import Config

    if args.create or args.fresh:
        create_database(drop=args.fresh)
    config = Config(str(Path(workers.__file__).parent / "migrations" / "alembic.ini"))
    command.upgrade(config, "head")


def create_database(*, drop: bool) -> None:
    """Create the configured database if it is missing; with `drop`, start from an empty one."""
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
    finally:
        admin.dispose()


def sweep(_: argparse.Namespace) -> None:
    from workers.tasks import sweep as run_sweep

    print(json.dumps(run_sweep()))


def show(args: argparse.Namespace) -> None:
    from workers import machines

    machine = machines.get(args.namespace, args.machine_id)
    print(json.dumps(
        {
            "namespace": machine.namespace,
            "id": machine.id,
            "status": machine.status,
            "error": machine.error,
            "timer_due_at": machine.timer_due_at,
            "events": [{"id": e.id, "occurred_at": e.occurred_at, "body": e.body}
                       for e in machine.history],
        },
        default=str, indent=2,
    ))


def repair(args: argparse.Namespace) -> None:
    from workers import app, machines

    app.loader.import_default_modules()  # the task modules define the namespaces
    namespace = machines.registered(args.namespace)
    if args.namespace == "payments":
        # Payments record every repair with who and why, and settle provider sessions.
        from payments.repairs import repair_machine

        repair_machine(args.machine_id, action=args.action, trx_id=args.trx_id,
                       failure_code=args.failure_code, failure_reason=args.failure_reason,
                       operator=args.operator, reason=args.reason)
    elif args.action != "resume":
        raise SystemExit(f"{args.namespace} machines only resume")
    else:
        machines.repair(namespace, args.machine_id)
    print(f"repaired {args.namespace}/{args.machine_id} ({args.action})")


def cashback_show(args: argparse.Namespace) -> None:
    from cashback import orders
    from cashback.api import OrderView
    from cashback.orders import OrderNotFound
    from cashback.text import check_text

    # An argument that is not valid UTF-8 arrives with lone surrogates.
    order = orders.get(check_text(args.order_id, "order_id"), check_text(args.service, "service"))
    if order is None:
        raise OrderNotFound(f"no cashback registered for order {args.order_id} of "
                            f"{args.service}")
    print(OrderView.of(order).model_dump_json(indent=2))


def cashback_retry(args: argparse.Namespace) -> None:
    from cashback.api import OrderView
    from cashback.retry import retry
    from cashback.text import check_text

    order = retry(check_text(args.order_id, "order_id"), check_text(args.service, "service"))
    print(OrderView.of(order).model_dump_json(indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="celgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    migrate_parser = commands.add_parser("migrate", help="apply Alembic migrations")
    migrate_parser.add_argument("--create", action="store_true",
                                help="create the database first if it does not exist")
    migrate_parser.add_argument("--fresh", action="store_true",
                                help="drop and recreate the database first (tests, benchmarks)")
    migrate_parser.set_defaults(run=migrate)
    commands.add_parser("sweep", help="publish overdue timers and STQ tasks once").set_defaults(
        run=sweep)
    show_parser = commands.add_parser("show", help="print a machine and its events")
    show_parser.add_argument("namespace")
    show_parser.add_argument("machine_id")
    show_parser.set_defaults(run=show)
    repair_parser = commands.add_parser("repair", help="repair a machine marked failed")
    repair_parser.add_argument("namespace")
    repair_parser.add_argument("machine_id")
    repair_parser.add_argument("--action", default="resume",
                               choices=["resume", "fulfill_session", "fail_session"],
                               help="payments: settle a failed provider session by hand")
    repair_parser.add_argument("--trx-id", help="fulfill_session: the provider's transaction")
    repair_parser.add_argument("--failure-code", help="fail_session: the payment's failure code")
    repair_parser.add_argument("--failure-reason", default="",
                               help="fail_session: the failure's reason")
    repair_parser.add_argument("--operator", help="who repairs (recorded in the history)")
    repair_parser.add_argument("--reason", help="why (recorded in the history)")
    repair_parser.set_defaults(run=repair)
    cashback_parser = commands.add_parser("cashback", help="cashback orders")
    cashback_commands = cashback_parser.add_subparsers(dest="cashback_command", required=True)
    for name, run, text in (
            ("show", cashback_show, "print an order's cashback and charge status"),
            ("retry", cashback_retry, "retry the charge of a failed order (operator retry)")):
        order_parser = cashback_commands.add_parser(name, help=text)
        order_parser.add_argument("service")
        order_parser.add_argument("order_id")
        order_parser.set_defaults(run=run)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except TypedError as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
