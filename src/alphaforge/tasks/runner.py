"""Running one task inside a worker (an embedded pool process or a Celery worker).

The task row is the single source of truth: it is claimed (PENDING -> STARTED) with a
compare-and-swap, a heartbeat thread keeps ``heartbeat_at`` fresh while it runs, progress
is written as it goes (and a cancel request read back), and it ends SUCCESS, FAILURE or
REVOKED. A task whose worker dies is ended by whoever notices (the pool, the reaper, or the
redelivered message): never STARTED forever. A child task that ends bumps its parent's
counter; the last child finalizes the parent.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import select, update

from alphaforge import actor
from alphaforge.context import Context
from alphaforge.errors import AlphaforgeError, ReportedError
from alphaforge.tasks.progress import Cancelled
from alphaforge.storage.db import utcnow
from alphaforge.storage.tables import Task
from alphaforge.tasks.kinds import TASK_KINDS
from alphaforge.tasks.states import FAILURE, FINISHED, PENDING, REVOKED, STARTED, SUCCESS

log = logging.getLogger(__name__)

#: A task is run at most this many times (a redelivery after a worker died is the second).
MAX_ATTEMPTS = 2
#: Progress is written at most this often (cancel requests are read at the same pace).
PROGRESS_INTERVAL_S = 0.25


def run_task(ctx: Context, task_id: uuid.UUID) -> None:
    """Claim and run a task; every outcome is recorded on its row."""
    task = _claim(ctx, task_id)
    if task is None:
        return
    kind = TASK_KINDS[task.kind]
    progress = _Progress(ctx, task)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(ctx, task_id, progress, stop), daemon=True)
    beat.start()
    try:
        with actor.acting_as(task.created_by):  # rows the task creates record the submitting key
            result = kind.run(ctx, task.request, progress)
    except Cancelled:
        _finish(ctx, task_id, REVOKED, error=("Cancelled", "cancelled on request"))
    except AlphaforgeError as exc:
        _finish(ctx, task_id, FAILURE, error=(type(exc).__name__, exc.message), refusal=exc)
    except Exception as exc:  # noqa: BLE001 - recorded on the row; the worker keeps serving
        log.error("task %s (%s) failed:\n%s", task_id, task.kind, traceback.format_exc())
        # str(exc) may name paths or hosts; the traceback above is logged under this task's id.
        message = f"unexpected error in task {task_id}; see the server log"
        _finish(ctx, task_id, FAILURE, error=(type(exc).__name__, message))
    else:
        _finish(ctx, task_id, SUCCESS, result=result)
    finally:
        stop.set()
        beat.join(timeout=5)
    if task.parent_id is not None:
        child_finished(ctx, task.parent_id)


def mark_lost(ctx: Context, task_id: uuid.UUID, message: str) -> bool:
    """End a task whose worker died; True when this call ended it."""
    return end_task(ctx, task_id, FAILURE, "WorkerLost", message)


def end_task(
    ctx: Context, task_id: uuid.UUID, status: str, error_type: str, message: str, *,
    http_status: int | None = None, code: str | None = None, only_pending: bool = False,
) -> bool:
    """End a task from outside its run (its worker died, was stopped at a limit or on a
    cancel); count it on its parent. True when this call ended it (it was not finished)."""
    refusal = ReportedError(message, http_status, code or "task_failed") if http_status is not None else None
    only_from = (PENDING,) if only_pending else (PENDING, STARTED)
    ended = _finish(ctx, task_id, status, error=(error_type, message), only_from=only_from, refusal=refusal)
    if ended:
        parent = _get(ctx, task_id).parent_id
        if parent is not None:
            child_finished(ctx, parent)
    return ended


def task_limits(ctx: Context, task_id: uuid.UUID) -> float | None:
    """The wall-clock limit of a task about to run (None: it is finished or gone)."""
    with ctx.db.session() as session:
        row = session.execute(select(Task.status, Task.time_limit_s).where(Task.id == task_id)).one_or_none()
    if row is None or row[0] in FINISHED:
        return None
    return row[1] or ctx.settings.task_time_limit_s


@dataclass(frozen=True)
class Watched:
    """What the slot supervising a task's worker reads of the task at each check."""

    #: The task, or its parent, was asked to stop.
    cancel: bool
    #: Seconds since its worker last reported (0 unless the task is STARTED).
    silent_s: float
    #: Someone else ended it because its worker stopped reporting (the reaper).
    lost: bool


def watch(ctx: Context, task_id: uuid.UUID) -> Watched | None:
    """The task's cancel flag and its worker's silence; None when the task is gone."""
    with ctx.db.session() as session:
        task = session.get(Task, task_id)
        if task is None:
            return None
        cancel = task.cancel_requested or (
            task.parent_id is not None
            and bool(session.scalar(select(Task.cancel_requested).where(Task.id == task.parent_id)))
        )
    beat = task.heartbeat_at
    silent = (utcnow() - beat).total_seconds() if task.status == STARTED and beat is not None else 0.0
    return Watched(cancel=cancel, silent_s=silent, lost=task.status == FAILURE and task.error_type == "WorkerLost")


def status_of(ctx: Context, task_id: uuid.UUID) -> str | None:
    with ctx.db.session() as session:
        return session.scalar(select(Task.status).where(Task.id == task_id))


def fail_orphans(ctx: Context) -> int:
    """Embedded executor only: tasks submitted before this process started were in the pool
    of a process that is gone, so they can never finish."""
    if ctx.settings.celery_broker_url:
        return 0
    with ctx.db.session() as session:
        return session.execute(
            update(Task).where(Task.status.in_((PENDING, STARTED)), Task.submitted_at < ctx.started_at)
            .values(status=FAILURE, finished_at=utcnow(), error_type="WorkerLost",
                    error_message="the service stopped before the task finished; submit it again")
        ).rowcount


def reap_stale(ctx: Context) -> int:
    """End every STARTED task whose worker stopped sending heartbeats."""
    cutoff = utcnow().timestamp() - ctx.settings.task_stale_after_s
    with ctx.db.session() as session:
        stale = [
            t.id
            for t in session.scalars(
                select(Task).where(Task.status == STARTED, Task.children_total == 0, Task.heartbeat_at.is_not(None))
            )
            if t.heartbeat_at is not None and t.heartbeat_at.timestamp() < cutoff
        ]
    ended = 0
    for task_id in stale:
        ended += mark_lost(
            ctx, task_id, f"its worker stopped reporting for over {ctx.settings.task_stale_after_s:.0f} s (it died or hung)"
        )
    return ended


def child_finished(ctx: Context, parent_id: uuid.UUID) -> None:
    """Count a finished child; the last one finalizes the parent from its children's outcomes."""
    with ctx.db.session() as session:
        row = session.execute(
            update(Task)
            .where(Task.id == parent_id)
            .values(children_done=Task.children_done + 1)
            .returning(Task.children_done, Task.children_total)
        ).one_or_none()
    if row is None:
        return
    if row[0] < row[1]:
        if not TASK_KINDS[_get(ctx, parent_id).kind].progress_to_parent:
            _set_parent_progress(ctx, parent_id, row[0], row[1])
        return
    parent = _get(ctx, parent_id)
    with ctx.db.session() as session:
        children = list(session.scalars(select(Task).where(Task.parent_id == parent_id).order_by(Task.submitted_at, Task.id)))
        outcomes = [_outcome(c) for c in children]
    kind = TASK_KINDS[parent.kind]
    if parent.cancel_requested:
        _finish(ctx, parent_id, REVOKED, error=("Cancelled", "cancelled on request"), only_from=(PENDING, STARTED))
        return
    try:
        assert kind.finalize is not None, f"{parent.kind} has children but no finalize step"
        with actor.acting_as(parent.created_by):  # rows the parent creates record the submitting key
            result = kind.finalize(ctx, parent.request, outcomes)
    except AlphaforgeError as exc:
        _finish(ctx, parent_id, FAILURE, error=(type(exc).__name__, exc.message), only_from=(PENDING, STARTED))
    except Exception as exc:  # noqa: BLE001
        log.error("finalizing task %s failed:\n%s", parent_id, traceback.format_exc())
        _finish(ctx, parent_id, FAILURE, error=(type(exc).__name__, str(exc)), only_from=(PENDING, STARTED))
    else:
        _finish(ctx, parent_id, SUCCESS, result=result, only_from=(PENDING, STARTED))


# -- internals --------------------------------------------------------------------------------
class _Progress:
    """The progress callback handed to a service: throttled writes, cancel checks. A report
    dropped by the throttle is written by the heartbeat (``flush``), so the row never keeps
    showing a phase the task has left."""

    def __init__(self, ctx: Context, task: Task) -> None:
        self.ctx, self.task_id, self.parent_id = ctx, task.id, task.parent_id
        self.to_parent = TASK_KINDS[task.kind].progress_to_parent
        self._last = 0.0
        self._pending: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < PROGRESS_INTERVAL_S and fraction < 1.0:
                self._pending = (fraction, message)
                return
            self._last, self._pending = now, None
        if _set_progress(self.ctx, self.task_id, fraction, message, self.parent_id, self.to_parent):
            raise Cancelled()

    def flush(self) -> None:
        """Write the last dropped report, if any (its cancel answer is the supervisor's job)."""
        with self._lock:
            pending, self._pending = self._pending, None
            self._last = time.monotonic()
        if pending is not None:
            _set_progress(self.ctx, self.task_id, *pending, self.parent_id, self.to_parent)


def _set_progress(
    ctx: Context, task_id: uuid.UUID, fraction: float, message: str,
    parent_id: uuid.UUID | None = None, to_parent: bool = False,
) -> bool:
    """Record progress (on the parent too for shards of one job); True when the task or
    its parent has been asked to cancel.

    The parent's row is locked before the child's: ``cancel_task`` locks a parent, then its
    children, and the opposite order deadlocks against it on PostgreSQL."""
    values = {"progress": min(max(fraction, 0.0), 1.0), "progress_message": message[:500]}
    with ctx.db.session() as session:
        if to_parent and parent_id is not None:
            session.execute(update(Task).where(Task.id == parent_id, Task.status.in_((PENDING, STARTED))).values(**values))
        session.execute(update(Task).where(Task.id == task_id, Task.status == STARTED).values(**values, heartbeat_at=utcnow()))
        ids = [task_id] if parent_id is None else [task_id, parent_id]
        return session.scalar(select(Task.id).where(Task.id.in_(ids), Task.cancel_requested.is_(True)).limit(1)) is not None


def _set_parent_progress(ctx: Context, parent_id: uuid.UUID, done: int, total: int) -> None:
    with ctx.db.session() as session:
        session.execute(
            update(Task).where(Task.id == parent_id, Task.status.in_((PENDING, STARTED)))
            .values(progress=done / total, progress_message=f"{done} of {total} parts finished")
        )


def _claim(ctx: Context, task_id: uuid.UUID) -> Task | None:
    """PENDING -> STARTED, or a second attempt after a worker died; None when not to run."""
    values = dict(
        status=STARTED, attempts=Task.attempts + 1, started_at=utcnow(), heartbeat_at=utcnow(),
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )
    task = _get(ctx, task_id, missing_ok=True)
    if task is None or task.status in FINISHED:
        return None
    if task.status == STARTED and not _worker_gone(ctx, task):
        return None  # a duplicate delivery (e.g. a broker visibility timeout) of a task still running
    if task.status == STARTED and task.attempts >= MAX_ATTEMPTS:
        mark_lost(ctx, task_id, f"its worker died during each of {task.attempts} attempts")
        return None
    with ctx.db.session() as session:  # one transaction: the claim, and the parent started with its first child
        claimed = session.scalars(
            update(Task)
            .where(Task.id == task_id, Task.status == task.status, Task.attempts == task.attempts)
            .values(**values)
            .returning(Task)
            .execution_options(synchronize_session=False)
        ).one_or_none()
        if claimed is None:
            return None  # another worker got it first, or it was cancelled meanwhile
        if task.parent_id is not None:
            session.execute(
                update(Task).where(Task.id == task.parent_id, Task.status == PENDING)
                .values(status=STARTED, started_at=utcnow(), attempts=1)
                .execution_options(synchronize_session=False)
            )
    return claimed


def _worker_gone(ctx: Context, task: Task) -> bool:
    """Is the process that claimed ``task`` gone? Exact on the same host; elsewhere, judged
    by its heartbeat."""
    host, _, pid = (task.worker or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    beat = task.heartbeat_at
    return beat is None or (utcnow() - beat).total_seconds() > ctx.settings.task_stale_after_s


def _finish(
    ctx: Context, task_id: uuid.UUID, status: str, *, result: dict[str, Any] | None = None,
    error: tuple[str, str] | None = None, only_from: tuple[str, ...] = (STARTED,),
    refusal: AlphaforgeError | None = None,
) -> bool:
    """``refusal``: the domain error, kept so a synchronous caller answers exactly as if it
    had run the work itself (status, code and context)."""
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "result": result}
    if status == SUCCESS:
        values.update(progress=1.0, progress_message="done")
    if error is not None:
        values.update(error_type=error[0][:100], error_message=error[1])
    if refusal is not None:
        values.update(error_status=refusal.status_code, error_code=refusal.code[:64],
                      error_context=to_jsonable_python(refusal.context, fallback=str))
    with ctx.db.session() as session:
        return session.execute(
            update(Task).where(Task.id == task_id, Task.status.in_(only_from)).values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount == 1


def _heartbeat(ctx: Context, task_id: uuid.UUID, progress: _Progress, stop: threading.Event) -> None:
    interval = min(ctx.settings.task_heartbeat_s, 1.0)  # the beat is written every task_heartbeat_s
    last_beat = time.monotonic()
    while not stop.wait(interval):
        try:
            progress.flush()
            if time.monotonic() - last_beat < ctx.settings.task_heartbeat_s:
                continue
            last_beat = time.monotonic()
            with ctx.db.session() as session:
                session.execute(update(Task).where(Task.id == task_id, Task.status == STARTED).values(heartbeat_at=utcnow()))
        except Exception:  # noqa: BLE001 - a missed beat is retried at the next interval
            log.warning("heartbeat of task %s failed", task_id, exc_info=True)


def _get(ctx: Context, task_id: uuid.UUID, missing_ok: bool = False) -> Task:
    with ctx.db.session() as session:
        task = session.get(Task, task_id)
    if task is None and not missing_ok:
        raise LookupError(f"task {task_id} does not exist")
    return task  # type: ignore[return-value]


def _outcome(task: Task) -> dict[str, Any]:
    return {
        "task_id": str(task.id),
        "status": task.status,
        "request": task.request,
        "result": task.result,
        "error": None if task.error_type is None else {"type": task.error_type, "message": task.error_message},
    }

