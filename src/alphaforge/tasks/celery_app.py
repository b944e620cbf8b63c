"""Celery on Redis: one generic task that runs a task row by id.

Messages are acknowledged late and requeued when a worker process dies, so a killed task
runs once more (the runner gives up after ``MAX_ATTEMPTS`` and ends it FAILURE). Results
live on the task rows, so Celery's result backend is not used.
"""

from __future__ import annotations

import uuid

from celery import Celery
from celery.signals import worker_process_init

from alphaforge.context import Context
from alphaforge.settings import Settings

RUN_TASK = "alphaforge.run_task"
_ctx: Context | None = None


def make_celery(settings: Settings) -> Celery:
    app = Celery("alphaforge", broker=settings.celery_broker_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        enable_utc=True,
        task_default_queue=settings.celery_queue,
        # A broker that is down must be a prompt 503 at submit, not a request that hangs.
        broker_connection_timeout=3,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        worker_hijack_root_logger=False,
    )

    @app.task(name=RUN_TASK)
    def run(task_id: str) -> None:
        from alphaforge.tasks.runner import run_task

        run_task(_worker_context(settings), uuid.UUID(task_id))

    return app


def _worker_context(settings: Settings) -> Context:
    global _ctx
    if _ctx is None:
        _ctx = Context.from_settings(settings)
    return _ctx


@worker_process_init.connect
def _fresh_context_per_process(**_: object) -> None:
    """A forked pool process must not reuse the parent's database connections."""
    global _ctx
    _ctx = None


def run_worker(settings: Settings, concurrency: int) -> None:
    """``alphaforge worker``: serve tasks until stopped."""
    if not settings.celery_broker_url:
        raise SystemExit("set ALPHAFORGE_CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0) to run a worker")
    app = make_celery(settings)
    app.worker_main(["worker", "--loglevel=INFO", f"--concurrency={concurrency}", "--pool=prefork", "--without-gossip", "--without-mingle"])
