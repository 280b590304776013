"""Publishing task messages: Celery's protocol-2 message, built here, sent by a pooled producer.

`app.send_task` costs about half a millisecond a message on this machine: it looks the task up,
routes it, re-declares its queue, renders the kwargs with `saferepr`, wraps every publish in a
retry and sends the "task-sent" event through a second round of the same. A burst of ten
thousand timers paid that ten thousand times. Here a batch resolves what is the same for all of
its messages once (routes, the parent task, the event dispatcher, the declarations), builds
each message as Celery's `as_task_v2` would (tests/runtime/test_publish.py compares the two),
and publishes them all with one producer from the app's pool: on Redis in pipelines (kombu's
publish batch), on RabbitMQ each confirmed by the broker. Single messages (a step's next timer)
take the same path, so there is one way to publish.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from amqp.exceptions import MessageNacked
from celery.events import Event
from celery.utils.nodenames import anon_nodename
from celery.utils.quorum_queues import detect_quorum_queues
from celery.utils.saferepr import saferepr
from celery.utils.time import utcoffset
from kombu.exceptions import BatchPublishError
from kombu.transport.native_delayed_delivery import calculate_routing_key
from kombu.utils.json import dumps

from workers.celery_app import app, declare_topology, is_rabbitmq


class Message(NamedTuple):
    task_name: str
    kwargs: dict[str, Any]
    countdown: float | None = None


_topology_lock = threading.Lock()
_topology_declared = False


def _ensure_topology() -> None:
    """On RabbitMQ, declare the queues and delay exchanges once per process: a publisher can
    run before any worker has declared them (a fresh virtual host), and a countdown sent to a
    delay exchange that does not exist would be refused."""
    global _topology_declared
    if _topology_declared or not is_rabbitmq(app.conf.broker_url):
        return
    with _topology_lock:
        if not _topology_declared:
            with app.connection_for_write() as connection:
                declare_topology(app, connection)
            _topology_declared = True


def publish(task_name: str, kwargs: dict[str, Any], countdown: float | None = None) -> None:
    publish_many([Message(task_name, kwargs, countdown)])


def publish_many(messages: Iterable[Message | tuple[str, dict[str, Any], float | None]]) -> int:
    """Publish every message with one pooled producer; returns how many were sent.

    A message that cannot be built (kwargs that are not a mapping) raises before anything is
    sent. If the broker fails mid-batch the error propagates (kombu's OperationalError, or
    BatchPublishError for a Redis pipeline): messages are hints, and the rows they point to are
    swept again once their re-send wait has passed.
    """
    _ensure_topology()
    batch = _Batch()
    built = [batch.build(*message) for message in messages]
    if not built:
        return 0
    with app.producer_or_acquire() as producer:
        with producer.connection._reraise_as_library_errors():  # as send_task: one error type
            declared = producer.connection.declared_entities
            for entity in batch.declarations():
                # kombu's own cache of what this connection declared, looked up without the
                # copy and bind of the entity that maybe_declare makes first (a quarter of a
                # millisecond a message, the largest CPU cost of a step's single publish).
                if hash(entity) not in declared:
                    producer.maybe_declare(entity, retry=True, **batch.retry_policy)
            if batch.rabbitmq:
                if len(built) == 1:
                    batch.send(producer, built[0], retry=True)
                else:
                    producer.connection.autoretry(
                        lambda channel: _send_then_confirm(channel, batch, built),
                        **batch.retry_policy)()
                return len(built)
            try:
                _pipelined(producer, batch, built)
            except BatchPublishError:
                if len(built) > 1:
                    raise  # the sweep publishes them one by one, each retried
                # A connection that went stale (Redis restarted): reconnect and send again.
                batch.send(producer, built[0], retry=True)
    return len(built)


def _pipelined(producer, batch: _Batch, built: list[_Outgoing]) -> None:
    """Redis: every message and its sent event in one pipeline (kombu's publish batch), one
    round trip even for a single message (a step's next timer used two: message and event).
    Buffering cannot fail, so it is not retried; a failed pipeline raises BatchPublishError."""
    with producer.batch() if hasattr(producer, "batch") else nullcontext():
        for outgoing in built:
            batch.send(producer, outgoing, retry=False)


# How long a batch waits for RabbitMQ's confirms before it counts as not sent.
_CONFIRM_TIMEOUT_S = 30.0


def _send_then_confirm(channel, batch: _Batch, built: list[_Outgoing]) -> None:
    """RabbitMQ: publish the whole batch on a channel of its own, then wait for the broker's
    confirms of all of it. Confirmed publishing one by one waits a round trip and a quorum
    write per message (about 7 ms each here).

    `channel` is the connection's default one (given by kombu's autoretry, which reconnects
    and calls again after a connection error: duplicates are harmless). The batch's channel
    counts its delivery tags from 1, so the confirms can be matched by number.
    """
    own = channel.connection.channel()
    try:
        own.confirm_select()
        confirms = _Confirms()
        own.events["basic_ack"].add(confirms.ack)
        own.events["basic_nack"].add(confirms.nack)
        sent = 0
        for outgoing in built:
            for body, headers, properties, exchange, routing_key in batch.frames(outgoing):
                # The publish without py-amqp's wait for each confirm (basic_publish waits).
                own._basic_publish(own.prepare_message(
                    body, 0, "application/json", "utf-8", headers, properties),
                    exchange=exchange, routing_key=routing_key)
                sent += 1
        deadline = time.monotonic() + _CONFIRM_TIMEOUT_S
        while confirms.count < sent:
            own.connection.drain_events(timeout=max(0.01, deadline - time.monotonic()))
        if confirms.refused:
            raise MessageNacked(f"the broker refused {confirms.refused} of {sent} messages")
    finally:
        try:
            own.close()
        except Exception:  # a dead connection: kombu's retry or the caller deals with it
            pass


class _Confirms:
    """Publisher confirms of one channel: tags 1..n, acked one by one or up to a tag."""

    def __init__(self) -> None:
        self.upto = 0
        self.single: set[int] = set()
        self.refused = 0

    @property
    def count(self) -> int:
        return self.upto + sum(1 for tag in self.single if tag > self.upto)

    def ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self.upto = max(self.upto, tag)
        else:
            self.single.add(tag)

    def nack(self, tag: int, multiple: bool) -> None:
        self.refused += max(1, tag - self.count) if multiple else 1
        self.ack(tag, multiple)


class _Route(NamedTuple):
    queue: Any  # kombu.Queue
    exchange: str
    routing_key: str
    delivery_mode: int


class _Outgoing(NamedTuple):
    body: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    exchange: str
    routing_key: str
    delivery_mode: int
    sent_event: dict[str, Any] | None


# Celery's `saferepr` limit for `kwargsrepr` (amqp.kwargsrepr_maxsize).
_REPR_MAX = 1024
_SCALARS = (str, int, float, bool, type(None))
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def kwargs_repr(kwargs: dict[str, Any]) -> str:
    """What Celery puts in `kwargsrepr`: `repr` when the kwargs are flat and short (exactly
    what `saferepr` gives then, at a tenth of its cost), `saferepr` otherwise."""
    if all(isinstance(value, _SCALARS) for value in kwargs.values()):
        text = repr(kwargs)
        if len(text) <= _REPR_MAX:
            return text
    return saferepr(kwargs, _REPR_MAX, maxlevels=app.conf.task_repr_maxlevels)


class _Batch:
    """What every message of one batch shares, resolved once."""

    def __init__(self) -> None:
        conf = app.conf
        # A publish from inside a task (the sweep, a step) names it as the parent, as
        # send_task does.
        parent = app.current_worker_task
        self.root_id = parent and (parent.request.root_id or parent.request.id)
        self.parent_id = parent and parent.request.id
        self.reply_to = app.thread_oid
        self.origin = anon_nodename()
        self.now = datetime.now(UTC)
        self.rabbitmq = is_rabbitmq(conf.broker_url)
        self.delayed_delivery = self.rabbitmq and detect_quorum_queues(
            app, "amqp")[0]
        self.retry_policy = dict(conf.task_publish_retry_policy or {})
        self.events = _event_dispatcher() if conf.task_send_sent_event else None
        self._routes: dict[str, _Route] = {}

    def declarations(self) -> list:
        """The queues this batch routes to, and the events exchange: declared once per
        connection (kombu remembers), where send_task re-checks them on every message."""
        entities = [route.queue for route in self._routes.values()]
        if self.events is not None:
            entities.append(self.events.exchange)
        return list({id(entity): entity for entity in entities}.values())

    def route(self, task_name: str) -> _Route:
        route = self._routes.get(task_name)
        if route is None:
            options = app.amqp.router.route({}, task_name, (), {}, None)
            queue = options["queue"]
            exchange = queue.exchange
            delivery_mode = exchange.delivery_mode or 2
            if exchange.type == "direct":  # as Celery: the default exchange, queue as key
                route = _Route(queue, "", queue.name, delivery_mode)
            else:
                route = _Route(queue, exchange.name, queue.routing_key, delivery_mode)
            self._routes[task_name] = route
        return route

    def build(self, task_name: str, kwargs: dict[str, Any],
              countdown: float | None = None) -> _Outgoing:
        if not isinstance(kwargs, dict):
            raise TypeError("task keyword arguments must be a mapping")
        route = self.route(task_name)
        exchange, routing_key = route.exchange, route.routing_key
        eta = None
        if countdown and countdown > 0:
            if self.rabbitmq and countdown < 1:
                # Native delayed delivery routes by whole seconds and refuses a countdown that
                # truncates to zero (CelgateCelery.send_task does the same).
                countdown = 1.0
            eta = (self.now + timedelta(seconds=countdown)).isoformat()
            if self.delayed_delivery:
                exchange = "celery_delayed_27"
                routing_key = calculate_routing_key(int(countdown), routing_key)
        task_id = str(uuid.uuid4())
        kwargsrepr = kwargs_repr(kwargs)
        headers = {
            "lang": "py", "task": task_name, "id": task_id, "shadow": None, "eta": eta,
            "expires": None, "group": None, "group_index": None, "retries": 0,
            "timelimit": [None, None], "root_id": self.root_id or task_id,
            "parent_id": self.parent_id, "argsrepr": "()", "kwargsrepr": kwargsrepr,
            "origin": self.origin, "ignore_result": None, "replaced_task_nesting": 0,
            "stamped_headers": None, "stamps": {},
        }
        sent_event = None
        if self.events is not None:
            sent_event = {
                "uuid": task_id, "root_id": headers["root_id"], "parent_id": self.parent_id,
                "name": task_name, "args": "()", "kwargs": kwargsrepr, "retries": 0,
                "eta": eta, "expires": None, "queue": route.queue.name, "exchange": exchange,
                "routing_key": routing_key,
            }
        return _Outgoing(dumps([[], kwargs, _EMBED]), headers,
                         {"correlation_id": task_id, "reply_to": self.reply_to},
                         exchange, routing_key, route.delivery_mode, sent_event)

    def frames(self, outgoing: _Outgoing):
        """The task message and its sent event as (body, headers, properties, exchange,
        routing key), serialized: for publishing on a bare channel."""
        yield (outgoing.body, outgoing.headers,
               {"delivery_mode": outgoing.delivery_mode, **outgoing.properties},
               outgoing.exchange, outgoing.routing_key)
        if outgoing.sent_event is not None:
            events = self.events
            yield (dumps(self.event(outgoing)), events.headers,
                   {"delivery_mode": events.delivery_mode}, events.exchange.name, "task.sent")

    def event(self, outgoing: _Outgoing) -> dict[str, Any]:
        events = self.events
        return Event("task-sent", hostname=events.hostname, utcoffset=utcoffset(),
                     pid=events.pid, clock=events.clock.forward(), **outgoing.sent_event)

    def send(self, producer, outgoing: _Outgoing, *, retry: bool) -> None:
        for body, headers, properties, exchange, routing_key in self.frames(outgoing):
            producer.publish(
                body, exchange=exchange, routing_key=routing_key, headers=headers,
                content_type="application/json", content_encoding="utf-8", declare=None,
                retry=retry, retry_policy=self.retry_policy, **properties)


_dispatcher = None


def _event_dispatcher():
    # Only its fields (hostname, pid, clock, exchange) are used: the producer sends the events.
    global _dispatcher
    if _dispatcher is None:
        _dispatcher = app.events.Dispatcher(enabled=False)
    return _dispatcher
