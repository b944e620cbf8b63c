from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from alphaforge.api.security import READ, RESEARCH, PrincipalDep
from alphaforge.schemas.errors import responses
from alphaforge.api.deps import CtxDep
from alphaforge.schemas.tasks import TaskError, TaskKindName, TaskRead, TaskStatus, TaskSubmitted
from alphaforge.tasks import service
from alphaforge.storage.tables import Task

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.get("", response_model=list[TaskRead], dependencies=[READ])
def list_tasks(
    ctx: CtxDep,
    kind: TaskKindName | None = None,
    status: TaskStatus | None = None,
    include_children: bool = Query(False, description="Also list the parts of split tasks (trial shards, batch items)"),
    skip: int = Query(0, ge=0, le=10**9),
    limit: int = Query(50, ge=1, le=500),
) -> list[TaskRead]:
    """Recent tasks, newest first."""
    return [task_read(t) for t in service.list_tasks(ctx, kind, status, skip, limit, include_children)]


@router.get("/{task_id}", response_model=TaskRead, dependencies=[READ], responses=responses(404))
def get_task(task_id: uuid.UUID, ctx: CtxDep) -> TaskRead:
    return task_read(service.get_task(ctx, task_id))


@router.post(
    "/{task_id}/cancel",
    response_model=TaskRead,
    dependencies=[RESEARCH],
    responses=responses(404, 409),
)
def cancel_task(task_id: uuid.UUID, ctx: CtxDep, principal: PrincipalDep) -> TaskRead:
    """A pending task is revoked at once; a running one is stopped. A research key cancels
    the tasks it submitted; an admin key any task."""
    return task_read(service.cancel_task(ctx, task_id, principal))


def task_read(task: Task) -> TaskRead:
    return TaskRead(
        task_id=task.id,
        kind=task.kind,
        status=task.status,  # type: ignore[arg-type]
        progress=task.progress,
        progress_message=task.progress_message,
        result=task.result,
        error=None if task.error_type is None else TaskError(type=task.error_type, message=task.error_message or ""),
        attempts=task.attempts,
        parent_id=task.parent_id,
        children_total=task.children_total,
        children_done=task.children_done,
        submitted_at=task.submitted_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
        created_by=task.created_by,
    )


def submitted(task: Task) -> TaskSubmitted:
    return TaskSubmitted(task_id=task.id, kind=task.kind, status=task.status)  # type: ignore[arg-type]
