"""Objects a process builds once, on first use: peer clients, connection pools.

A forked Celery child must not share its parent's sockets, so each process builds its own.
`per_process(build)` returns a callable that builds the object on its first call in a process
and hands out the same one after. The worker's process-init hook (`workers.celery_app`) forgets
every one of them, so a pool child starts clean; a changed process id does the same after any
other fork. The runtime knows only this registry, not what the business packages keep in it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_registry: list[PerProcess] = []


class PerProcess(Generic[T]):
    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None
        self._pid: int | None = None

    def __call__(self) -> T:
        pid = os.getpid()
        value = self._value
        if value is not None and self._pid == pid:
            return value
        with self._lock:
            if self._value is None or self._pid != pid:
                self._value, self._pid = self._build(), pid
            return self._value

    def forget(self) -> None:
        """Drop this process's object (the parent's, in a fresh child); the next call builds
        another. Its sockets are not closed here: in a forked child they are the parent's."""
        with self._lock:
            self._value, self._pid = None, None


def per_process(build: Callable[[], T]) -> PerProcess[T]:
    """`build()` once per process, on first use (see the module)."""
    instance = PerProcess(build)
    _registry.append(instance)
    return instance


def forget_all() -> None:
    """Every per-process object is built afresh on its next use: for a new pool child."""
    for instance in _registry:
        instance.forget()
