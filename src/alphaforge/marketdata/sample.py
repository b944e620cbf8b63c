"""Bundled real data, loaded with no network: the daily S&P 500 (GSPC) and NASDAQ
Composite (IXIC) bars for 1999-2018 that the ``arch`` package ships."""

from __future__ import annotations

import logging

import pandas as pd

from alphaforge.marketdata.bars import Timeframe, parse_upload
from alphaforge.marketdata.local_store import LocalBarStore

log = logging.getLogger(__name__)

SAMPLE_SYMBOLS = ("GSPC", "IXIC")


def sample_bars(symbol: str) -> pd.DataFrame:
    """The raw bundled bars of one sample symbol (Date, Open, High, Low, Close, Volume)."""
    from arch.data import nasdaq, sp500

    loader = {"GSPC": sp500, "IXIC": nasdaq}[symbol]
    raw = loader.load()
    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(raw.index).tz_localize("UTC"),
            "open": raw["Open"].to_numpy(),
            "high": raw["High"].to_numpy(),
            "low": raw["Low"].to_numpy(),
            "close": raw["Close"].to_numpy(),
            "volume": raw["Volume"].to_numpy(dtype="float64"),
        }
    )


def load_sample_data(store: LocalBarStore) -> list[str]:
    """Ingest the sample symbols that the store does not hold yet; returns those loaded."""
    held = {(s.symbol, s.timeframe) for s in store.list_series()}
    loaded = []
    for symbol in SAMPLE_SYMBOLS:
        if (symbol, Timeframe.DAY.value) in held:
            continue
        frame, report = parse_upload(sample_bars(symbol))
        if not report.ok:  # the bundled data is clean; this guards against a package change
            raise report.error(symbol)
        store.ingest(symbol, Timeframe.DAY, frame)
        loaded.append(symbol)
        log.info("loaded bundled sample bars for %s (%d bars)", symbol, len(frame))
    return loaded
