"""Kombu's Redis transport, with one Redis client per channel for publishing.

Stock kombu builds a new `redis.Redis` object for every message it puts on a queue (the
connection itself comes from a pool); at our publish rates that object is a large part of the
cost of a publish. A client is thread-safe and holds no connection of its own, so one per
channel serves every put, purge and size query of that channel.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kombu.transport import redis


class Channel(redis.Channel):
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
