from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from alphaforge.api.security import ADMIN, READ
from alphaforge.schemas.errors import responses
from alphaforge.api.deps import CtxDep, read_upload, upload_openapi
from alphaforge.marketdata.bars import Timeframe, frame_to_records
from alphaforge.schemas.market_data import BarsResponse, BarsUpload, IngestResponse, SymbolList
from alphaforge.schemas.request import RequestTime, SymbolPath
from alphaforge.ingestion import service as ingestion
from alphaforge.marketdata import service

router = APIRouter(prefix="/market-data", tags=["market data"])

_UPLOAD_DOC = upload_openapi(BarsUpload)


@router.get("/symbols", response_model=SymbolList, dependencies=[READ], responses=responses(502))
def list_symbols(ctx: CtxDep) -> SymbolList:
    return SymbolList(symbols=service.list_symbols(ctx))


@router.get("/{symbol}/bars", response_model=BarsResponse, dependencies=[READ], responses=responses(404, 502))
def get_bars(
    symbol: SymbolPath,
    ctx: CtxDep,
    timeframe: Timeframe = Timeframe.DAY,
    start: RequestTime | None = None,
    end: RequestTime | None = None,
) -> BarsResponse:
    """Bars with start <= timestamp < end (naive times are UTC)."""
    symbol, frame = service.get_bars(ctx, symbol, timeframe, start, end)
    return BarsResponse(symbol=symbol, timeframe=timeframe.value, n_bars=len(frame), bars=frame_to_records(frame))


@router.post(
    "/{symbol}/bars",
    response_model=IngestResponse,
    openapi_extra=_UPLOAD_DOC,
    dependencies=[ADMIN],
    responses=responses(409, 415),
)
async def ingest_bars(symbol: SymbolPath, request: Request, ctx: CtxDep, timeframe: Timeframe = Timeframe.DAY) -> IngestResponse:
    """Ingest bars from a CSV file (multipart field ``file``) or JSON ``{"bars": [...]}``.

    Every bar passes the data-quality gate or nothing is stored (422 naming the bad rows).
    A bar whose timestamp already exists replaces the stored one.
    """
    shape = '{"bars": [{timestamp, open, high, low, close, volume}, ...]}'
    async with read_upload(request, BarsUpload, shape) as records:
        result = await run_in_threadpool(ingestion.ingest_bars, ctx, symbol, timeframe, records)
    return IngestResponse(**result.__dict__)
