"""Market data: ingestion behind the data-quality gate, symbol listing, bar reads."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from alphaforge.context import Context
from alphaforge.errors import Conflict, InvalidInput, NotFound
from alphaforge.marketdata.bars import Timeframe, normalize_symbol, parse_upload, to_utc
from alphaforge.marketdata.local_store import IngestResult
from alphaforge.marketdata.records import Records
from alphaforge.schemas.market_data import SymbolInfo, TimeframeInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FAR_FUTURE = datetime(2200, 1, 1, tzinfo=timezone.utc)


def ingest_bars(ctx: Context, symbol: str, timeframe: Timeframe, records: pd.DataFrame | Records) -> IngestResult:
    """Gate then store; a rejected upload stores nothing."""
    if not ctx.bars_are_local:
        raise Conflict(
            "bars come from the external market-data service (ALPHAFORGE_MARKET_DATA_URL); ingest them there"
        )
    symbol = normalize_symbol(symbol)
    frame, report = parse_upload(records)
    if not report.ok:
        raise report.error(symbol)
    return ctx.bar_store.ingest(symbol, timeframe, frame)


def list_symbols(ctx: Context) -> list[SymbolInfo]:
    grouped: dict[str, list[TimeframeInfo]] = {}
    for series in ctx.bars.list_series():
        grouped.setdefault(series.symbol, []).append(
            TimeframeInfo(
                timeframe=series.timeframe,
                first_bar=series.first_bar,
                last_bar=series.last_bar,
                n_bars=series.n_bars,
            )
        )
    return [SymbolInfo(symbol=s, timeframes=tfs) for s, tfs in sorted(grouped.items())]


def get_bars(
    ctx: Context, symbol: str, timeframe: Timeframe, start: datetime | None, end: datetime | None
) -> tuple[str, pd.DataFrame]:
    symbol = normalize_symbol(symbol)
    lo = to_utc(start) if start else _EPOCH
    hi = to_utc(end) if end else _FAR_FUTURE
    if hi <= lo:
        raise InvalidInput("end must be after start")
    frame = ctx.bars.get_bars(symbol, timeframe, lo, hi)
    if frame.empty and ctx.bars_are_local and not ctx.bar_store.timeframes_of(symbol):
        raise NotFound(f"no bars stored for symbol {symbol}; ingest them with POST /api/v1/market-data/{symbol}/bars")
    return symbol, frame
