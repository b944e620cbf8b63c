"""Reading market data as the API shows it: symbols, bars, and the point-in-time series
(macro, fundamentals, news) with their vintage views. Writing goes through
:mod:`alphaforge.ingestion.service`. Names and times come parsed (``schemas.request``:
normalised names, aware UTC times)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.context import Context
from alphaforge.errors import InvalidInput, NotFound
from alphaforge.marketdata.bars import Timeframe
from alphaforge.marketdata.fundamentals import FundamentalFieldInfo
from alphaforge.marketdata.pit import PitSeries
from alphaforge.marketdata.pit_table import ns_of
from alphaforge.schemas.market_data import SymbolInfo, TimeframeInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FAR_FUTURE = datetime(2200, 1, 1, tzinfo=timezone.utc)


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


def _check_range(start: datetime | None, end: datetime | None) -> None:
    """An empty range is a 422 (query parameters, unlike request bodies, are separate)."""
    if start is not None and end is not None and end <= start:
        raise InvalidInput("end must be after start")


def get_bars(
    ctx: Context, symbol: str, timeframe: Timeframe, start: datetime | None, end: datetime | None
) -> tuple[str, pd.DataFrame]:
    lo, hi = start or _EPOCH, end or _FAR_FUTURE
    _check_range(lo, hi)
    frame = ctx.bars.get_bars(symbol, timeframe, lo, hi)
    if frame.empty and ctx.bars_are_local and not ctx.bar_store.timeframes_of(symbol):
        raise NotFound(f"no bars stored for symbol {symbol}; ingest them with POST /api/v1/market-data/{symbol}/bars")
    return symbol, frame


@dataclass(frozen=True)
class MacroRecords:
    series: str
    as_of: datetime | None
    fingerprint: str  # of the records returned, as a PitSeries
    records: list[dict[str, Any]]


def macro_records(
    ctx: Context,
    series: str,
    start: datetime | None = None,
    end: datetime | None = None,
    as_of: datetime | None = None,
    latest_only: bool = False,
) -> MacroRecords:
    """Records with start <= observation_date < end; ``as_of`` keeps those with
    available_at <= as_of (what was known then), ``latest_only`` each observation's latest
    such vintage."""
    _check_range(start, end)
    if not ctx.macro.has_series(series):
        raise NotFound(f"no macro series {series}; ingest it with POST /api/v1/market-data/macro/{series}")
    records = ctx.macro.get_records(series, start, end, as_of, latest_only=latest_only)
    pit = PitSeries(
        observation=ns_of([r["observation_date"] for r in records]),
        available=ns_of([r["available_at"] for r in records]),
        value=np.asarray([r["value"] for r in records], dtype="float64"),
    )
    return MacroRecords(series, as_of, pit.fingerprint(), records)


@dataclass(frozen=True)
class FundamentalsRecords:
    symbol: str
    as_of: datetime | None
    fields: list[FundamentalFieldInfo]  # every field of the symbol
    records: list[dict[str, Any]]


def fundamentals_records(
    ctx: Context, symbol: str, field: str | None = None, as_of: datetime | None = None, latest_only: bool = False
) -> FundamentalsRecords:
    """The symbol's records (of one ``field`` when given) with the same vintage view as
    :func:`macro_records`."""
    fields = ctx.fundamentals.list_fields(symbol)
    if not fields:
        raise NotFound(
            f"no fundamentals for {symbol}; ingest them with POST /api/v1/market-data/{symbol}/fundamentals"
        )
    if field is not None and field not in {i.field for i in fields}:
        known = ", ".join(i.field for i in fields)
        raise NotFound(f"no fundamentals field {field!r} for {symbol}; its fields: {known}")
    records = ctx.fundamentals.get_records(symbol, field, as_of, latest_only=latest_only)
    return FundamentalsRecords(symbol, as_of, fields, records)


@dataclass(frozen=True)
class NewsPage:
    symbol: str
    start: datetime | None
    end: datetime | None
    n_articles: int  # in the range
    articles: list[dict[str, Any]]  # the first ``limit`` of them


def news_page(
    ctx: Context, symbol: str, start: datetime | None = None, end: datetime | None = None, limit: int = 1000
) -> NewsPage:
    """Articles with start <= published_at < end, ordered by published_at then headline."""
    _check_range(start, end)
    if not ctx.news.has_articles(symbol):
        raise NotFound(f"no news for {symbol}; ingest articles with POST /api/v1/market-data/{symbol}/news")
    total, records = ctx.news.list_articles(symbol, start, end, limit)
    return NewsPage(symbol, start, end, total, records)
