"""The packages a worker runs, found at start: each brings its queues, its task modules, the
settings it reads and the ids its task kwargs carry.

A package above the runtime declares one `Component` in a module that imports little else (the
runtime loads it while it creates its Celery app) and names it in pyproject.toml under the
`celgate.components` entry-point group; installing the project (`pip install -e .`) records
it, and `installed()` finds it with importlib.metadata. The runtime itself is a component too,
so the Celery app composes queues and task modules without importing any package by name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from workers.settings import get_settings

log = logging.getLogger(__name__)

GROUP = "celgate.components"


@dataclass(frozen=True)
class Component:
    name: str
    # Broker queues, each routed by task-name prefix: a task `<queue>.<anything>` goes there.
    queues: tuple[str, ...]
    # Modules a worker imports for their Celery tasks.
    task_modules: tuple[str, ...]
    # Settings readers; a worker reads them when it starts, so a bad value stops it there.
    settings: tuple[Callable[[], object], ...] = ()
    # Task kwargs that name what a task works on; log lines of the task carry them.
    log_ids: tuple[str, ...] = ()


RUNTIME = Component("workers", queues=("workers",), task_modules=("workers.tasks",),
                    settings=(get_settings,), log_ids=("machine_id",))


@cache
def installed() -> tuple[Component, ...]:
    """The runtime and every component installed, in entry-point name order."""
    found = [RUNTIME]
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        component = point.load()
        if not isinstance(component, Component):
            raise TypeError(f"entry point {point.name} = {point.value} is not a Component")
        found.append(component)
    if len(found) == 1:
        log.warning("no celgate components are installed: a worker runs only the runtime's "
                    "tasks (install the project: pip install -e .)")
    return tuple(found)


def queues() -> tuple[str, ...]:
    names = [queue for component in installed() for queue in component.queues]
    duplicated = {name for name in names if names.count(name) > 1}
    if duplicated:
        raise ValueError(f"queues declared by two components: {sorted(duplicated)}")
    return tuple(names)


def task_modules() -> list[str]:
    return [module for component in installed() for module in component.task_modules]


def log_ids() -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for component in installed() for name in component.log_ids))


def read_settings() -> None:
    for component in installed():
        for read in component.settings:
            read()
