"""How routes hand heavy work to the task workers: the ``time_limit_s`` query parameter
every such route takes, and the submit-and-wait of the synchronous routes (the same task
their ``/async`` twins submit, so both answer alike)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request

from alphaforge.context import Context
from alphaforge.tasks import service as tasks

TimeLimit = Annotated[
    float | None,
    Query(
        gt=0,
        description="Wall-clock limit of the work in seconds; at most, and by default, the service's "
        "ALPHAFORGE_TASK_TIME_LIMIT_S. Work past it is stopped and ends FAILURE.",
    ),
]


async def run_and_wait(
    request: Request, ctx: Context, kind: str, payload: dict[str, Any],
    children: tasks.Children | None = None, time_limit_s: float | None = None,
) -> dict[str, Any]:
    """Run the work as a task in a worker and answer with its result (or its error)."""
    return await tasks.run(ctx, kind, payload, children, time_limit_s=time_limit_s, client_gone=request.is_disconnected)
