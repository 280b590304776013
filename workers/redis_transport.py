"""kombu's Redis transport with two changes: a Redis client per channel for publishing, and a
restore of unacked messages that can never stop a worker.

Publishing: stock kombu builds a new `redis.Redis` object for every message it puts on a
queue (the connection itself comes from a pool); at our publish rates that object is a large
part of the cost of a publish. A client is thread-safe and holds no connection of its own, so
one per channel serves every put, purge and size query of that channel.

Restoring: when the broker goes away, Celery's consumer closes the connection, and closing a
channel restores the messages it had delivered but not acked. By then the transport may
already have dropped its connection info, so kombu fails building a client (`'NoneType' object
has no attribute 'hostname'`, kombu issue 582); that is not a connection error, Celery treats
it as unrecoverable and the worker process exits for good. About half the workers died that
way in a run of 19 Redis restarts. Losing that restore loses nothing: Redis either still holds
the messages in its unacked hash (they come back after the visibility timeout) or lost them in
the restart (no persistence), and every message of ours is a row in PostgreSQL that the
sweeper re-sends. So a failed restore is logged and the close goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from kombu.transport import redis

log = logging.getLogger(__name__)


class QoS(redis.QoS):
    def restore_unacked(self, client=None):
        try:
            return super().restore_unacked(client)
        except Exception as exc:  # see the module docstring: nothing is lost by skipping it
            log.warning("could not restore unacked messages on close; the visibility timeout "
                        "and the sweeper bring them back",
                        extra={"code": "restore_unacked_failed", "error": repr(exc)[:300]})
            self._delivered.clear()
            return None


class Channel(redis.Channel):
    QoS = QoS
    _sync_client = None

    @contextmanager
    def conn_or_acquire(self, client=None) -> Iterator:
        if client:
            yield client
            return
        if self._sync_client is None:
            self._sync_client = self._create_client()
        yield self._sync_client

    def close(self) -> None:
        self._sync_client = None
        super().close()


class Transport(redis.Transport):
    Channel = Channel
