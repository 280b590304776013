"""Per-process objects: built once on first use, afresh after the worker's process-init hook
and in a forked child."""

from __future__ import annotations

import os

from workers import per_process as registry
from workers.celery_app import _fresh_pool_in_child


def test_built_once_then_again_after_the_process_init_hook() -> None:
    built: list[object] = []

    def build() -> object:
        built.append(object())
        return built[-1]

    shared = registry.per_process(build)
    assert shared() is shared() is built[0]
    _fresh_pool_in_child()  # what Celery runs in a new pool child
    assert shared() is built[1] and len(built) == 2


def test_a_forked_child_builds_its_own() -> None:
    shared = registry.per_process(lambda: os.getpid())
    assert shared() == os.getpid()
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(writer, str(shared()).encode())
        os._exit(0)
    os.close(writer)
    seen = int(os.read(reader, 64))
    os.waitpid(child, 0)
    os.close(reader)
    assert seen == child and shared() == os.getpid()
