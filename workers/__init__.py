"""Runtime: Celery app, settings, database, durable machines and STQ-style tasks.

`celery -A workers worker` finds the application here. It is created when first asked for
(`workers.app`, or an import of `workers.celery_app`), not by importing any module of the
package: creating it loads the installed components (workers/components.py), whose modules
import the runtime's.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from workers.celery_app import app

        return app
    raise AttributeError(f"module 'workers' has no attribute {name!r}")
