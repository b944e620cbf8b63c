"""Ingestion, the one way in for every kind of data: gate the upload (a rejected upload
stores nothing; the 422 names the bad rows), then merge it into its store. The API, the CLI
and the benchmarks call these with names already normalised (``schemas.request``; the
CLI's argument types)."""

from __future__ import annotations

import logging

import pandas as pd

from alphaforge.context import Context
from alphaforge.errors import Conflict, DependencyUnavailable
from alphaforge.ingestion.bars import parse_bars_upload
from alphaforge.ingestion.bundled import load_bundled_macro, load_sample_bars, load_sp20_bars
from alphaforge.ingestion.fundamentals import parse_fundamentals_upload
from alphaforge.ingestion.macro import parse_macro_upload
from alphaforge.ingestion.news import parse_news_upload
from alphaforge.ingestion.records import Records
from alphaforge.marketdata.bars import Timeframe
from alphaforge.marketdata.fundamentals import FundamentalsIngestReport
from alphaforge.marketdata.local_store import IngestResult
from alphaforge.marketdata.macro import MacroIngestReport
from alphaforge.marketdata.news import NewsIngestReport

log = logging.getLogger(__name__)

Upload = pd.DataFrame | Records


def ingest_bars(ctx: Context, symbol: str, timeframe: Timeframe, records: Upload) -> IngestResult:
    """Bars of one symbol and timeframe; a bar whose timestamp is stored replaces it."""
    if not ctx.bars_are_local:
        raise Conflict(
            "bars come from the external market-data service (ALPHAFORGE_MARKET_DATA_URL); ingest them there"
        )
    frame, report = parse_bars_upload(records)
    if not report.ok:
        raise report.error(symbol)
    return ctx.bar_store.append(symbol, timeframe, frame)


def ingest_macro(ctx: Context, series: str, records: Upload) -> MacroIngestReport:
    """Records of one macro series, appended point in time (history is never rewritten)."""
    frame, report = parse_macro_upload(records)
    if not report.ok:
        raise report.error(series)
    return ctx.macro.append(series, frame)


def ingest_fundamentals(ctx: Context, symbol: str, records: Upload) -> FundamentalsIngestReport:
    """Fundamentals records of one symbol, appended point in time."""
    frame, report = parse_fundamentals_upload(records)
    if not report.ok:
        raise report.error(symbol)
    return ctx.fundamentals.append(symbol, frame)


def ingest_news(ctx: Context, symbol: str, records: Upload) -> NewsIngestReport:
    """News articles of one symbol; an article already stored is skipped."""
    articles, report = parse_news_upload(records)
    if not report.ok:
        raise report.error(symbol)
    return ctx.news.append(symbol, articles)


def load_bundled_data(ctx: Context) -> None:
    """The sample bars (GSPC, IXIC and the SP20 close-only series, when bars are local) and
    macro series, once (idempotent). A store that is down now is not fatal: the service
    starts, and loads them at the next start."""
    try:
        if ctx.bars_are_local:
            load_sample_bars(ctx.bar_store)
            load_sp20_bars(ctx.bar_store)
        load_bundled_macro(ctx.macro)
    except DependencyUnavailable as exc:
        log.warning("started without the bundled data: %s (it is loaded at the next start)", exc.message)
