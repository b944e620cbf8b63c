"""A pool of isolated worker processes, each running one task at a time, supervised from
the process that owns the pool (the API with the embedded executor, or `alphaforge worker`).

Each slot is a thread here and a process there. The thread hands its process a task id and
watches it until the task is done, enforcing what the task itself cannot:

- the worker dies (killed, out of memory): only its own task ends FAILURE; the slot starts a
  new process, the other slots carry on;
- the task runs past its wall-clock limit, or the process past the memory limit: the process
  is ended and the task FAILURE with a message naming the limit;
- the task is cancelled: it gets a moment to stop at its next progress report, then its
  process is ended (objects are written before rows, so nothing is half-written) and the
  task REVOKED;
- the worker hangs (alive, but its heartbeat stopped for ``task_stale_after_s``): its
  threads' stacks go to the log under the task's id, the process is ended and the task
  FAILURE, so the slot is free again (not held until the time limit).

Workers are forked from a fork server that has imported the libraries once, so a new one
starts in milliseconds; they die with the pool's process (``tasks.worker``).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import psutil

from alphaforge.errors import DependencyUnavailable
from alphaforge.tasks import worker

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from alphaforge.context import Context
    from alphaforge.tasks.runner import Watched

log = logging.getLogger(__name__)

#: How often a slot checks its task's cancel flag, and its process's memory.
CHECK_INTERVAL_S = 0.5
#: How long a cancelled task may take to stop by itself before its process is ended.
CANCEL_GRACE_S = 1.0
#: How long a new worker may take to report ready.
START_TIMEOUT_S = 120.0

Outcome = Literal["done", "died", "hung", "time_limit", "memory_limit", "cancelled", "closed"]
#: How long a hung worker may take to write its threads' stacks before it is ended.
STACKS_WAIT_S = 2.0


def _context() -> multiprocessing.context.BaseContext:
    """Fork server on Linux (workers forked from a process that has imported everything);
    spawn elsewhere."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(worker.PRELOAD))
        return ctx
    return multiprocessing.get_context("spawn")


def warm_up() -> None:
    """Start the fork server (it imports the libraries, a few seconds) ahead of the first
    task, so that task does not wait for it."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        from multiprocessing import forkserver

        _context()
        forkserver.ensure_running()


class _NotYet(Exception):
    """A task that cannot be dispatched now (the database is down); it goes back in the queue."""


@dataclass
class _Running:
    task_id: uuid.UUID
    deadline: float


class WorkerPool:
    def __init__(self, ctx: Context, size: int, on_end: Callable[[], None] | None = None) -> None:
        """``on_end``: called from a slot's thread after each task it ran has ended."""
        self.ctx = ctx
        self.size = max(1, size)
        self._on_end = on_end
        self._queue: queue.Queue[tuple[uuid.UUID, threading.Event]] = queue.Queue()
        self._closed = threading.Event()
        self._mp = _context()
        self._slots = [_Slot(self, i) for i in range(self.size)]
        for slot in self._slots:
            slot.thread.start()

    def submit(self, task_id: uuid.UUID) -> threading.Event:
        """Queue a task; the event is set once it has ended (any outcome)."""
        if self._closed.is_set():
            raise RuntimeError("the worker pool is closed")
        done = threading.Event()
        self._queue.put((task_id, done))
        return done

    def run(self, task_id: uuid.UUID) -> None:
        """Queue a task and wait until it has ended (Celery's worker threads call this)."""
        self.submit(task_id).wait()

    def worker_pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process is not None and s.process.pid is not None]

    def close(self) -> None:
        """End every worker; a task still running ends FAILURE, one still queued too."""
        self._closed.set()
        for slot in self._slots:
            slot.thread.join(timeout=30)
        from alphaforge.tasks.runner import end_task

        while True:
            try:
                task_id, done = self._queue.get_nowait()
            except queue.Empty:
                break
            end_task(self.ctx, task_id, "FAILURE", "WorkerLost",
                     "the service stopped before the task started; submit it again", only_pending=True)
            done.set()


class _Slot:
    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        #: The file the process writes its threads' stacks to when asked (``_dump_stacks``).
        self.stacks: str | None = None
        self.thread = threading.Thread(target=self._serve, name=f"worker-slot-{index}", daemon=True)

    # -- the slot's thread ------------------------------------------------------------------
    def _serve(self) -> None:
        try:  # start at once, so the first task does not wait for a process
            self._ensure_process()
        except Exception:  # noqa: BLE001 - tried again with the first task
            log.warning("worker %d did not start; retrying with its first task", self.index, exc_info=True)
        while not self.pool._closed.is_set():
            try:
                task_id, done = self.pool._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._run(task_id)
            except _NotYet as exc:  # the database is down: try the task again shortly
                log.warning("task %s waits: %s", task_id, exc)
                time.sleep(1.0)
                self.pool._queue.put((task_id, done))
                continue
            except Exception as exc:  # noqa: BLE001 - a slot must survive anything one task does
                log.exception("worker slot %d failed while running task %s", self.index, task_id)
                self._stop_process()
                self._give_up(task_id, exc)
            done.set()
            if self.pool._on_end is not None:
                self.pool._on_end()
        self._stop_process()

    def _run(self, task_id: uuid.UUID) -> None:
        from alphaforge.tasks.runner import task_limits

        try:
            limit_s = task_limits(self.pool.ctx, task_id)
        except DependencyUnavailable as exc:
            raise _NotYet(exc.message) from exc
        if limit_s is None:
            return  # finished or cancelled while queued
        self._ensure_process()
        assert self.conn is not None
        self.conn.send(("run", str(task_id)))
        outcome = self._watch(_Running(task_id, time.monotonic() + limit_s))
        try:
            self._record(task_id, outcome, limit_s)
        except DependencyUnavailable:  # its heartbeat has stopped: the reaper ends it later
            log.warning("could not record how task %s ended (%s)", task_id, outcome, exc_info=True)

    def _watch(self, running: _Running) -> Outcome:
        settings = self.pool.ctx.settings
        memory_limit = int(settings.task_memory_limit_mb * 1024 * 1024)
        # The first memory and cancel check one interval in, like every later one: checking
        # at once cost each task a scan of every process (psutil's children) and a query
        # while its worker started, and a short task never needs one.
        next_check = time.monotonic() + CHECK_INTERVAL_S
        cancel_seen: float | None = None
        assert self.conn is not None and self.process is not None
        while True:
            try:
                if self.conn.poll(0.1):
                    message = self.conn.recv()
                    if message == ("done", str(running.task_id)):
                        return "done"
                    continue
            except (EOFError, OSError):
                return "died"
            if not self.process.is_alive():
                return "died"
            if self.pool._closed.is_set():
                self._stop_process()
                return "closed"
            now = time.monotonic()
            if now > running.deadline and not self._finished(running.task_id):
                self._stop_process()
                return "time_limit"
            if now < next_check:
                continue
            next_check = now + CHECK_INTERVAL_S
            if memory_limit and self._rss() > memory_limit and not self._finished(running.task_id):
                self._stop_process()
                return "memory_limit"
            watched = self._look(running.task_id)
            if watched is not None and (watched.lost or watched.silent_s > settings.task_stale_after_s):
                self._dump_stacks(running.task_id)
                self._stop_process()
                return "hung"
            if cancel_seen is None:
                if watched is not None and watched.cancel:
                    cancel_seen = now
            elif now - cancel_seen > CANCEL_GRACE_S and not self._finished(running.task_id):
                self._stop_process()
                return "cancelled"

    def _give_up(self, task_id: uuid.UUID, exc: Exception) -> None:
        from alphaforge.tasks.runner import end_task

        try:
            end_task(self.pool.ctx, task_id, "FAILURE", "WorkerLost",
                     f"no worker process could run it ({type(exc).__name__}); submit it again")
        except Exception:  # noqa: BLE001 - the database may be down: the reaper ends it later
            log.warning("could not record the failure of task %s", task_id, exc_info=True)

    def _record(self, task_id: uuid.UUID, outcome: Outcome, limit_s: float) -> None:
        from alphaforge.tasks.runner import end_task

        ctx = self.pool.ctx
        if outcome == "done":
            return
        if outcome == "died":
            self._stop_process()
            end_task(ctx, task_id, "FAILURE", "WorkerLost",
                     "its worker process died (killed, or out of memory) while running it")
        elif outcome == "hung":
            end_task(ctx, task_id, "FAILURE", "WorkerLost",
                     f"its worker stopped reporting for over {ctx.settings.task_stale_after_s:g} s (it hung) and was "
                     "stopped; submit it again (the server log holds what it was doing, under this task's id)")
        elif outcome == "time_limit":
            end_task(ctx, task_id, "FAILURE", "TimeLimitExceeded",
                     f"the task ran past its wall-clock limit of {limit_s:g} s and was stopped; ask for less work "
                     "or a longer time_limit_s (the service's maximum is ALPHAFORGE_TASK_TIME_LIMIT_S)",
                     http_status=422, code="time_limit_exceeded")
        elif outcome == "memory_limit":
            limit_mb = ctx.settings.task_memory_limit_mb
            end_task(ctx, task_id, "FAILURE", "MemoryLimitExceeded",
                     f"the task's worker went over its memory limit of {limit_mb:g} MB and was stopped; ask for less "
                     "(fewer rows, a smaller model) or raise ALPHAFORGE_TASK_MEMORY_LIMIT_MB",
                     http_status=422, code="memory_limit_exceeded")
        elif outcome == "cancelled":
            end_task(ctx, task_id, "REVOKED", "Cancelled", "cancelled on request")
        else:
            end_task(ctx, task_id, "FAILURE", "WorkerLost", "the service stopped while the task ran; submit it again")

    # -- the process ----------------------------------------------------------------------
    def _ensure_process(self) -> None:
        if self.process is not None and self.process.is_alive():
            return
        self._stop_process()
        parent_conn, child_conn = self.pool._mp.Pipe()
        handle, self.stacks = tempfile.mkstemp(prefix=f"alphaforge-worker-{self.index}-", suffix=".stacks")
        os.close(handle)
        process = self.pool._mp.Process(
            target=worker.main, args=(self.pool.ctx.settings, child_conn, os.getpid(), self.stacks),
            name=f"alphaforge-worker-{self.index}",
            daemon=True,
        )
        process.start()
        child_conn.close()
        if not parent_conn.poll(START_TIMEOUT_S):
            process.kill()
            raise RuntimeError(f"worker {self.index} did not start within {START_TIMEOUT_S:g} s")
        parent_conn.recv()  # ("ready", pid)
        self.process, self.conn = process, parent_conn

    def _stop_process(self) -> None:
        process, conn, stacks = self.process, self.conn, self.stacks
        self.process = self.conn = self.stacks = None
        if conn is not None:
            conn.close()
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(timeout=10)
        if stacks is not None:
            with contextlib.suppress(OSError):
                os.remove(stacks)

    def _rss(self) -> int:
        assert self.process is not None and self.process.pid is not None
        try:
            proc = psutil.Process(self.process.pid)
            return proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
        except psutil.Error:
            return 0

    def _look(self, task_id: uuid.UUID) -> Watched | None:
        from alphaforge.tasks.runner import watch

        try:
            return watch(self.pool.ctx, task_id)
        except Exception:  # noqa: BLE001 - the database may be down; look again next time
            return None

    def _dump_stacks(self, task_id: uuid.UUID) -> None:
        """Log what a hung worker's threads are doing: it writes their stacks on SIGUSR1
        (``faulthandler``, which runs even while a thread holds the GIL)."""
        assert self.process is not None and self.process.pid is not None
        stacks = ""
        if self.stacks is not None and hasattr(signal, "SIGUSR1"):
            os.kill(self.process.pid, signal.SIGUSR1)
            deadline, seen = time.monotonic() + STACKS_WAIT_S, None
            while time.monotonic() < deadline and not (stacks and stacks == seen):  # written, and complete
                time.sleep(0.1)
                seen = stacks
                with contextlib.suppress(OSError):
                    stacks = Path(self.stacks).read_text(errors="replace")
        log.error(
            "task %s: worker %d (pid %d) stopped reporting for over %g s; ending it. Its threads:\n%s",
            task_id, self.index, self.process.pid, self.pool.ctx.settings.task_stale_after_s,
            stacks.strip() or "(it wrote no stacks: stopped, or stuck in the kernel)",
        )

    def _finished(self, task_id: uuid.UUID) -> bool:
        """Did the task write its own outcome already (then it is only reporting back)?"""
        from alphaforge.tasks.runner import status_of
        from alphaforge.tasks.states import FINISHED

        try:
            return status_of(self.pool.ctx, task_id) in FINISHED
        except Exception:  # noqa: BLE001
            return False
