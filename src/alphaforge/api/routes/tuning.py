"""Tuning and AutoML. Both run in task workers: the synchronous routes submit the same task
as their ``/async`` twins and wait for it."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from alphaforge.api.deps import CtxDep
from alphaforge.api.routes.tasks import submitted
from alphaforge.api.security import RESEARCH
from alphaforge.api.work import TimeLimit, run_and_wait
from alphaforge.context import Context
from alphaforge.schemas.errors import responses
from alphaforge.schemas.tasks import TaskSubmitted
from alphaforge.schemas.tuning import AutoMLRequest, AutoMLResponse, TuneRequest, TuneResponse
from alphaforge.tuning import automl as automl_service
from alphaforge.tasks import service as tasks
from alphaforge.tuning import tuner as tuning_service

router = APIRouter(prefix="/models", tags=["tuning"])


@router.post(
    "/tune",
    response_model=TuneResponse,
    dependencies=[RESEARCH],
    responses=responses(404, 409, 429, 502),
)
async def tune(body: TuneRequest, ctx: CtxDep, request: Request, time_limit_s: TimeLimit = None) -> TuneResponse:
    """An Optuna study over the plugin's parameters, scored with training's purged walk-forward CV.

    Its trials run one after another in one worker, so the same request gives the same
    trials (``/tune/async`` spreads them over the workers). The study is stored in the
    service's database; the response lists every trial (state, params, score, duration) and
    names the MLflow parent run (one child run per trial)."""
    payload, children = await run_in_threadpool(_tune_task, ctx, body, 1)
    return TuneResponse.model_validate(await run_and_wait(request, ctx, "tune", payload, children, time_limit_s))


@router.post(
    "/automl",
    response_model=AutoMLResponse,
    dependencies=[RESEARCH],
    responses=responses(404, 409, 429, 502),
)
async def automl(body: AutoMLRequest, ctx: CtxDep, request: Request, time_limit_s: TimeLimit = None) -> AutoMLResponse:
    """Rank candidate plugins on one dataset (optionally tuning each); a failing candidate gets an error row."""
    await run_in_threadpool(automl_service.check_automl_request, ctx, body)
    payload = {"body": body.model_dump(mode="json")}
    return AutoMLResponse.model_validate(await run_and_wait(request, ctx, "automl", payload, time_limit_s=time_limit_s))


@router.post(
    "/tune/async",
    response_model=TaskSubmitted,
    status_code=202,
    dependencies=[RESEARCH],
    responses=responses(404, 429, 502),
)
def tune_async(body: TuneRequest, ctx: CtxDep, time_limit_s: TimeLimit = None) -> TaskSubmitted:
    """The same tune as a task, its trials spread over the workers sharing one study.

    Refused now (404/422) by the same checks as the synchronous call; the task's progress
    is the share of trials finished, its result the TuneResponse."""
    payload, children = _tune_task(ctx, body, min(ctx.settings.task_workers, body.n_trials))
    return submitted(tasks.submit(ctx, "tune", payload, children, time_limit_s=time_limit_s))


@router.post(
    "/automl/async",
    response_model=TaskSubmitted,
    status_code=202,
    dependencies=[RESEARCH],
    responses=responses(404, 429, 502),
)
def automl_async(body: AutoMLRequest, ctx: CtxDep, time_limit_s: TimeLimit = None) -> TaskSubmitted:
    """The same AutoML as a task; progress moves candidate by candidate."""
    automl_service.check_automl_request(ctx, body)
    return submitted(tasks.submit(ctx, "automl", {"body": body.model_dump(mode="json")}, time_limit_s=time_limit_s))


def _tune_task(ctx: Context, body: TuneRequest, shards: int) -> tuple[dict[str, Any], tasks.Children]:
    """Check the request, create its study, and describe the task: ``shards`` trial shards
    sharing the study (refused before the study exists when the key is over its cap)."""
    shards = max(1, shards)
    tuning_service.check_tune_request(ctx, body)
    tasks.check_caps(ctx, shards)
    study_name = tuning_service.create_study(ctx, body, f"tune-{uuid.uuid4().hex}")
    payload = {"study_name": study_name, "body": body.model_dump(mode="json")}
    return payload, [("tune_trials", payload)] * shards
