from __future__ import annotations

import uuid

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from alphaforge.api.deps import CtxDep
from alphaforge.api.routes.tasks import submitted
from alphaforge.api.security import ADMIN, READ, RESEARCH
from alphaforge.api.work import TimeLimit, run_and_wait
from alphaforge.plugins.models import model_plugins
from alphaforge.schemas.errors import responses
from alphaforge.schemas.request import RequestText
from alphaforge.schemas.models import (
    ModelCreate,
    ModelCrossValidation,
    ModelPluginCatalog,
    ModelRead,
    ModelUpdate,
    PredictRequest,
    PredictResponse,
    TrainRequest,
    TrainResponse,
)
from alphaforge.schemas.tasks import TaskSubmitted
from alphaforge.training import definitions as service
from alphaforge.training import history, out_of_fold, prediction
from alphaforge.tasks import service as tasks
from alphaforge.training import trainer

router = APIRouter(prefix="/models", tags=["models"])


# Declared before /{model_id} so "plugins" is never read as an id.
@router.get("/plugins/available", response_model=ModelPluginCatalog, dependencies=[READ])
def available_plugins() -> ModelPluginCatalog:
    """Registered plugin keys, plus each plugin's family, short name, parameter schema and search space."""
    return ModelPluginCatalog(plugins=model_plugins.keys(), metadata={cls.key: cls.describe() for cls in model_plugins})


@router.get("/plugins/search-spaces", dependencies=[READ])
def search_spaces() -> dict[str, dict[str, dict]]:
    """Each plugin's default tuning space: ``{plugin_key: {param: ParamSpec}}``."""
    return {cls.key: cls.describe()["search_space"] for cls in model_plugins}


@router.post("", response_model=ModelRead, status_code=201, dependencies=[RESEARCH])
def create_model(body: ModelCreate, ctx: CtxDep) -> ModelRead:
    return service.model_read(service.create_model(ctx, body))


@router.get(
    "/out-of-fold",
    dependencies=[READ],
    responses=responses(404) | {200: {"content": {
        "application/json": {}, out_of_fold.PARQUET_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}},
)
def out_of_fold_by_uri(
    ctx: CtxDep,
    uri: Annotated[RequestText, Query(max_length=1000, description="an out_of_fold_uri from a tuning trial or a leaderboard row")],
    format: Literal["json", "parquet"] = "json",
) -> Response:
    """Test-fold forecasts a tuning trial or an AutoML leaderboard row points at (a model's
    own: GET /api/v1/models/{id}/out-of-fold)."""
    if format == "parquet":
        return Response(out_of_fold.parquet_at(ctx, uri), media_type=out_of_fold.PARQUET_MEDIA_TYPE)
    return JSONResponse(out_of_fold.records_of(out_of_fold.parquet_at(ctx, uri)))


@router.get("", response_model=list[ModelRead], dependencies=[READ])
def list_models(ctx: CtxDep, skip: int = Query(0, ge=0, le=10**9), limit: int = Query(100, ge=1, le=1000)) -> list[ModelRead]:
    return [service.model_read(m) for m in service.list_models(ctx, skip, limit)]


@router.get("/{model_id}", response_model=ModelRead, dependencies=[READ], responses=responses(404))
def get_model(model_id: uuid.UUID, ctx: CtxDep) -> ModelRead:
    return service.model_read(service.get_model(ctx, model_id))


@router.get(
    "/{model_id}/out-of-fold",
    dependencies=[READ],
    responses=responses(404) | {200: {"content": {
        "application/json": {}, out_of_fold.PARQUET_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}},
)
def model_out_of_fold(model_id: uuid.UUID, ctx: CtxDep, format: Literal["json", "parquet"] = "json") -> Response:
    """The last training's test-fold predictions: timestamp, symbol, fold, prediction and the
    target they were scored against. Parquet, or JSON records (422 above a row cap)."""
    model = service.get_model(ctx, model_id)
    if format == "parquet":
        return Response(out_of_fold.parquet(ctx, model_id, model.out_of_fold_uri), media_type=out_of_fold.PARQUET_MEDIA_TYPE)
    return JSONResponse(out_of_fold.records_of(out_of_fold.parquet(ctx, model_id, model.out_of_fold_uri)))


@router.get("/{model_id}/cv", response_model=ModelCrossValidation, dependencies=[READ], responses=responses(404))
def model_cross_validation(model_id: uuid.UUID, ctx: CtxDep) -> ModelCrossValidation:
    """The last training's cross-validation: each fold's train and test spans and scores, the
    summary and the naive baseline (the model itself keeps only the summary in ``metrics``)."""
    return history.last_cross_validation(ctx, model_id)


@router.patch("/{model_id}", response_model=ModelRead, dependencies=[RESEARCH], responses=responses(404, 409))
def update_model(model_id: uuid.UUID, body: ModelUpdate, ctx: CtxDep) -> ModelRead:
    """Edit the definition; every PATCH bumps ``version`` (send the one you read: 409 if stale).

    ``artifact_uri``, ``metrics`` and ``mlflow_run_id`` amend the last training by hand (409
    for a model never trained): the artifact must be stored in the object store (422), its
    SHA-256 is computed from its bytes and checked before every prediction; bytes a training
    stored bring that training's recipe into the lineage (prediction recomputes the features
    from it), others keep the lineage's; the run must exist in MLflow (422; 503 when down);
    the metrics are shown as ``metrics_source: "manual"`` with the CV summary kept in
    ``cv_metrics``. ``lineage.manual`` records who set what, when, and what it replaced.
    The next training replaces them all."""
    return service.model_read(service.update_model(ctx, model_id, body))


@router.delete("/{model_id}", status_code=204, dependencies=[ADMIN], responses=responses(404))
def delete_model(model_id: uuid.UUID, ctx: CtxDep) -> Response:
    """Deletes the definition and every artifact stored for it (its MLflow runs stay)."""
    service.delete_model(ctx, model_id)
    return Response(status_code=204)


@router.post(
    "/{model_id}/train",
    response_model=TrainResponse,
    dependencies=[RESEARCH],
    responses=responses(404, 409, 429, 502),
)
async def train(
    model_id: uuid.UUID, body: TrainRequest, ctx: CtxDep, request: Request, time_limit_s: TimeLimit = None,
) -> TrainResponse:
    """Cross-validate (purged walk-forward), fit on all rows, store the artifact, log to MLflow.

    Runs in a task worker (the same task ``/train/async`` submits): the API keeps answering,
    and the work is bounded by its time and memory limits."""
    await run_in_threadpool(trainer.check_train_request, ctx, model_id, body)
    result = await run_and_wait(request, ctx, "train", _train_request(model_id, body), time_limit_s=time_limit_s)
    return TrainResponse.model_validate(result)


@router.post(
    "/{model_id}/train/async",
    response_model=TaskSubmitted,
    status_code=202,
    dependencies=[RESEARCH],
    responses=responses(404, 429, 502),
)
def train_async(model_id: uuid.UUID, body: TrainRequest, ctx: CtxDep, time_limit_s: TimeLimit = None) -> TaskSubmitted:
    """The same training as a task: refused now (404/422) by the same checks as the synchronous call."""
    trainer.check_train_request(ctx, model_id, body)
    return submitted(tasks.submit(ctx, "train", _train_request(model_id, body), time_limit_s=time_limit_s))


@router.post(
    "/{model_id}/predict",
    response_model=PredictResponse,
    dependencies=[RESEARCH],
    responses=responses(404, 409, 429, 502),
)
async def predict(
    model_id: uuid.UUID, body: PredictRequest, ctx: CtxDep, request: Request, time_limit_s: TimeLimit = None,
) -> PredictResponse:
    """Forecasts from the stored artifact, on features recomputed exactly as trained (in a task worker).

    Each bar's forecast is what the model would have said live on that date: features up to
    the bar and labels realised by it (filters run from the symbol's first bar), so any
    range, before, inside or after the training span, gives the same value for a bar. For a
    universe (or a list of symbols) every member's forecasts while it was a member, as rows
    (timestamp, symbol, prediction) sorted by timestamp then symbol."""
    await run_in_threadpool(prediction.check_predict_request, ctx, model_id, body)
    payload = {"model_id": str(model_id), "body": body.model_dump(mode="json")}
    return PredictResponse.model_validate(await run_and_wait(request, ctx, "predict", payload, time_limit_s=time_limit_s))


def _train_request(model_id: uuid.UUID, body: TrainRequest) -> dict[str, Any]:
    return {"model_id": str(model_id), "body": body.model_dump(mode="json")}
