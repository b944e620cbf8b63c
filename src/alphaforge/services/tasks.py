"""Tasks as the API sees them: submit, read, list, cancel.

Submitting writes the row(s) first and then hands the id to the executor, so a worker
always finds its request; an executor that cannot take it (broker down) ends the task
FAILURE and answers 503.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update

from alphaforge.context import Context
from alphaforge.auth.keys import Principal
from alphaforge.auth.roles import Role
from alphaforge.errors import Conflict, DependencyUnavailable, Forbidden, NotFound
from alphaforge.storage.db import utcnow
from alphaforge.storage.tables import Task
from alphaforge.tasks.runner import FAILURE, FINISHED, PENDING, REVOKED, STARTED, reap_stale

NOT_FOUND = "Task not found"


def submit(ctx: Context, kind: str, request: dict[str, Any], children: list[tuple[str, dict[str, Any]]] | None = None) -> Task:
    """One task, or a parent whose work is ``children`` (kind, request) run in parallel."""
    assert ctx.executor is not None, "tasks are submitted by the API process"
    parent = Task(id=uuid.uuid4(), kind=kind, status=PENDING, request=request, children_total=len(children or []))
    rows = [Task(id=uuid.uuid4(), kind=k, status=PENDING, request=r, parent_id=parent.id) for k, r in children or []]
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


def get_task(ctx: Context, task_id: uuid.UUID) -> Task:
    _reap(ctx)
    with ctx.db.session() as session:
        task = session.get(Task, task_id)
        if task is None:
            raise NotFound(NOT_FOUND)
        return task


def task_status(ctx: Context, task_id: uuid.UUID) -> str | None:
    with ctx.db.session() as session:
        return session.scalar(select(Task.status).where(Task.id == task_id))


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


def _reap(ctx: Context) -> None:
    """End the tasks that can no longer finish before anyone reads them."""
    fail_orphans(ctx)
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
