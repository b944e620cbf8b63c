"""Tuning and AutoML: synchronous endpoints (they run in the server's worker threads)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from alphaforge.api.security import RESEARCH
from alphaforge.schemas.errors import responses
from alphaforge.api.deps import CtxDep
from alphaforge.api.routes.tasks import submitted
from alphaforge.schemas.tasks import TaskSubmitted
from alphaforge.services import tasks
from alphaforge.schemas.tuning import AutoMLRequest, AutoMLResponse, TuneRequest, TuneResponse
from alphaforge.services import automl as automl_service
from alphaforge.services import tuning as tuning_service

router = APIRouter(prefix="/models", tags=["tuning"])


@router.post(
    "/tune",
    response_model=TuneResponse,
    dependencies=[RESEARCH],
    responses=responses(404, 409, 429, 502),
)
def tune(body: TuneRequest, ctx: CtxDep) -> TuneResponse:
    """An Optuna study over the plugin's parameters, scored with training's purged walk-forward CV.

    The study is stored in the service's database; the response lists every trial (state,
    params, score, duration) and names the MLflow parent run (one child run per trial)."""
    return tuning_service.tune(ctx, body)


@router.post(
    "/automl",
    response_model=AutoMLResponse,
    dependencies=[RESEARCH],
    responses=responses(404, 409, 429, 502),
)
def automl(body: AutoMLRequest, ctx: CtxDep) -> AutoMLResponse:
    """Rank candidate plugins on one dataset (optionally tuning each); a failing candidate gets an error row."""
    return automl_service.automl(ctx, body)


@router.post(
    "/tune/async",
    response_model=TaskSubmitted,
    status_code=202,
    dependencies=[RESEARCH],
    responses=responses(404, 429, 502),
)
def tune_async(body: TuneRequest, ctx: CtxDep) -> TaskSubmitted:
    """The same tune as a task, its trials spread over the workers sharing one study.

    Refused now (404/422) by the same checks as the synchronous call; the task's progress
    is the share of trials finished, its result the TuneResponse."""
    tuning_service.check_tune_request(ctx, body)
    study_name = tuning_service.create_study(ctx, body, f"tune-{uuid.uuid4().hex}")
    request = {"study_name": study_name, "body": body.model_dump(mode="json")}
    shards = max(1, min(ctx.settings.task_workers, body.n_trials))
    return submitted(tasks.submit(ctx, "tune", request, [("tune_trials", request)] * shards))


@router.post(
    "/automl/async",
    response_model=TaskSubmitted,
    status_code=202,
    dependencies=[RESEARCH],
    responses=responses(404, 429, 502),
)
def automl_async(body: AutoMLRequest, ctx: CtxDep) -> TaskSubmitted:
    """The same AutoML as a task; progress moves candidate by candidate."""
    automl_service.check_automl_request(ctx, body)
    return submitted(tasks.submit(ctx, "automl", {"body": body.model_dump(mode="json")}))
