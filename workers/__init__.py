"""Runtime: Celery app, settings, database, durable machines and STQ-style tasks.

`celery -A workers worker` finds the application here.
"""

from workers.celery_app import app

__all__ = ["app"]
