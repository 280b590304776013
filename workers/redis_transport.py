"""Kombu's Redis transport with two fixes: one Redis client per channel, and a worker that
outlives its Redis.

- Stock kombu builds a new `redis.Redis` object for every message it puts on a queue (the
  connection itself comes from a pool), which cost about as much as the LPUSH. A client is
  thread-safe and holds no connection of its own, so one per channel serves every put, purge
  and size query of that channel.
- When the connection to Redis drops, kombu closes the channel and hands the worker's unacked
  messages back to Redis. It does that after it has dropped the channel's connection pool, so
  it fails (kombu 5.7: AttributeError on the missing connection info, or a connection error
  while Redis is down), and the failure ends the whole worker instead of a reconnect. Here the
  hand-back uses the channel's client, and if Redis cannot be reached the messages are left
  to what already covers a lost message: Redis's own unacked hash comes back after the
  visibility timeout, and the sweeper resends from PostgreSQL. A task that finishes after its
  channel closed cannot ack; that is a connection error Celery logs, not a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from kombu.transport import redis
from redis import exceptions as redis_errors

log = logging.getLogger(__name__)


class QoS(redis.QoS):
    def restore_unacked(self, client=None) -> None:
        try:
            super().restore_unacked(client)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            log.warning("unacked messages not handed back to Redis; it is unreachable",
                        extra={"messages": len(self._delivered), "error": str(exc)})
            self._delivered.clear()


class Channel(redis.Channel):
    QoS = QoS
    _sync_client = None

    @contextmanager
    def conn_or_acquire(self, client=None) -> Iterator:
        if client:
            yield client
            return
        if self._sync_client is None:
            if self.connection is None or self.connection.client is None:
                # Closed or closing: an ack of a message from the lost connection ends here, as
                # a connection error Celery logs; the message comes back and runs again.
                raise redis_errors.ConnectionError("channel is closed")
            self._sync_client = self._create_client()
        yield self._sync_client

    def close(self) -> None:
        super().close()
        self._sync_client = None


class Transport(redis.Transport):
    Channel = Channel
