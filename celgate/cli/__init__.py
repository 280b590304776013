"""The operator CLI (`celgate`): migrations, machines and their repair, STQ rows, sweeping.

Readable tables by default (rich); `--json` where a script wants the raw data.
"""

from __future__ import annotations

import argparse
import sys

from celgate.cli import cashback, machines, migrations, stq
from celgate.cli.output import money_text
from foundation.errors import TypedError

__all__ = ["main", "money_text", "parser"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("celgate")
    except PackageNotFoundError:  # pragma: no cover - a bare checkout
        return "unknown"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="celgate", description=__doc__)
    root.add_argument("--version", action="version", version=f"celgate {_version()}")
    commands = root.add_subparsers(dest="command", required=True)
    for group in (migrations, machines, stq, cashback):
        group.add_commands(commands)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except TypedError as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        raise SystemExit(2) from None
