"""The engine's pool: an idle connection the server closed is replaced before it is used."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from workers import db
from workers.db import transaction
from workers.settings import get_settings

pytestmark = pytest.mark.usefixtures("database")


def _backend_pid() -> int:
    with transaction() as tx:
        return tx.conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _terminate(pid: int) -> None:
    """Close a backend from outside the pool, as a server restart or an idle timeout would."""
    other = create_engine(get_settings().database_url, poolclass=NullPool)
    with other.connect() as conn, conn.begin():
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    other.dispose()


def _only_one_pooled_connection() -> int:
    db.dispose_engine()
    return _backend_pid()


def test_an_idle_connection_closed_by_the_server_is_replaced(monkeypatch):
    pid = _only_one_pooled_connection()
    _terminate(pid)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
    pids = {_backend_pid() for _ in range(3)}
    assert pid not in pids, "a transaction ran on a connection the server had closed"


def test_a_recently_used_connection_is_not_pinged(monkeypatch):
    """The other side of the trade: no ping within the idle allowance, so a connection the
    server closed a moment ago fails its transaction once, and the pool replaces it."""
    pid = _only_one_pooled_connection()
    _terminate(pid)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 3600.0)
    with pytest.raises(OperationalError):
        _backend_pid()
    assert _backend_pid() != pid
