"""Celery on Redis: one generic task that runs a task row by id.

``alphaforge worker --concurrency N`` consumes with N threads, each handing its task to the
worker's own ``WorkerPool`` of N isolated processes and waiting for it: the same isolation,
limits and cancellation as the embedded executor. Messages are acknowledged late, so a
worker whose whole process dies has its message delivered again (the runner gives up after
``MAX_ATTEMPTS`` and ends it FAILURE). Results live on the task rows, so Celery's result
backend is not used.
"""

from __future__ import annotations

import threading
import uuid

from celery import Celery
from celery.signals import worker_shutdown

from alphaforge.context import Context
from alphaforge.settings import Settings

RUN_TASK = "alphaforge.run_task"
_lock = threading.Lock()
_pool = None  # this worker's WorkerPool, started with its first task
_pool_size = 1  # `alphaforge worker --concurrency`


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
        _worker_pool(settings).run(uuid.UUID(task_id))

    return app


def _worker_pool(settings: Settings):  # type: ignore[no-untyped-def]
    global _pool
    from alphaforge.tasks.pool import WorkerPool

    with _lock:
        if _pool is None:
            _pool = WorkerPool(Context.from_settings(settings), _pool_size)
        return _pool


@worker_shutdown.connect
def _close_pool(**_: object) -> None:
    """A stopping worker ends its processes (their tasks end FAILURE, to be submitted again)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


def run_worker(settings: Settings, concurrency: int) -> None:
    """``alphaforge worker``: serve tasks until stopped."""
    if not settings.celery_broker_url:
        raise SystemExit("set ALPHAFORGE_CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0) to run a worker")
    global _pool_size
    _pool_size = concurrency
    app = make_celery(settings)
    app.worker_main(["worker", "--loglevel=INFO", f"--concurrency={concurrency}", "--pool=threads",
                     "--without-gossip", "--without-mingle"])
