"""Tasks as the API sees them: submit, wait, read, list, cancel.

All heavy work runs as a task in a worker process, never in the API's interpreter: the
asynchronous endpoints submit and answer 202; the synchronous ones submit the same task and
wait for it (``run``), answering with its result or the very error it would have raised.

Submitting writes the row(s) first and then hands the id to the executor, so a worker
always finds its request; an executor that cannot take it (broker down) ends the task
FAILURE and answers 503. Every task is bounded: a wall-clock limit (the request's, at most
the service's), the worker's memory limit, a cap on the tasks one request may create and on
the unfinished tasks one key may have.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select, update
from starlette.concurrency import run_in_threadpool

from alphaforge import actor
from alphaforge.auth.keys import Principal
from alphaforge.auth.roles import Role
from alphaforge.context import Context
from alphaforge.errors import (
    AlphaforgeError,
    Conflict,
    DependencyUnavailable,
    Forbidden,
    InvalidInput,
    NotFound,
    ReportedError,
    TooManyRequests,
)
from alphaforge.storage.db import utcnow
from alphaforge.storage.tables import Task
from alphaforge.tasks.runner import reap_stale
from alphaforge.tasks.states import FAILURE, FINISHED, PENDING, REVOKED, STARTED, SUCCESS

log = logging.getLogger(__name__)

NOT_FOUND = "Task not found"
#: How often a synchronous request looks at its task: quickly at first, then every 0.1 s (one
#: primary-key read each; a second-long task is answered within 0.1 s of its end).
_FIRST_POLL_S, _MAX_POLL_S = 0.005, 0.1

Children = list[tuple[str, dict[str, Any]]]


def check_time_limit(ctx: Context, time_limit_s: float | None) -> float:
    """The limit a request asks for, refused (422) above the service's own."""
    ceiling = ctx.settings.task_time_limit_s
    if time_limit_s is None:
        return ceiling
    if time_limit_s > ceiling:
        raise InvalidInput(
            f"time_limit_s={time_limit_s:g} is over the service's limit of {ceiling:g} s (ALPHAFORGE_TASK_TIME_LIMIT_S)",
            field="time_limit_s",
        )
    return time_limit_s


def submit(
    ctx: Context, kind: str, request: dict[str, Any], children: Children | None = None, *,
    time_limit_s: float | None = None,
) -> Task:
    """One task, or a parent whose work is ``children`` (kind, request) run in parallel."""
    assert ctx.executor is not None, "tasks are submitted by the API process"
    limit = check_time_limit(ctx, time_limit_s)
    check_caps(ctx, len(children or []) or 1)
    parent = Task(id=uuid.uuid4(), kind=kind, status=PENDING, request=request, children_total=len(children or []),
                  time_limit_s=limit)
    rows = [Task(id=uuid.uuid4(), kind=k, status=PENDING, request=r, parent_id=parent.id, time_limit_s=limit)
            for k, r in children or []]
    with ctx.db.session() as session:
        session.add(parent)
        session.flush()
        session.add_all(rows)
    for row in rows or [parent]:
        try:
            ctx.executor.submit(row.id)
        except DependencyUnavailable as exc:
            _fail_unsent(ctx, parent.id, exc.message)
            raise
    return parent


async def run(
    ctx: Context, kind: str, request: dict[str, Any], children: Children | None = None, *,
    time_limit_s: float | None = None, client_gone: Callable[[], Awaitable[bool]] | None = None,
) -> dict[str, Any]:
    """Submit a task and wait for it: its result, or the error it ended with, raised as the
    synchronous endpoint would have raised it. A client that leaves stops the waiting, not
    the task (its row shows it running, then its outcome)."""
    task = await run_in_threadpool(submit, ctx, kind, request, children, time_limit_s=time_limit_s)
    return outcome(await wait(ctx, task.id, client_gone))


async def wait(ctx: Context, task_id: uuid.UUID, client_gone: Callable[[], Awaitable[bool]] | None = None) -> Task:
    """Read the row until the task has finished: at each poll, or at once when the executor
    says a task ended (the embedded pool does; polling alone cost a sub-second task up to
    0.1 s, half of a warm panel build's ten requests)."""
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()

    def notify() -> None:
        try:
            loop.call_soon_threadsafe(ended.set)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass

    stop = ctx.executor.watch_ends(notify) if ctx.executor is not None else (lambda: None)
    try:
        delay = _FIRST_POLL_S
        while True:
            ended.clear()  # before the read: an end after it wakes the wait below
            task = await run_in_threadpool(_read, ctx, task_id)
            if task.status in FINISHED:
                return task
            if client_gone is not None and await client_gone():
                log.info("the client left; task %s (%s) goes on: GET /api/v1/tasks/%s", task_id, task.kind, task_id)
                raise ClientGone(task_id)
            try:
                await asyncio.wait_for(ended.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 1.6, _MAX_POLL_S)
    finally:
        stop()


class ClientGone(Exception):
    """The synchronous caller disconnected; nobody reads the answer."""


def outcome(task: Task) -> dict[str, Any]:
    """A finished task's result, or its error as the exception the work raised."""
    if task.status == SUCCESS:
        return task.result or {}
    if task.status == REVOKED:
        raise Conflict(f"task {task.id} was cancelled before it finished", task_id=str(task.id))
    if task.error_status is not None:
        context = {**(task.error_context or {}), "task_id": str(task.id)}
        raise ReportedError(task.error_message or "", task.error_status, task.error_code or "task_failed", **context)
    if task.error_type == "WorkerLost":
        raise DependencyUnavailable("task worker", f"{task.error_message}; task {task.id}", task_id=str(task.id))
    log.error("task %s failed: %s: %s", task.id, task.error_type, task.error_message)
    raise AlphaforgeError(f"the work failed unexpectedly (task {task.id}); this is a bug in alphaforge, please report it")


def get_task(ctx: Context, task_id: uuid.UUID) -> Task:
    _reap(ctx)
    with ctx.db.session() as session:
        task = session.get(Task, task_id)
        if task is None:
            raise NotFound(NOT_FOUND)
        return task


def _read(ctx: Context, task_id: uuid.UUID) -> Task:
    with ctx.db.session() as session:
        task = session.get(Task, task_id)
    if task is None:
        raise NotFound(NOT_FOUND)
    return task


def check_caps(ctx: Context, new_tasks: int) -> None:
    """One request creates at most ``max_batch_tasks`` tasks; one key has at most
    ``max_queued_tasks_per_key`` unfinished (the service's own work is not capped)."""
    settings = ctx.settings
    if new_tasks > settings.max_batch_tasks:
        raise InvalidInput(
            f"this request would create {new_tasks} tasks; one request may create at most "
            f"{settings.max_batch_tasks} (ALPHAFORGE_MAX_BATCH_TASKS): split it"
        )
    key = actor.current()
    if key is None:
        return
    with ctx.db.session() as session:
        unfinished = session.scalar(
            select(func.count()).select_from(Task).where(Task.created_by == key, Task.status.in_((PENDING, STARTED)),
                                                         Task.children_total == 0)
        ) or 0
    if unfinished + new_tasks > settings.max_queued_tasks_per_key:
        raise TooManyRequests(
            f"this key has {unfinished} unfinished tasks and the request adds {new_tasks}; a key may have at most "
            f"{settings.max_queued_tasks_per_key} (ALPHAFORGE_MAX_QUEUED_TASKS_PER_KEY): wait for some to finish or "
            "cancel them"
        )


def list_tasks(
    ctx: Context, kind: str | None = None, status: str | None = None, skip: int = 0, limit: int = 50,
    include_children: bool = False,
) -> list[Task]:
    """Newest first."""
    _reap(ctx)
    query = select(Task).order_by(Task.submitted_at.desc(), Task.id).offset(skip).limit(limit)
    if kind:
        query = query.where(Task.kind == kind)
    if status:
        query = query.where(Task.status == status)
    if not include_children:
        query = query.where(Task.parent_id.is_(None))
    with ctx.db.session() as session:
        return list(session.scalars(query))


def cancel_task(ctx: Context, task_id: uuid.UUID, principal: Principal | None = None) -> Task:
    """A PENDING task ends REVOKED at once; a STARTED one is stopped by its worker.
    ``principal`` (None: the system) may cancel its own tasks, an admin any task."""
    task = get_task(ctx, task_id)
    if principal is not None and principal.role != Role.ADMIN and task.created_by != principal.key_id:
        raise Forbidden(
            f"task {task_id} was submitted by another key; only that key or an admin key can cancel it",
            role_needed=Role.ADMIN.value,
        )
    if task.status in FINISHED:
        raise Conflict(f"task {task_id} already finished with status {task.status}; nothing to cancel")
    now = utcnow()
    revoked = {"status": REVOKED, "cancel_requested": True, "finished_at": now, "error_type": "Cancelled",
               "error_message": "cancelled before it started"}
    with ctx.db.session() as session:
        session.execute(update(Task).where(Task.id == task_id).values(cancel_requested=True))
        session.execute(update(Task).where(Task.id == task_id, Task.status == PENDING, Task.children_total == 0).values(**revoked))
        # Children not started yet will never report: end them here and count them done.
        n_children = session.execute(
            update(Task).where(Task.parent_id == task_id, Task.status == PENDING).values(**revoked)
        ).rowcount
        session.execute(update(Task).where(Task.parent_id == task_id).values(cancel_requested=True))
        if n_children:
            session.execute(update(Task).where(Task.id == task_id).values(children_done=Task.children_done + n_children))
    _finish_parent_if_nothing_runs(ctx, task_id)
    return get_task(ctx, task_id)


def _reap(ctx: Context) -> None:
    """End the tasks whose worker stopped reporting before anyone reads them (the
    executor's reaper does it every few seconds as well)."""
    reap_stale(ctx)


def _fail_unsent(ctx: Context, parent_id: uuid.UUID, message: str) -> None:
    with ctx.db.session() as session:
        session.execute(
            update(Task).where((Task.id == parent_id) | (Task.parent_id == parent_id), Task.status == PENDING)
            .values(status=FAILURE, finished_at=utcnow(), error_type="DependencyUnavailable", error_message=message)
        )


def _finish_parent_if_nothing_runs(ctx: Context, task_id: uuid.UUID) -> None:
    """A cancelled parent whose children were all still pending has no child left to end it."""
    with ctx.db.session() as session:
        task = session.get(Task, task_id)
        if task is None or task.children_total == 0 or task.status in FINISHED:
            return
        running = session.scalar(select(Task.id).where(Task.parent_id == task_id, Task.status == STARTED).limit(1))
        if running is None:
            task.status, task.finished_at = REVOKED, utcnow()
            task.error_type, task.error_message = "Cancelled", "cancelled on request"
