"""Fundamentals of a symbol, point in time: read (with a vintage view), ingest."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from alphaforge.api.security import ADMIN, READ
from alphaforge.schemas.errors import responses
from alphaforge.api.deps import CtxDep, read_upload, upload_openapi
from alphaforge.ingestion import service as ingestion
from alphaforge.marketdata import service
from alphaforge.schemas.fundamentals import (
    FundamentalFieldInfo,
    FundamentalRecord,
    FundamentalsIngestResponse,
    FundamentalsResponse,
    FundamentalsUpload,
)
from alphaforge.schemas.request import FieldQuery, RequestTime, SymbolPath

router = APIRouter(prefix="/market-data/{symbol}/fundamentals", tags=["fundamentals"])

_UPLOAD_DOC = upload_openapi(FundamentalsUpload)


@router.get("", response_model=FundamentalsResponse, dependencies=[READ], responses=responses(404))
def get_fundamentals(
    symbol: SymbolPath,
    ctx: CtxDep,
    field: FieldQuery | None = None,
    as_of: RequestTime | None = None,
    latest_only: bool = False,
) -> FundamentalsResponse:
    """Records of the symbol (of one ``field`` when given). ``as_of`` is the vintage view:
    only records with available_at <= as_of (what was known then); ``latest_only`` keeps
    each period's latest such vintage. Naive times are UTC."""
    found = service.fundamentals_records(ctx, symbol, field, as_of, latest_only)
    return FundamentalsResponse(
        symbol=found.symbol,
        as_of=found.as_of,
        fields=[FundamentalFieldInfo(**i.__dict__) for i in found.fields],
        n_records=len(found.records),
        records=[FundamentalRecord(**r) for r in found.records],
    )


@router.post(
    "",
    response_model=FundamentalsIngestResponse,
    openapi_extra=_UPLOAD_DOC,
    dependencies=[ADMIN],
    responses=responses(409, 415),
)
async def ingest_fundamentals(symbol: SymbolPath, request: Request, ctx: CtxDep) -> FundamentalsIngestResponse:
    """Ingest records (period_end, available_at, field, value) from a CSV file (multipart
    field ``file``) or JSON ``{"records": [...]}``.

    Every record passes the data-quality gate or nothing is stored (422 naming the bad
    rows). Identical records are no-ops; a new available_at for a stored (field,
    period_end) is a restatement and is added; another value for a stored (field,
    period_end, available_at) is a 409: history is never rewritten.
    """
    shape = '{"records": [{period_end, available_at, field, value}, ...]}'
    async with read_upload(request, FundamentalsUpload, shape) as records:
        report = await run_in_threadpool(ingestion.ingest_fundamentals, ctx, symbol, records)
    return FundamentalsIngestResponse(**report.__dict__)
