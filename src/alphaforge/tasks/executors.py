"""Where tasks run. One interface, two executors, one way of running a task:

- ``EmbeddedExecutor`` (default): a ``WorkerPool`` of isolated worker processes supervised
  from the API process (``tasks.pool``), so heavy compute never holds the API's interpreter.
- ``CeleryExecutor`` (``ALPHAFORGE_CELERY_BROKER_URL``): one message per task on Redis, taken
  by ``alphaforge worker`` processes, each of which runs its tasks in the same kind of pool.

Both hand the worker only a task id; the request, progress and outcome live on the row. The
API process also runs the reaper, which ends tasks whose worker stopped reporting.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

from alphaforge.context import Context, Executor
from alphaforge.errors import DependencyUnavailable

log = logging.getLogger(__name__)


class Reaper:
    """Every few seconds: ends STARTED tasks whose worker stopped sending heartbeats, and
    (embedded) tasks a previous process of the service left unfinished."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="task-reaper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from alphaforge.tasks.runner import fail_orphans, reap_stale

        interval = max(1.0, min(self.ctx.settings.task_heartbeat_s, self.ctx.settings.task_stale_after_s / 4))
        while not self._stop.wait(interval):
            try:
                fail_orphans(self.ctx)
                reap_stale(self.ctx)
            except DependencyUnavailable as exc:  # try again at the next interval
                log.warning("reaping stale tasks skipped: %s", exc.message)
            except Exception:  # noqa: BLE001 - logged; the reaper keeps going
                log.warning("reaping stale tasks failed", exc_info=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class EmbeddedExecutor:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._pool = None  # started at the first task: most processes never run one
        self._watchers: dict[int, Callable[[], None]] = {}
        self._watchers_lock = threading.Lock()
        self.reaper = Reaper(ctx)
        threading.Thread(target=_warm_up, name="fork-server-warm-up", daemon=True).start()

    @property
    def pool(self):  # type: ignore[no-untyped-def]
        from alphaforge.tasks.pool import WorkerPool

        with self._lock:
            if self._pool is None:
                self._pool = WorkerPool(self.ctx, self.ctx.settings.task_workers, on_end=self._ended)
            return self._pool

    def submit(self, task_id: uuid.UUID) -> None:
        self.pool.submit(task_id)

    def watch_ends(self, notify: Callable[[], None]) -> Callable[[], None]:
        """A synchronous request learns that its task ended when the worker says so (a
        parent task ends with its last child), not at its next poll of the row."""
        token = id(notify)
        with self._watchers_lock:
            self._watchers[token] = notify

        def stop() -> None:
            with self._watchers_lock:
                self._watchers.pop(token, None)

        return stop

    def _ended(self) -> None:
        with self._watchers_lock:
            watchers = list(self._watchers.values())
        for notify in watchers:
            try:
                notify()
            except Exception:  # noqa: BLE001 - a waiter gone away must not break the pool's slot
                log.debug("a task-end watcher failed", exc_info=True)

    def close(self) -> None:
        self.reaper.close()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def _warm_up() -> None:
    from alphaforge.tasks.pool import warm_up

    try:
        warm_up()
    except Exception:  # noqa: BLE001 - the first task starts it instead
        log.warning("could not start the fork server ahead of the first task", exc_info=True)


class CeleryExecutor:
    def __init__(self, ctx: Context) -> None:
        from alphaforge.tasks.celery_app import RUN_TASK, make_celery

        self.ctx = ctx
        self.app = make_celery(ctx.settings)
        self._task_name = RUN_TASK
        self.reaper = Reaper(ctx)

    def submit(self, task_id: uuid.UUID) -> None:
        try:
            self.app.send_task(self._task_name, args=[str(task_id)])
        except Exception as exc:  # noqa: BLE001 - kombu raises many transport errors
            # The broker's address and error text go to the log, not to the client.
            log.warning("task queue: cannot enqueue task %s: %r", task_id, exc)
            raise DependencyUnavailable("task queue", "cannot enqueue the task; retry when the broker is back") from exc

    def watch_ends(self, notify: Callable[[], None]) -> Callable[[], None]:
        """Tasks end in ``alphaforge worker`` processes: waiters poll the row."""
        return lambda: None

    def close(self) -> None:
        self.reaper.close()
        self.app.close()


def make_executor(ctx: Context) -> Executor:
    return CeleryExecutor(ctx) if ctx.settings.celery_broker_url else EmbeddedExecutor(ctx)
