"""Fundamentals of a symbol, point in time: read (with a vintage view), ingest."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from alphaforge.api.security import ADMIN, READ
from alphaforge.schemas.errors import responses
from alphaforge.api.deps import CtxDep, read_upload, upload_openapi
from alphaforge.errors import NotFound
from alphaforge.marketdata.bars import normalize_symbol
from alphaforge.marketdata.fundamentals import normalize_field
from alphaforge.marketdata.macro import as_utc
from alphaforge.schemas.fundamentals import (
    FundamentalFieldInfo,
    FundamentalRecord,
    FundamentalsIngestResponse,
    FundamentalsResponse,
    FundamentalsUpload,
)
from alphaforge.schemas.request import RequestText, RequestTime

router = APIRouter(prefix="/market-data/{symbol}/fundamentals", tags=["fundamentals"])

_UPLOAD_DOC = upload_openapi(FundamentalsUpload)


@router.get("", response_model=FundamentalsResponse, dependencies=[READ], responses=responses(404))
def get_fundamentals(
    symbol: RequestText,
    ctx: CtxDep,
    field: RequestText | None = None,
    as_of: RequestTime | None = None,
    latest_only: bool = False,
) -> FundamentalsResponse:
    """Records of the symbol (of one ``field`` when given). ``as_of`` is the vintage view:
    only records with available_at <= as_of (what was known then); ``latest_only`` keeps
    each period's latest such vintage. Naive times are UTC."""
    store = ctx.fundamentals
    name = normalize_symbol(symbol)
    wanted = normalize_field(field) if field is not None else None
    fields = store.list_fields(name)
    if not fields:
        raise NotFound(
            f"no fundamentals for {name}; ingest them with POST /api/v1/market-data/{name}/fundamentals"
        )
    if wanted is not None and wanted not in {i.field for i in fields}:
        known = ", ".join(i.field for i in fields)
        raise NotFound(f"no fundamentals field {wanted!r} for {name}; its fields: {known}")
    records = store.get_records(name, wanted, as_of, latest_only=latest_only)
    return FundamentalsResponse(
        symbol=name,
        as_of=as_utc(as_of) if as_of is not None else None,
        fields=[FundamentalFieldInfo(**i.__dict__) for i in fields],
        n_records=len(records),
        records=[FundamentalRecord(**r) for r in records],
    )


@router.post(
    "",
    response_model=FundamentalsIngestResponse,
    openapi_extra=_UPLOAD_DOC,
    dependencies=[ADMIN],
    responses=responses(409, 415),
)
async def ingest_fundamentals(symbol: RequestText, request: Request, ctx: CtxDep) -> FundamentalsIngestResponse:
    """Ingest records (period_end, available_at, field, value) from a CSV file (multipart
    field ``file``) or JSON ``{"records": [...]}``.

    Every record passes the data-quality gate or nothing is stored (422 naming the bad
    rows). Identical records are no-ops; a new available_at for a stored (field,
    period_end) is a restatement and is added; another value for a stored (field,
    period_end, available_at) is a 409: history is never rewritten.
    """
    name = normalize_symbol(symbol)
    shape = '{"records": [{period_end, available_at, field, value}, ...]}'
    async with read_upload(request, FundamentalsUpload, shape) as records:
        report = await run_in_threadpool(ctx.fundamentals.ingest, name, records)
    return FundamentalsIngestResponse(**report.__dict__)
