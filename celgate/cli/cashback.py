"""`celgate cashback show|retry SERVICE ORDER_ID`: an order's cashback, and the operator's
retry of a failed charge; both print the order as the API answers it (JSON)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(commands: Any) -> None:
    cashback = commands.add_parser("cashback", help="cashback orders").add_subparsers(
        dest="cashback_command", required=True)
    for name, run, text in (
            ("show", show, "an order's cashback and charge status (JSON)"),
            ("retry", retry, "retry the charge of a failed order (operator retry)")):
        p = cashback.add_parser(name, help=text)
        p.add_argument("service")
        p.add_argument("order_id")
        p.set_defaults(run=run)


def show(args: argparse.Namespace) -> None:
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


def retry(args: argparse.Namespace) -> None:
    from cashback.api import OrderView
    from cashback.retry import retry as retry_charge
    from workers.text import check_text

    order = retry_charge(check_text(args.order_id, "order_id"),
                         check_text(args.service, "service"))
    print(OrderView.of(order).model_dump_json(indent=2))
