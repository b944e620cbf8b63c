from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from alphaforge.api.deps import CtxDep
from alphaforge.api.routes.tasks import submitted
from alphaforge.api.security import ADMIN, READ, RESEARCH
from alphaforge.api.work import TimeLimit, run_and_wait
from alphaforge.context import Context
from alphaforge.errors import NotFound
from alphaforge.marketdata.bars import Timeframe
from alphaforge.plugins.features import feature_plugins
from alphaforge.schemas.errors import responses
from alphaforge.schemas.features import (
    FeatureCreate,
    FeatureDatasetRead,
    FeatureGenerateRequest,
    FeatureGenerateResponse,
    FeatureLibrary,
    FeaturePanelRead,
    FeaturePanelRequest,
    FeaturePanelResponse,
    FeaturePanelsRequest,
    FeaturePanelsResponse,
    FeaturePluginCatalog,
    FeatureRead,
    FeatureUpdate,
)
from alphaforge.schemas.request import SymbolPath
from alphaforge.schemas.tasks import BatchGenerateRequest, TaskSubmitted
from alphaforge.features import definitions as service
from alphaforge.features.definitions import NOT_FOUND
from alphaforge.features import generation, library, panels
from alphaforge.tasks import service as tasks

router = APIRouter(prefix="/features", tags=["features"])


# Declared before /{feature_id} so "plugins" is never read as an id.
@router.get("/plugins/available", response_model=FeaturePluginCatalog, dependencies=[READ])
def available_plugins() -> FeaturePluginCatalog:
    """Registered plugin keys, plus each plugin's metadata (parameter schema, outputs, warm-up)."""
    return FeaturePluginCatalog(
        plugins=feature_plugins.keys(), metadata={cls.key: cls.describe() for cls in feature_plugins}
    )


@router.get("/library", response_model=FeatureLibrary, dependencies=[READ])
def feature_library() -> FeatureLibrary:
    """Ready-made definitions to copy into POST /api/v1/features (e.g. Alpha158 as one
    automated.expression feature), and the expression language's operators."""
    return FeatureLibrary(templates=library.templates(), operators=library.operators())


@router.post(
    "/panels",
    response_model=FeaturePanelsResponse,
    dependencies=[RESEARCH],
    responses=responses(404, 409, 429, 502),
)
async def generate_panels(
    body: FeaturePanelsRequest, ctx: CtxDep, request: Request, time_limit_s: TimeLimit = None,
) -> FeaturePanelsResponse:
    """Several features over the same universe (or symbols) and range, in one request: each
    answered with its panel, as ``POST /{feature_id}/panels`` would (stored panels at once),
    the missing ones built by one task whose batches of members compute every feature."""
    plans = await run_in_threadpool(_plan_panels, ctx, body)
    hits = await run_in_threadpool(lambda: [panels.cached_panel(ctx, plan) for plan in plans])
    if all(hit is not None for hit in hits):
        return FeaturePanelsResponse(panels=[
            FeaturePanelResponse(panel=FeaturePanelRead.model_validate(h.panel), preview=h.preview, cached=True)
            for h in hits if h is not None
        ])
    result = await run_and_wait(request, ctx, "generate_panels", _panels_request(plans), _panel_children(ctx, plans),
                                time_limit_s=time_limit_s)
    response = FeaturePanelsResponse.model_validate(result)
    for one, answer in zip(response.panels, result["panels"], strict=True):
        panels.remember_preview(one.panel.storage_uri, answer["preview"])
    return response


@router.post(
    "/panels/async",
    response_model=TaskSubmitted,
    status_code=202,
    dependencies=[RESEARCH],
    responses=responses(404, 429, 502),
)
def generate_panels_async(body: FeaturePanelsRequest, ctx: CtxDep, time_limit_s: TimeLimit = None) -> TaskSubmitted:
    """The same panels as one task (its result: ``{"panels": [...]}``): refused now
    (404/422) exactly as the synchronous call would be."""
    plans = _plan_panels(ctx, body)
    return submitted(tasks.submit(ctx, "generate_panels", _panels_request(plans), _panel_children(ctx, plans),
                                  time_limit_s=time_limit_s))


@router.post("", response_model=FeatureRead, status_code=201, dependencies=[RESEARCH])
def create_feature(body: FeatureCreate, ctx: CtxDep) -> FeatureRead:
    return FeatureRead.model_validate(service.create_feature(ctx, body))


@router.get("", response_model=list[FeatureRead], dependencies=[READ])
def list_features(ctx: CtxDep, skip: int = Query(0, ge=0, le=10**9), limit: int = Query(100, ge=1, le=1000)) -> list[FeatureRead]:
    return [FeatureRead.model_validate(f) for f in service.list_features(ctx, skip, limit)]


@router.get("/{feature_id}", response_model=FeatureRead, dependencies=[READ], responses=responses(404))
def get_feature(feature_id: uuid.UUID, ctx: CtxDep) -> FeatureRead:
    return FeatureRead.model_validate(service.get_feature(ctx, feature_id))


@router.patch(
    "/{feature_id}",
    response_model=FeatureRead,
    dependencies=[RESEARCH],
    responses=responses(404, 409),
)
def update_feature(feature_id: uuid.UUID, body: FeatureUpdate, ctx: CtxDep) -> FeatureRead:
    return FeatureRead.model_validate(service.update_feature(ctx, feature_id, body))


@router.delete("/{feature_id}", status_code=204, dependencies=[ADMIN], responses=responses(404))
def delete_feature(feature_id: uuid.UUID, ctx: CtxDep) -> Response:
    """Deletes the definition, its dataset rows and their stored Parquet objects."""
    service.delete_feature(ctx, feature_id)
    return Response(status_code=204)


@router.post(
    "/{feature_id}/generate",
    response_model=FeatureGenerateResponse,
    dependencies=[RESEARCH],
    responses=responses(404, 409, 429, 502),
)
async def generate(
    feature_id: uuid.UUID, body: FeatureGenerateRequest, ctx: CtxDep, request: Request, time_limit_s: TimeLimit = None,
) -> FeatureGenerateResponse:
    """Return the dataset for this definition, symbol and range. A hit is answered at once;
    a miss is computed by a task worker (the same task ``/generate/async`` submits)."""
    hit = await run_in_threadpool(generation.cached_dataset, ctx, feature_id, body)
    if hit is not None:
        return _response(hit)
    result = await run_and_wait(request, ctx, "generate", _generate_request(feature_id, body), time_limit_s=time_limit_s)
    return FeatureGenerateResponse.model_validate(result)


@router.post(
    "/{feature_id}/generate/async",
    response_model=TaskSubmitted,
    status_code=202,
    dependencies=[RESEARCH],
    responses=responses(404, 429, 502),
)
def generate_async(
    feature_id: uuid.UUID, body: FeatureGenerateRequest, ctx: CtxDep, time_limit_s: TimeLimit = None,
) -> TaskSubmitted:
    """The same generate as a task: refused now (404/422) exactly as the synchronous call would be."""
    generation.check_generate_request(ctx, feature_id, body)
    return submitted(tasks.submit(ctx, "generate", _generate_request(feature_id, body), time_limit_s=time_limit_s))


@router.post(
    "/generate",
    response_model=TaskSubmitted,
    status_code=202,
    dependencies=[RESEARCH],
    responses=responses(404, 429, 502),
)
def generate_batch(body: BatchGenerateRequest, ctx: CtxDep, time_limit_s: TimeLimit = None) -> TaskSubmitted:
    """Every feature × symbol, generated in parallel; the task's result lists each dataset."""
    feature_ids, symbols = list(dict.fromkeys(body.feature_ids)), list(dict.fromkeys(body.symbols))
    tasks.check_caps(ctx, len(feature_ids) * len(symbols))  # before checking each pair
    unknown = [str(f) for f in feature_ids if not _exists(ctx, f)]
    if unknown:
        raise NotFound(f"Unknown feature id(s): {', '.join(unknown)}")
    children = []
    for feature_id in feature_ids:
        for symbol in symbols:
            one = FeatureGenerateRequest(symbol=symbol, timeframe=body.timeframe, start_date=body.start_date, end_date=body.end_date)
            generation.check_generate_request(ctx, feature_id, one)
            children.append(("generate", _generate_request(feature_id, one)))
    return submitted(tasks.submit(ctx, "generate_batch", body.model_dump(mode="json"), children, time_limit_s=time_limit_s))


@router.post(
    "/{feature_id}/regenerate",
    response_model=FeatureGenerateResponse,
    dependencies=[RESEARCH],
    responses=responses(404, 409, 429, 502),
)
async def regenerate(
    feature_id: uuid.UUID, body: FeatureGenerateRequest, ctx: CtxDep, request: Request, time_limit_s: TimeLimit = None,
) -> FeatureGenerateResponse:
    """Re-read the bars and recompute (in a task worker); a new dataset version only when the hash changed."""
    await run_in_threadpool(generation.check_generate_request, ctx, feature_id, body)
    payload = _generate_request(feature_id, body) | {"force": True}
    result = await run_and_wait(request, ctx, "generate", payload, time_limit_s=time_limit_s)
    return FeatureGenerateResponse.model_validate(result)


@router.get(
    "/{feature_id}/versions",
    response_model=list[FeatureDatasetRead],
    dependencies=[READ],
    responses=responses(404),
)
def versions(feature_id: uuid.UUID, ctx: CtxDep, symbol: SymbolPath, timeframe: Timeframe = Timeframe.DAY) -> list[FeatureDatasetRead]:
    """Every dataset of this feature for a symbol and timeframe, oldest first."""
    rows = generation.list_datasets(ctx, feature_id, symbol, timeframe.value)
    return [FeatureDatasetRead.model_validate(r) for r in rows]


@router.get(
    "/{feature_id}/datasets",
    response_model=list[FeatureDatasetRead],
    dependencies=[READ],
    responses=responses(404),
)
def datasets(
    feature_id: uuid.UUID,
    ctx: CtxDep,
    symbol: SymbolPath | None = None,
    timeframe: Timeframe | None = None,
    skip: int = Query(0, ge=0, le=10**9),
    limit: int = Query(100, ge=1, le=1000),
) -> list[FeatureDatasetRead]:
    """Every stored dataset of this feature, of every symbol and timeframe unless filtered,
    oldest first (``/versions`` is one symbol's); read one whole with ``/datasets/{id}/data``."""
    rows = generation.list_datasets(ctx, feature_id, symbol, timeframe.value if timeframe else None, skip, limit)
    return [FeatureDatasetRead.model_validate(r) for r in rows]


@router.post(
    "/{feature_id}/panels",
    response_model=FeaturePanelResponse,
    dependencies=[RESEARCH],
    responses=responses(404, 409, 429, 502),
)
async def generate_panel(
    feature_id: uuid.UUID, body: FeaturePanelRequest, ctx: CtxDep, request: Request, time_limit_s: TimeLimit = None,
) -> FeaturePanelResponse:
    """The feature over a universe's members (or a list of symbols), keyed by (timestamp,
    symbol). A stored panel is answered at once; otherwise each member's dataset is generated
    by the task workers (hits stay hits) and the panel assembled from them."""
    plan = await run_in_threadpool(panels.plan_panel, ctx, feature_id, body)
    hit = await run_in_threadpool(panels.cached_panel, ctx, plan)
    if hit is not None:
        return FeaturePanelResponse(panel=FeaturePanelRead.model_validate(hit.panel), preview=hit.preview, cached=True)
    children = _panel_children(ctx, [plan])
    result = await run_and_wait(request, ctx, "generate_panel", panels.task_request(plan), children, time_limit_s=time_limit_s)
    response = FeaturePanelResponse.model_validate(result)
    panels.remember_preview(response.panel.storage_uri, result["preview"])
    return response


@router.post(
    "/{feature_id}/panels/async",
    response_model=TaskSubmitted,
    status_code=202,
    dependencies=[RESEARCH],
    responses=responses(404, 429, 502),
)
def generate_panel_async(
    feature_id: uuid.UUID, body: FeaturePanelRequest, ctx: CtxDep, time_limit_s: TimeLimit = None,
) -> TaskSubmitted:
    """The same panel as a task: refused now (404/422) exactly as the synchronous call would be."""
    plan = panels.plan_panel(ctx, feature_id, body)
    children = _panel_children(ctx, [plan])
    return submitted(tasks.submit(ctx, "generate_panel", panels.task_request(plan), children, time_limit_s=time_limit_s))


@router.get(
    "/{feature_id}/panels",
    response_model=list[FeaturePanelRead],
    dependencies=[READ],
    responses=responses(404),
)
def list_panels(feature_id: uuid.UUID, ctx: CtxDep) -> list[FeaturePanelRead]:
    """Every stored panel of this feature, oldest first."""
    return [FeaturePanelRead.model_validate(p) for p in panels.list_panels(ctx, feature_id)]


#: The two forms of stored values (a dataset's, a panel's) in the OpenAPI schema.
_STORED_DATA = responses(404) | {200: {"content": {
    "application/json": {}, generation.PARQUET_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}}


@router.get("/{feature_id}/panels/{panel_id}/data", dependencies=[READ], responses=_STORED_DATA)
async def panel_data(
    request: Request, feature_id: uuid.UUID, panel_id: uuid.UUID, ctx: CtxDep,
    format: Literal["json", "parquet"] = "json",
) -> Response:
    """The stored panel: Parquet (columns timestamp, symbol and the feature's outputs), or
    JSON records (refused with 422 above a row cap: ask for Parquet). A panel of per-symbol
    pieces is stacked into one file by a task worker the first time it is asked for."""
    panel = await run_in_threadpool(panels.get_panel, ctx, feature_id, panel_id)
    if format == "json":
        generation.check_row_cap(panel.row_count, panels.JSON_MAX_ROWS, "the panel")
    data = await run_in_threadpool(panels.panel_parquet, ctx, panel)
    if data is None:
        await run_and_wait(request, ctx, "stack_panel", {"feature_id": str(feature_id), "panel_id": str(panel_id)})
        data = await run_in_threadpool(panels.panel_parquet, ctx, panel)
        if data is None:
            raise NotFound(f"the panel's stacked copy is gone; ask again (GET /api/v1/features/{feature_id}/panels/{panel_id}/data)")
    stored = data
    return await run_in_threadpool(_stored, format, lambda: stored, lambda: panels.panel_records(ctx, panel, lambda: stored))


@router.get("/{feature_id}/datasets/{dataset_id}/data", dependencies=[READ], responses=_STORED_DATA)
def dataset_data(
    feature_id: uuid.UUID, dataset_id: uuid.UUID, ctx: CtxDep, format: Literal["json", "parquet"] = "json",
) -> Response:
    """One symbol's stored dataset (its id from generate or /versions), whole: Parquet (the
    timestamp index and the feature's outputs), or JSON records (422 above a row cap: ask
    for Parquet). The generate response holds only a preview."""
    dataset = generation.get_dataset(ctx, feature_id, dataset_id)
    return _stored(format, lambda: generation.dataset_parquet(ctx, dataset), lambda: generation.dataset_records(ctx, dataset))


def _stored(format: str, parquet: Callable[[], bytes], records: Callable[[], list[dict[str, Any]]]) -> Response:
    if format == "parquet":
        return Response(parquet(), media_type=generation.PARQUET_MEDIA_TYPE)
    return JSONResponse(records())


def _panel_children(ctx: Context, plans: list[panels.PanelPlan]) -> tasks.Children:
    """The pieces in one batch per task worker (``panels.piece_batches``); capped before
    anything is submitted."""
    batches = panels.piece_batches(plans, ctx.settings.task_workers)
    tasks.check_caps(ctx, len(batches))
    return [
        ("generate_pieces", {"parts": [
            {"feature_id": str(feature_id), "bodies": [piece.model_dump(mode="json") for piece in pieces]}
            for feature_id, pieces in batch
        ]})
        for batch in batches
    ]


def _plan_panels(ctx: Context, body: FeaturePanelsRequest) -> list[panels.PanelPlan]:
    """Every feature's plan: any refusal (404 naming the unknown ids, 422) before anything
    is submitted."""
    one, memo = body.one(), panels.PlanMemo()
    plans, unknown = [], []
    for feature_id in body.feature_ids:
        try:
            plans.append(panels.plan_panel(ctx, feature_id, one, memo=memo))
        except NotFound as exc:
            if str(exc) != NOT_FOUND:  # the universe, not the feature
                raise
            unknown.append(str(feature_id))
    if unknown:
        raise NotFound(f"Unknown feature id(s): {', '.join(unknown)}")
    return plans


def _panels_request(plans: list[panels.PanelPlan]) -> dict[str, Any]:
    return {"panels": [panels.task_request(plan) for plan in plans]}


def _generate_request(feature_id: uuid.UUID, body: FeatureGenerateRequest) -> dict[str, Any]:
    return {"feature_id": str(feature_id), "body": body.model_dump(mode="json")}


def _exists(ctx: Context, feature_id: uuid.UUID) -> bool:
    try:
        service.get_feature(ctx, feature_id)
    except NotFound:
        return False
    return True


def _response(result: generation.GenerateResult) -> FeatureGenerateResponse:
    return FeatureGenerateResponse(
        dataset=FeatureDatasetRead.model_validate(result.dataset), preview=result.preview, cached=result.cached
    )
