"""The test run's broker, Redis or RabbitMQ, seen the same way from a test.

Tests lose messages (`flush`) and look for them (`messages_with`) without knowing which broker
runs. On RabbitMQ the run owns a virtual host that it creates empty and deletes at the end.
"""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Protocol

import redis
from kombu import Connection
from kombu.transport.native_delayed_delivery import MAX_LEVEL, level_name

from workers.settings import get_settings


class TestBroker(Protocol):
    def flush(self) -> None:
        """Lose every message the broker holds that is not yet in a worker's hands."""

    def messages_with(self, text: str) -> list[str]:
        """Bodies of the messages waiting in the broker whose body or headers mention
        `text`."""

    def close(self) -> None: ...


class RedisBroker:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.client.flushdb()

    def flush(self) -> None:
        # Redis also drops the messages a worker holds unacked: that is what a lost message is.
        self.client.flushdb()

    def messages_with(self, text: str) -> list[str]:
        messages = []
        for key in self.client.keys("*"):
            kind = self.client.type(key)
            if kind == b"list":
                messages += [json.loads(m) for m in self.client.lrange(key, 0, -1)]
            elif kind == b"hash" and key == b"unacked":  # including ETA messages
                messages += [json.loads(v)[0] for v in self.client.hvals(key)]
        return [_redis_body(m) for m in messages
                if text in _redis_body(m) or text in json.dumps(m.get("headers"))]

    def close(self) -> None:
        self.client.close()


def _redis_body(message: dict) -> str:
    return base64.b64decode(message["body"]).decode(errors="replace")


class RabbitBroker:
    """A fresh virtual host for the run, its queues declared as a worker would declare them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.vhost = url.rsplit("/", 1)[1]
        _rabbitmqctl("delete_vhost", self.vhost, check=False)  # a killed run's leftovers
        _rabbitmqctl("add_vhost", self.vhost)
        _rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        from workers.celery_app import app, declare_topology

        self.queue_names = list(app.amqp.queues) + self.delay_queue_names()
        with Connection(url) as connection:
            declare_topology(app, connection)

    @staticmethod
    def delay_queue_names() -> list[str]:
        """The queues where native delayed delivery parks a countdown, one per bit of it."""
        return [level_name(n) for n in range(MAX_LEVEL + 1)]

    def flush(self) -> None:
        # Messages a worker holds unacked stay: RabbitMQ hands them back if that worker dies.
        with Connection(self.url) as connection:
            channel = connection.channel()
            for name in self.queue_names:
                channel.queue_purge(name)

    def messages_with(self, text: str) -> list[str]:
        """Ready messages only (in the contract queues and the delay queues); a message a
        worker holds unacked is not visible here. Closing the channel without acking puts
        every message read back."""
        found = []
        with Connection(self.url) as connection:
            channel = connection.channel()
            for name in self.queue_names:
                while (message := channel.basic_get(name, no_ack=False)) is not None:
                    body = (message.body.decode(errors="replace")
                            if isinstance(message.body, bytes) else str(message.body))
                    if text in body or text in str(message.headers):
                        found.append(body)
            channel.close()
        return found

    def close(self) -> None:
        _rabbitmqctl("delete_vhost", self.vhost, check=False)


def _rabbitmqctl(*args: str, check: bool = True) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=check, capture_output=True, timeout=60)


def open_broker() -> TestBroker:
    url = get_settings().broker_url
    if url.startswith("redis"):
        return RedisBroker(url)
    return RabbitBroker(url)
