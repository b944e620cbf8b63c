"""Bundled real data, loaded on first start with no network (for tests and examples).

Bars: the daily S&P 500 (GSPC) and NASDAQ Composite (IXIC) for 1999-2018 that the ``arch``
package ships (:func:`load_sample_bars`), and the adjusted daily closes of 20 large US
stocks (:data:`SP20_SYMBOLS`, 1990-01-02 to 2022-12-28) that ``skfolio`` ships
(:func:`load_sp20_bars`): close-only series, their open, high, low and volume absent. They
are for tests and examples, not research conclusions: twenty of today's large caps, chosen
with hindsight (survivorship is built in).

Macro series (no network), loaded on first start from the ``arch`` package by
:func:`load_bundled_macro`, with these default publication lags as ``available_at``
(:data:`BUNDLED_LAGS`):

============  =========  =======================================  =============================
series        frequency  source                                   available_at
============  =========  =======================================  =============================
VIX           daily      ``arch.data.vix`` (vix)                   observation_date + 1 day
WTI           daily      ``arch.data.wti`` (DCOILWTICO)            observation_date + 1 day
CORE_CPI      monthly    ``arch.data.core_cpi`` (CPILFESL)         15th of the following month
AAA, BAA      monthly    ``arch.data.default`` (AAA, BAA)          1st of the following month
                                                                   + 1 day
FF_MKT_RF,    monthly    ``arch.data.frenchdata`` (Mkt-RF, SMB,    last day of the following
FF_SMB,                  HML, RF; percent)                         month (observation month end
FF_HML, FF_RF                                                      + 1 month)
============  =========  =======================================  =============================

Daily closes are published after the US close, so they are usable from the next day's bar
on, never for the same day's bar. BLS publishes CPI around mid-month for the month before.
Moody's AAA/BAA monthly averages are complete once the month is over. Kenneth French's data
library updates with about a month's lag. Observations of monthly series are stamped with
the first day of their month (00:00 UTC); the Fama-French dates, which ``arch`` ships
mangled into 1970 nanoseconds whose integers are YYYYMM, are re-parsed to month starts.
Missing values in the bundled data (holidays in VIX/WTI) are dropped.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alphaforge.ingestion.bars import parse_bars_upload
from alphaforge.ingestion.macro import parse_macro_upload
from alphaforge.marketdata.bars import Timeframe
from alphaforge.marketdata.local_store import LocalBarStore
from alphaforge.marketdata.macro import MacroStore

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


def load_sample_bars(store: LocalBarStore) -> list[str]:
    """Ingest the sample symbols that the store does not hold yet; returns those loaded."""
    held = {(s.symbol, s.timeframe) for s in store.list_series()}
    loaded = []
    for symbol in SAMPLE_SYMBOLS:
        if (symbol, Timeframe.DAY.value) in held:
            continue
        frame = _gated(symbol)
        store.append(symbol, Timeframe.DAY, frame)
        loaded.append(symbol)
        log.info("loaded bundled sample bars for %s (%d bars)", symbol, len(frame))
    return loaded


#: The stocks of skfolio's ``load_sp500_dataset`` (the universe SP20).
SP20_SYMBOLS = ("AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO", "LLY", "MRK", "MSFT", "PEP",
                "PFE", "PG", "RRC", "UNH", "WMT", "XOM")


def sp20_closes() -> pd.DataFrame:
    """The adjusted closes skfolio ships (dates x the 20 symbols), read from the package's
    data file without importing skfolio (whose import costs a second)."""
    spec = importlib.util.find_spec("skfolio")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the skfolio package is not installed; it ships the SP20 sample data")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "sp500_dataset.csv.gz"
    frame = pd.read_csv(path, index_col=0)
    if tuple(frame.columns) != SP20_SYMBOLS:
        raise RuntimeError(f"skfolio's sp500 dataset changed: columns {list(frame.columns)}")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index)).tz_localize("UTC")
    return frame


def load_sp20_bars(store: LocalBarStore) -> list[str]:
    """Ingest the SP20 close-only daily bars the store does not hold yet; returns those loaded."""
    held = {(s.symbol, s.timeframe) for s in store.list_series()}
    missing = [symbol for symbol in SP20_SYMBOLS if (symbol, Timeframe.DAY.value) not in held]
    if not missing:
        return []
    for symbol in missing:
        store.append(symbol, Timeframe.DAY, _gated(symbol))
    log.info("loaded the bundled SP20 close-only bars (%d symbols)", len(missing))
    return missing


@functools.lru_cache(maxsize=len(SAMPLE_SYMBOLS) + len(SP20_SYMBOLS))
def _gated_once(symbol: str) -> pd.DataFrame:
    if symbol in SAMPLE_SYMBOLS:
        raw = sample_bars(symbol)
    else:
        closes = _sp20_closes_once()
        raw = pd.DataFrame({"timestamp": closes.index, "close": closes[symbol].to_numpy()})
    frame, report = parse_bars_upload(raw)
    if not report.ok:  # the bundled data is clean; this guards against a package change
        raise report.error(symbol)
    return frame


@functools.cache
def _sp20_closes_once() -> pd.DataFrame:
    return sp20_closes()


def _gated(symbol: str) -> pd.DataFrame:
    """A bundled symbol's bars through the upload gate, parsed once per process (the files
    never change): every app a process starts on a new store reuses them. A copy each
    time, so no caller can change what the next one gets."""
    return _gated_once(symbol).copy()


def _next_day(obs: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return obs + pd.Timedelta(days=1)


def _month_start(obs: pd.DatetimeIndex) -> pd.DatetimeIndex:
    naive = obs.tz_convert("UTC").tz_localize(None) if obs.tz is not None else obs
    return naive.to_period("M").to_timestamp().tz_localize("UTC").as_unit("ns")


def _cpi_release(obs: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return _month_start(obs) + pd.DateOffset(months=1, days=14)


def _month_after_plus_day(obs: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return _month_start(obs) + pd.DateOffset(months=1, days=1)


def _end_of_next_month(obs: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return _month_start(obs) + pd.DateOffset(months=2, days=-1)


@dataclass(frozen=True)
class BundledLag:
    frequency: str
    rule: str
    available_at: Callable[[pd.DatetimeIndex], pd.DatetimeIndex] = field(repr=False)


#: The documented default publication lags of the bundled series (``available_at``).
BUNDLED_LAGS: dict[str, BundledLag] = {
    "VIX": BundledLag("daily", "observation_date + 1 day", _next_day),
    "WTI": BundledLag("daily", "observation_date + 1 day", _next_day),
    "CORE_CPI": BundledLag("monthly", "15th of the following month", _cpi_release),
    "AAA": BundledLag("monthly", "1st of the following month + 1 day", _month_after_plus_day),
    "BAA": BundledLag("monthly", "1st of the following month + 1 day", _month_after_plus_day),
    **{
        name: BundledLag("monthly", "observation month end + 1 month (last day of the following month)",
                         _end_of_next_month)
        for name in ("FF_MKT_RF", "FF_SMB", "FF_HML", "FF_RF")
    },
}

_FRENCH_COLUMNS = {"FF_MKT_RF": "Mkt-RF", "FF_SMB": "SMB", "FF_HML": "HML", "FF_RF": "RF"}


def french_month_starts(index: pd.Index) -> pd.DatetimeIndex:
    """Re-parse ``arch.data.frenchdata``'s index: 1970 nanoseconds whose integers are YYYYMM."""
    raw = np.asarray(pd.DatetimeIndex(index).as_unit("ns").asi8, dtype="int64")
    year, month = raw // 100, raw % 100
    if not ((month >= 1) & (month <= 12) & (year >= 1900) & (year <= 2200)).all():
        raise ValueError("frenchdata dates are not YYYYMM integers; has the arch package changed?")
    return pd.DatetimeIndex(
        pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": 1})), tz=None
    ).tz_localize("UTC").as_unit("ns")


def bundled_observations(series: str) -> pd.Series:
    """The raw bundled values of one series, indexed by UTC observation date, NaN dropped."""
    from arch.data import core_cpi, default, frenchdata, vix, wti

    if series == "VIX":
        raw = vix.load()["vix"]
    elif series == "WTI":
        raw = wti.load()["DCOILWTICO"]
    elif series == "CORE_CPI":
        raw = core_cpi.load()["CPILFESL"]
    elif series in ("AAA", "BAA"):
        raw = default.load()[series]
    elif series in _FRENCH_COLUMNS:
        data = frenchdata.load()
        raw = pd.Series(data[_FRENCH_COLUMNS[series]].to_numpy(), index=french_month_starts(data.index))
    else:
        raise KeyError(series)
    index = pd.DatetimeIndex(raw.index)
    index = (index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")).as_unit("ns")
    out = pd.Series(pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64"), index=index, name=series)
    return out.dropna()


def bundled_records(series: str) -> pd.DataFrame:
    """The bundled series as ingestible records (observation_date, available_at, value)."""
    values = bundled_observations(series)
    obs = pd.DatetimeIndex(values.index)
    return pd.DataFrame(
        {
            "observation_date": obs,
            "available_at": BUNDLED_LAGS[series].available_at(obs).as_unit("ns"),
            "value": values.to_numpy(),
        }
    )


def load_bundled_macro(store: MacroStore) -> list[str]:
    """Ingest the bundled series the store does not hold yet; returns those loaded.

    Idempotent: a series already present (bundled or uploaded under that name) is skipped."""
    held = {info.series for info in store.list_series()}
    loaded = []
    for series in BUNDLED_LAGS:
        if series in held:
            continue
        frame, report = parse_macro_upload(bundled_records(series))
        if not report.ok:  # the bundled data is clean; this guards against a package change
            raise report.error(series)
        stored = store.append(series, frame)
        loaded.append(series)
        log.info("loaded bundled macro series %s (%d records)", series, stored.inserted)
    return loaded
