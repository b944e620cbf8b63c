"""Macro series, point in time: list, read (with a vintage view), ingest."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from alphaforge.api.security import ADMIN, READ
from alphaforge.schemas.errors import responses
from alphaforge.api.deps import CtxDep, read_upload, upload_openapi
from alphaforge.errors import InvalidInput, NotFound
from alphaforge.marketdata.macro import as_utc, normalize_series
from alphaforge.marketdata.pit import PitSeries
from alphaforge.schemas.macro import (
    MacroIngestResponse,
    MacroRecord,
    MacroRecordsResponse,
    MacroSeriesInfo,
    MacroSeriesList,
    MacroUpload,
)
from alphaforge.schemas.request import RequestText, RequestTime

router = APIRouter(prefix="/market-data/macro", tags=["macro data"])

_UPLOAD_DOC = upload_openapi(MacroUpload)


@router.get("", response_model=MacroSeriesList, dependencies=[READ])
def list_series(ctx: CtxDep) -> MacroSeriesList:
    return MacroSeriesList(series=[MacroSeriesInfo(**i.__dict__) for i in ctx.macro.list_series()])


@router.get("/{series}", response_model=MacroRecordsResponse, dependencies=[READ], responses=responses(404))
def get_series(
    series: RequestText,
    ctx: CtxDep,
    start: RequestTime | None = None,
    end: RequestTime | None = None,
    as_of: RequestTime | None = None,
    latest_only: bool = False,
) -> MacroRecordsResponse:
    """Records with start <= observation_date < end. ``as_of`` is the vintage view: only
    records with available_at <= as_of (what was known then); ``latest_only`` keeps each
    observation's latest such vintage. Naive times are UTC."""
    store = ctx.macro
    name = normalize_series(series)
    if start is not None and end is not None and as_utc(end) <= as_utc(start):
        raise InvalidInput("end must be after start")
    if not store.has_series(name):
        raise NotFound(f"no macro series {name}; ingest it with POST /api/v1/market-data/macro/{name}")
    records = store.get_records(name, start, end, as_of, latest_only=latest_only)
    pit = PitSeries(
        observation=_ns([r["observation_date"] for r in records]),
        available=_ns([r["available_at"] for r in records]),
        value=np.asarray([r["value"] for r in records], dtype="float64"),
    )
    return MacroRecordsResponse(
        series=name,
        as_of=as_utc(as_of) if as_of is not None else None,
        n_records=len(records),
        fingerprint=pit.fingerprint(),
        records=[MacroRecord(**r) for r in records],
    )


def _ns(values: list[datetime]) -> np.ndarray:
    if not values:
        return np.empty(0, "int64")
    return np.asarray(pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8, dtype="int64")


@router.post(
    "/{series}",
    response_model=MacroIngestResponse,
    openapi_extra=_UPLOAD_DOC,
    dependencies=[ADMIN],
    responses=responses(409, 415),
)
async def ingest_series(series: RequestText, request: Request, ctx: CtxDep) -> MacroIngestResponse:
    """Ingest records (observation_date, available_at, value) from a CSV file (multipart
    field ``file``) or JSON ``{"records": [...]}``.

    Every record passes the data-quality gate or nothing is stored (422 naming the bad
    rows). Identical records are no-ops; a new available_at for a stored observation is a
    restatement and is added; another value for a stored (observation_date, available_at)
    is a 409: history is never rewritten.
    """
    name = normalize_series(series)
    shape = '{"records": [{observation_date, available_at, value}, ...]}'
    async with read_upload(request, MacroUpload, shape) as records:
        report = await run_in_threadpool(ctx.macro.ingest, name, records)
    return MacroIngestResponse(**report.__dict__)
