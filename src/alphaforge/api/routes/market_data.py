from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from alphaforge.api.deps import CtxDep, upload_openapi
from alphaforge.errors import AlphaforgeError, InvalidInput
from alphaforge.marketdata.bars import Timeframe, frame_to_records
from alphaforge.schemas.market_data import BarsResponse, BarsUpload, IngestResponse, SymbolList
from alphaforge.services import market_data as service

router = APIRouter(prefix="/market-data", tags=["market data"])

_UPLOAD_DOC = upload_openapi(BarsUpload)


class UnsupportedMediaType(AlphaforgeError):
    status_code = 415
    code = "unsupported_media_type"


@router.get("/symbols", response_model=SymbolList)
def list_symbols(ctx: CtxDep) -> SymbolList:
    return SymbolList(symbols=service.list_symbols(ctx))


@router.get("/{symbol}/bars", response_model=BarsResponse)
def get_bars(
    symbol: str,
    ctx: CtxDep,
    timeframe: Timeframe = Timeframe.DAY,
    start: datetime | None = None,
    end: datetime | None = None,
) -> BarsResponse:
    """Bars with start <= timestamp < end (naive times are UTC)."""
    symbol, frame = service.get_bars(ctx, symbol, timeframe, start, end)
    return BarsResponse(symbol=symbol, timeframe=timeframe.value, n_bars=len(frame), bars=frame_to_records(frame))


@router.post("/{symbol}/bars", response_model=IngestResponse, openapi_extra=_UPLOAD_DOC)
async def ingest_bars(symbol: str, request: Request, ctx: CtxDep, timeframe: Timeframe = Timeframe.DAY) -> IngestResponse:
    """Ingest bars from a CSV file (multipart field ``file``) or JSON ``{"bars": [...]}``.

    Every bar passes the data-quality gate or nothing is stored (422 naming the bad rows).
    A bar whose timestamp already exists replaces the stored one.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("multipart upload needs a CSV file in the field 'file'")
        records = service.read_csv_upload(await upload.read())
    elif content_type.startswith("application/json"):
        try:
            payload = BarsUpload.model_validate_json(await request.body())
        except ValueError as exc:
            raise InvalidInput(f"JSON upload must be {{\"bars\": [{{timestamp, open, high, low, close, volume}}, ...]}}: {exc}") from None
        import pandas as pd

        records = pd.DataFrame(payload.bars)
    else:
        raise UnsupportedMediaType(
            "send a CSV file as multipart/form-data (field 'file') or JSON (application/json)"
        )
    result = await run_in_threadpool(service.ingest_bars, ctx, symbol, timeframe, records)
    return IngestResponse(**result.__dict__)
