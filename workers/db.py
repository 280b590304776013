"""Database engine and transactions.

Everything durable lives in PostgreSQL and is written through SQLAlchemy Core: the runtime's
statements are few and hot, and explicit SQL keeps their cost visible.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError

from workers.settings import get_settings

log = logging.getLogger(__name__)

metadata = MetaData()

# A pooled connection idle longer than this is pinged before use (a server restart or an idle
# timeout may have closed it). A busy worker reuses connections within milliseconds, and a ping
# on every checkout was one extra round trip per transaction; a connection that dies while in
# use fails its transaction whether or not it was pinged, and the pool then replaces them all.
PING_AFTER_IDLE_S = 2.0

_engine: Engine | None = None
_engine_pid: int | None = None


def get_engine() -> Engine:
    """The process's engine; a forked child (Celery prefork) gets a fresh pool of its own."""
    global _engine, _engine_pid
    if _engine is None or _engine_pid != os.getpid():
        _engine = create_engine(
            get_settings().database_url,
            pool_size=5,
            max_overflow=10,
            future=True,
        )
        _ping_idle_connections(_engine)
        _engine_pid = os.getpid()
    return _engine


def _ping_idle_connections(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _idle_from(dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, proxy) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool discards this connection and checks out another (a new one if need be).
            raise DisconnectionError("pooled connection is gone") from exc


def dispose_engine() -> None:
    global _engine
    if _engine is not None:
        _engine.dispose()
        _engine = None


@dataclass
class Tx:
    """An open transaction plus the work to do once it has committed (publishing messages)."""

    conn: Connection
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)


@contextmanager
def transaction() -> Iterator[Tx]:
    """One database transaction; callbacks registered with `after_commit` run after COMMIT.

    A message published before the commit could be consumed before the row it points to is
    visible, so every publication goes through `after_commit`. What was committed stands even
    when publishing fails (the broker is down): every such message is also a row with a sent
    mark that the sweeper re-sends, so the failure is logged and the caller answers as for a
    success. The first failure skips the rest: they would wait on the same broken broker.
    """
    engine = get_engine()
    with engine.connect() as conn:
        tx = Tx(conn)
        with conn.begin():
            yield tx
        for done, callback in enumerate(tx._after_commit):
            try:
                callback()
            except Exception:
                log.warning("publishing after commit failed; the sweeper will re-send",
                            exc_info=True,
                            extra={"code": "publish_failed",
                                   "skipped": len(tx._after_commit) - done - 1})
                break
