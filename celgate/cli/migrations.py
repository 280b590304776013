"""`celgate migrate`: apply the Alembic migrations (optionally creating the database first)
and say which ones ran."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import workers
from celgate.cli.output import console


def add_commands(commands: Any) -> None:
    p = commands.add_parser("migrate", help="apply Alembic migrations and say which")
    p.add_argument("--create", action="store_true",
                   help="create the database first if it does not exist")
    p.add_argument("--fresh", action="store_true",
                   help="drop and recreate the database first (tests, benchmarks)")
    p.add_argument("--check", action="store_true",
                   help="apply nothing; exit 1 when migrations are pending (health checks)")
    p.set_defaults(run=migrate)


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
