"""Macro series, point in time: list, read (with a vintage view), ingest."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from alphaforge.api.security import ADMIN, READ
from alphaforge.schemas.errors import responses
from alphaforge.api.deps import CtxDep, read_upload, upload_openapi
from alphaforge.ingestion import service as ingestion
from alphaforge.marketdata import service
from alphaforge.schemas.macro import (
    MacroIngestResponse,
    MacroRecord,
    MacroRecordsResponse,
    MacroSeriesInfo,
    MacroSeriesList,
    MacroUpload,
)
from alphaforge.schemas.request import RequestTime, SeriesPath

router = APIRouter(prefix="/market-data/macro", tags=["macro data"])

_UPLOAD_DOC = upload_openapi(MacroUpload)


@router.get("", response_model=MacroSeriesList, dependencies=[READ])
def list_series(ctx: CtxDep) -> MacroSeriesList:
    return MacroSeriesList(series=[MacroSeriesInfo(**i.__dict__) for i in ctx.macro.list_series()])


@router.get("/{series}", response_model=MacroRecordsResponse, dependencies=[READ], responses=responses(404))
def get_series(
    series: SeriesPath,
    ctx: CtxDep,
    start: RequestTime | None = None,
    end: RequestTime | None = None,
    as_of: RequestTime | None = None,
    latest_only: bool = False,
) -> MacroRecordsResponse:
    """Records with start <= observation_date < end. ``as_of`` is the vintage view: only
    records with available_at <= as_of (what was known then); ``latest_only`` keeps each
    observation's latest such vintage. Naive times are UTC."""
    found = service.macro_records(ctx, series, start, end, as_of, latest_only)
    return MacroRecordsResponse(
        series=found.series,
        as_of=found.as_of,
        n_records=len(found.records),
        fingerprint=found.fingerprint,
        records=[MacroRecord(**r) for r in found.records],
    )


@router.post(
    "/{series}",
    response_model=MacroIngestResponse,
    openapi_extra=_UPLOAD_DOC,
    dependencies=[ADMIN],
    responses=responses(409, 415),
)
async def ingest_series(series: SeriesPath, request: Request, ctx: CtxDep) -> MacroIngestResponse:
    """Ingest records (observation_date, available_at, value) from a CSV file (multipart
    field ``file``) or JSON ``{"records": [...]}``.

    Every record passes the data-quality gate or nothing is stored (422 naming the bad
    rows). Identical records are no-ops; a new available_at for a stored observation is a
    restatement and is added; another value for a stored (observation_date, available_at)
    is a 409: history is never rewritten.
    """
    shape = '{"records": [{observation_date, available_at, value}, ...]}'
    async with read_upload(request, MacroUpload, shape) as records:
        report = await run_in_threadpool(ingestion.ingest_macro, ctx, series, records)
    return MacroIngestResponse(**report.__dict__)
