"""Where tasks run. One interface, two executors:

- ``EmbeddedExecutor`` (default): a bounded pool of worker processes inside the service, so
  heavy compute never holds the API's interpreter. A worker process that dies is noticed
  through the pool: a task it had started ends FAILURE; one it had not claimed is resubmitted.
- ``CeleryExecutor`` (``ALPHAFORGE_CELERY_BROKER_URL``): one message per task on Redis,
  run by ``alphaforge worker`` processes (see ``celery_app``).

Both hand the worker only a task id; the request, progress and outcome live on the row.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from alphaforge.context import Context
from alphaforge.errors import DependencyUnavailable
from alphaforge.settings import Settings

log = logging.getLogger(__name__)


class Executor(Protocol):
    def submit(self, task_id: uuid.UUID) -> None: ...

    def close(self) -> None: ...


# -- embedded -----------------------------------------------------------------------------
_worker_ctx: Context | None = None


def _init_worker(settings: Settings) -> None:
    global _worker_ctx
    _worker_ctx = Context.from_settings(settings)


def _run_in_worker(task_id: str) -> None:
    from alphaforge.tasks.runner import run_task

    assert _worker_ctx is not None, "worker process was not initialised"
    run_task(_worker_ctx, uuid.UUID(task_id))


class EmbeddedExecutor:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _current_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=max(1, self.ctx.settings.task_workers),
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(self.ctx.settings,),
                )
            return self._pool

    def submit(self, task_id: uuid.UUID) -> None:
        pool = self._current_pool()
        try:
            future = pool.submit(_run_in_worker, str(task_id))
        except BrokenProcessPool:
            self._drop(pool)
            future = self._current_pool().submit(_run_in_worker, str(task_id))
            pool = self._pool  # type: ignore[assignment]
        future.add_done_callback(lambda f: self._done(task_id, pool, f))

    def _done(self, task_id: uuid.UUID, pool: ProcessPoolExecutor, future: Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            return
        from alphaforge.tasks.runner import PENDING, mark_lost
        from alphaforge.services.tasks import task_status

        if isinstance(exc, BrokenProcessPool):
            self._drop(pool)
            if task_status(self.ctx, task_id) == PENDING:  # never claimed: run it on a fresh pool
                self.submit(task_id)
                return
            mark_lost(self.ctx, task_id, "its worker process died (killed, or out of memory) while running it")
        else:
            mark_lost(self.ctx, task_id, f"the worker could not run it: {type(exc).__name__}: {exc}")

    def _drop(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=False)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# -- Celery -------------------------------------------------------------------------------
class CeleryExecutor:
    def __init__(self, ctx: Context) -> None:
        from alphaforge.tasks.celery_app import RUN_TASK, make_celery

        self.ctx = ctx
        self.app = make_celery(ctx.settings)
        self._task_name = RUN_TASK

    def submit(self, task_id: uuid.UUID) -> None:
        try:
            self.app.send_task(self._task_name, args=[str(task_id)])
        except Exception as exc:  # noqa: BLE001 - kombu raises many transport errors
            # The broker's address and error text go to the log, not to the client.
            broker = redact(self.ctx.settings.celery_broker_url)
            log.warning("task queue at %s: cannot enqueue task %s: %r", broker, task_id, exc)
            raise DependencyUnavailable("task queue", "cannot enqueue the task; retry when the broker is back") from exc

    def close(self) -> None:
        self.app.close()


def redact(url: str | None) -> str:
    from urllib.parse import urlsplit

    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def make_executor(ctx: Context) -> Executor:
    return CeleryExecutor(ctx) if ctx.settings.celery_broker_url else EmbeddedExecutor(ctx)
