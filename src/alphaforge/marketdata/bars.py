"""OHLCV bars: the canonical frame, the source fingerprint, weekly aggregation (the
upload gate is :mod:`alphaforge.ingestion.bars`).

Canonical frame: a ``DatetimeIndex`` named ``timestamp`` (UTC, nanoseconds, strictly
increasing) and float64 columns ``open, high, low, close, volume`` in that order. Close is
always there; a series may lack open, high, low or volume (a close-only series of adjusted
closes): such a column is NaN throughout, never fabricated (:func:`present_fields`).
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.errors import InvalidInput

BAR_COLUMNS = ("open", "high", "low", "close", "volume")
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,19}$")
_FINGERPRINT_HEADER = b"alphaforge.bars/1\n"


class Timeframe(StrEnum):
    HOUR = "1h"
    DAY = "1d"
    WEEK = "1w"


# Timeframes stored as ingested; 1w is always aggregated from 1d.
STORED_TIMEFRAMES = (Timeframe.HOUR, Timeframe.DAY)


def parse_timeframe(value: str) -> Timeframe:
    try:
        return Timeframe(value)
    except ValueError:
        valid = ", ".join(t.value for t in Timeframe)
        raise InvalidInput(f"unknown timeframe {value!r}; use one of: {valid}") from None


def normalize_symbol(symbol: str) -> str:
    """Upper-case and check a symbol before it reaches any storage key or path.

    ASCII is checked before upper-casing: Unicode case mapping turns 'ı' into 'I' and 'ß'
    into 'SS', which would silently read or write another symbol."""
    normalized = symbol.strip().upper()
    if not symbol.isascii() or not SYMBOL_PATTERN.fullmatch(normalized):
        raise InvalidInput(
            f"invalid symbol {symbol!r}: use 1-20 ASCII characters, letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. GSPC, BRK.B, BTC-USD)"
        )
    return normalized


def present_fields(frame: pd.DataFrame) -> tuple[str, ...]:
    """The bar fields a series holds: a column that is NaN throughout is one it lacks."""
    if not len(frame):
        return ()
    empty = np.isnan(_bar_values(frame)).all(axis=0)
    return tuple(c for c, lacking in zip(BAR_COLUMNS, empty, strict=True) if not lacking)


def describe_fields(fields: tuple[str, ...]) -> str:
    return "close only" if fields == ("close",) else ", ".join(fields)


def empty_frame() -> pd.DataFrame:
    index = pd.DatetimeIndex([], tz="UTC", name="timestamp").as_unit("ns")
    return pd.DataFrame({c: pd.Series([], dtype="float64") for c in BAR_COLUMNS}, index=index)


def _is_canonical(frame: pd.DataFrame) -> bool:
    index = frame.index
    return (
        isinstance(index, pd.DatetimeIndex)
        and str(index.tz) == "UTC"
        and index.unit == "ns"
        and index.name == "timestamp"
        and list(frame.columns) == list(BAR_COLUMNS)
        and all(dtype == np.float64 for dtype in frame.dtypes)
        and index.is_monotonic_increasing
    )


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` in canonical form (assumes it already passed the quality gate);
    ``frame`` itself when it already is (no copy of a large upload)."""
    if _is_canonical(frame):
        return frame
    index = pd.DatetimeIndex(frame.index)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    out = pd.DataFrame(
        {c: np.ascontiguousarray(frame[c].to_numpy(dtype="float64")) for c in BAR_COLUMNS},
        index=index.as_unit("ns").rename("timestamp"),
    )
    return out.sort_index()


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 over a canonical byte encoding of the bars.

    Encoding: a fixed header, the row count as little-endian int64, the UTC timestamps as
    little-endian int64 nanoseconds, then each of open, high, low, close, volume as
    little-endian float64, column after column. Independent of pandas' internals.
    """
    digest = hashlib.sha256(_FINGERPRINT_HEADER)
    digest.update(np.int64(len(frame)).astype("<i8").tobytes())
    index = pd.DatetimeIndex(frame.index)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    digest.update(np.ascontiguousarray(index.as_unit("ns").asi8, dtype="<i8").tobytes())
    values = _bar_values(frame)
    for at in range(len(BAR_COLUMNS)):
        digest.update(np.ascontiguousarray(values[:, at], dtype="<f8").tobytes())
    return digest.hexdigest()


def _bar_values(frame: pd.DataFrame) -> np.ndarray:
    """open, high, low, close, volume as one (rows x 5) float64 array: a view of a stored
    series' block (selecting its columns by name copied them, ~1 ms a call, paid per piece)."""
    if list(frame.columns) == list(BAR_COLUMNS):
        return frame.to_numpy(dtype="float64")
    return frame[list(BAR_COLUMNS)].to_numpy(dtype="float64")


def aggregate_weekly(daily: pd.DataFrame) -> pd.DataFrame:
    """Aggregate daily bars to weeks (Monday to Sunday, UTC).

    Each weekly bar is stamped with its last daily bar's timestamp, so a weekly value at t
    only uses bars up to t (an unfinished week is a partial bar).
    """
    if daily.empty:
        return empty_frame()
    index = pd.DatetimeIndex(daily.index)
    week = (index.normalize() - pd.to_timedelta(index.day_of_week, unit="D")).asi8
    grouped = daily.groupby(week, sort=True)
    out = pd.DataFrame(
        {
            "open": grouped["open"].first().to_numpy(),
            "high": grouped["high"].max().to_numpy(),
            "low": grouped["low"].min().to_numpy(),
            "close": grouped["close"].last().to_numpy(),
            "volume": grouped["volume"].sum(min_count=1).to_numpy(),  # an absent volume stays NaN
        },
        index=pd.DatetimeIndex(pd.Series(index.asi8).groupby(week, sort=True).max().to_numpy(), tz="UTC")
        .as_unit("ns")
        .rename("timestamp"),
    )
    return out


def frame_to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe records, one per row: the index level(s) first (the first, the timestamps, as
    ISO text), then the columns; NaN as None. Built from plain lists: ``reset_index`` and a
    masked copy cost ~5 ms for a 10-row preview, paid by every generate and panel answer."""
    index = frame.index
    levels = [index.get_level_values(i) for i in range(index.nlevels)]
    names = [name if name is not None else ("index" if index.nlevels == 1 else f"level_{i}")
             for i, name in enumerate(index.names)]
    lists = [[t.isoformat() for t in levels[0]], *(_plain(level.tolist()) for level in levels[1:])]
    lists += [_plain(frame.iloc[:, at].tolist()) for at in range(frame.shape[1])]
    keys = names + frame.columns.tolist()
    return [dict(zip(keys, row, strict=True)) for row in zip(*lists, strict=True)] if len(frame) else []


def _plain(values: list[Any]) -> list[Any]:
    """Missing values (NaN, NaT, None, NA) as None."""
    return [None if (v != v if isinstance(v, float) else pd.isna(v)) else v for v in values]
