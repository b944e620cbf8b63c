"""OHLCV bars: the canonical frame, the data-quality gate, the source fingerprint.

Canonical frame: a ``DatetimeIndex`` named ``timestamp`` (UTC, nanoseconds, strictly
increasing) and float64 columns ``open, high, low, close, volume`` in that order.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.errors import InvalidInput
from alphaforge.marketdata.quality import RecordsQualityReport

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


#: The times int64 nanoseconds can hold (pandas' Timestamp range), to the microsecond:
#: the bounds of every time the service accepts or stores as a bar.
MIN_TIME: datetime = pd.Timestamp.min.ceil("us").tz_localize("UTC").to_pydatetime()
MAX_TIME: datetime = pd.Timestamp.max.floor("us").tz_localize("UTC").to_pydatetime()


def to_utc(value: datetime) -> datetime:
    """Naive datetimes are read as UTC; aware ones are converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def empty_frame() -> pd.DataFrame:
    index = pd.DatetimeIndex([], tz="UTC", name="timestamp").as_unit("ns")
    return pd.DataFrame({c: pd.Series([], dtype="float64") for c in BAR_COLUMNS}, index=index)


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` in canonical form (assumes it already passed the quality gate)."""
    index = pd.DatetimeIndex(frame.index)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    out = pd.DataFrame(
        {c: np.ascontiguousarray(frame[c].to_numpy(dtype="float64")) for c in BAR_COLUMNS},
        index=index.as_unit("ns").rename("timestamp"),
    )
    return out.sort_index()


@dataclass(frozen=True)
class BadRow:
    row: int  # 1-based position in the upload
    timestamp: str | None
    problems: list[str]

    def label(self) -> str:
        return str(self.timestamp)


QualityReport = RecordsQualityReport[BadRow]


def parse_upload(records: pd.DataFrame) -> tuple[pd.DataFrame, QualityReport]:
    """Parse raw uploaded rows (any case of column names) and run the quality gate.

    Returns the canonical frame and the report; the frame is only meaningful if the
    report is ok. Rows are numbered from 1 in upload order.
    """
    columns = {str(c).strip().lower(): c for c in records.columns}
    ts_col = next((columns[c] for c in ("timestamp", "datetime", "date", "time") if c in columns), None)
    missing = [c for c in BAR_COLUMNS if c not in columns]
    if ts_col is None or missing:
        need = (["timestamp"] if ts_col is None else []) + missing
        raise InvalidInput(
            f"bars need the columns timestamp, open, high, low, close, volume; missing: {', '.join(need)}"
        )
    if len(records) == 0:
        raise InvalidInput("the upload holds no bars")

    raw_ts = records[ts_col]
    timestamps = pd.to_datetime(raw_ts.astype("string"), utc=True, errors="coerce", format="mixed")
    out_of_range = np.asarray(timestamps.notna() & ~timestamps.between(MIN_TIME, MAX_TIME))
    timestamps = timestamps.mask(out_of_range)  # pandas parses far dates at a coarser unit than ns
    values = {c: pd.to_numeric(records[columns[c]], errors="coerce").astype("float64") for c in BAR_COLUMNS}
    frame = pd.DataFrame(values)
    frame.index = pd.DatetimeIndex(timestamps).as_unit("ns")

    problems: list[list[str]] = [[] for _ in range(len(frame))]
    arr = {c: frame[c].to_numpy() for c in BAR_COLUMNS}
    ts_na = pd.isna(timestamps).to_numpy() if hasattr(timestamps, "to_numpy") else np.asarray(pd.isna(timestamps))
    duplicated = frame.index.duplicated(keep=False) & ~ts_na
    for c in BAR_COLUMNS:
        bad = ~np.isfinite(arr[c])
        for i in np.flatnonzero(bad):
            problems[i].append(f"{c} is missing or not a finite number")
    o, h, low, c_, v = (arr[c] for c in BAR_COLUMNS)
    with np.errstate(invalid="ignore"):
        checks = [
            (low > o, "low > open"),
            (o > h, "open > high"),
            (low > c_, "low > close"),
            (c_ > h, "close > high"),
            (v < 0, "volume < 0"),
        ]
    for mask, text in checks:
        for i in np.flatnonzero(mask):
            problems[i].append(text)
    for i in np.flatnonzero(ts_na):
        in_range = f" between {MIN_TIME.isoformat()} and {MAX_TIME.isoformat()}" if out_of_range[i] else ""
        problems[i].append(f"timestamp {raw_ts.iloc[i]!r} is not a date/time{in_range}")
    for i in np.flatnonzero(duplicated):
        problems[i].append("duplicate timestamp")

    bad_rows = [
        BadRow(row=i + 1, timestamp=None if ts_na[i] else frame.index[i].isoformat(), problems=p)
        for i, p in enumerate(problems)
        if p
    ]
    report = QualityReport(bad_rows, "bar(s)")
    if not report.ok:
        return empty_frame(), report
    return canonical(frame), report


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
    for c in BAR_COLUMNS:
        digest.update(np.ascontiguousarray(frame[c].to_numpy(dtype="float64"), dtype="<f8").tobytes())
    return digest.hexdigest()


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
            "volume": grouped["volume"].sum().to_numpy(),
        },
        index=pd.DatetimeIndex(pd.Series(index.asi8).groupby(week, sort=True).max().to_numpy(), tz="UTC")
        .as_unit("ns")
        .rename("timestamp"),
    )
    return out


def frame_to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe records: ISO timestamps, NaN as None."""
    out = frame.reset_index()
    ts_name = out.columns[0]
    out[ts_name] = [t.isoformat() for t in out[ts_name]]
    cleaned = out.astype(object).where(pd.notna(out), None)
    return cleaned.to_dict(orient="records")
