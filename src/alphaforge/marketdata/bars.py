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
from alphaforge.marketdata.quality import FirstValues, RecordsQualityReport, Rule, find_bad_rows
from alphaforge.marketdata.records import ColumnBuffer, Records, as_records, parse_numbers, parse_times

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


@dataclass(frozen=True)
class BadRow:
    row: int  # 1-based position in the upload
    timestamp: str | None
    problems: list[str]

    def label(self) -> str:
        return str(self.timestamp)


QualityReport = RecordsQualityReport[BadRow]

#: The timestamps a bar can have: int64 nanoseconds since the epoch.
_TS_MIN, _TS_MAX = pd.Timestamp(MIN_TIME), pd.Timestamp(MAX_TIME)
_NAT = np.iinfo(np.int64).min  # NaT as int64


def _timestamp_problem(given: Any) -> str:
    """Why an unusable timestamp is: parsed on its own (whether pandas reads a far date at a
    coarser unit depends on the values beside it), so the message does not depend on them."""
    alone = pd.to_datetime(pd.Series([given]).astype("string"), utc=True, errors="coerce", format="mixed").iloc[0]
    if pd.isna(alone):
        return f"timestamp {given!r} is not a date/time"
    return f"timestamp {given!r} is not a date/time between {MIN_TIME.isoformat()} and {MAX_TIME.isoformat()}"


def _duplicated(values: np.ndarray) -> np.ndarray:
    """Every row whose value occurs more than once (pandas' ``keep=False``); sorted values
    (the usual upload) need no hash table."""
    if len(values) < 2:
        return np.zeros(len(values), dtype=bool)
    ascending = values[1:] >= values[:-1]
    if not ascending.all():
        return pd.Index(values).duplicated(keep=False)
    same = values[1:] == values[:-1]
    out = np.zeros(len(values), dtype=bool)
    out[1:] |= same
    out[:-1] |= same
    return out


def parse_upload(records: pd.DataFrame | Records) -> tuple[pd.DataFrame, QualityReport]:
    """Parse raw uploaded rows (any case of column names) and run the quality gate.

    Returns the canonical frame and the report; the frame is only meaningful if the
    report is ok. Rows are numbered from 1 in upload order. The rows are read chunk by
    chunk; only the parsed numbers are kept.
    """
    records = as_records(records)
    columns = {str(c).strip().lower(): c for c in records.columns}
    ts_col = next((columns[c] for c in ("timestamp", "datetime", "date", "time") if c in columns), None)
    missing = [c for c in BAR_COLUMNS if c not in columns]
    if ts_col is None or missing:
        need = (["timestamp"] if ts_col is None else []) + missing
        raise InvalidInput(
            f"bars need the columns timestamp, open, high, low, close, volume; missing: {', '.join(need)}"
        )

    stamps, unusable_rows = ColumnBuffer(1, "int64"), ColumnBuffer(1, "bool")
    values = ColumnBuffer(len(BAR_COLUMNS), "float64")  # becomes the frame's one block
    given = FirstValues()  # the first unusable timestamps as uploaded, for the 422
    for chunk in records.chunks([ts_col, *(columns[c] for c in BAR_COLUMNS)]):
        raw_ts = chunk.iloc[:, 0]
        ns, unusable = parse_times(raw_ts, _TS_MIN, _TS_MAX)
        given.offer(stamps.n_rows, unusable, raw_ts)
        stamps.append(ns)
        unusable_rows.append(unusable)
        values.append(*(parse_numbers(chunk.iloc[:, k + 1]) for k in range(len(BAR_COLUMNS))))
    n = stamps.n_rows
    if n == 0:
        raise InvalidInput("the upload holds no bars")

    ns, unusable, block = stamps.values()[0], unusable_rows.values()[0], values.values()
    o, h, low, c_, v = block

    rules: list[Rule] = [(~np.isfinite(block[k]), f"{c} is missing or not a finite number")
                         for k, c in enumerate(BAR_COLUMNS)]
    with np.errstate(invalid="ignore"):
        rules += [
            (low > o, "low > open"),
            (o > h, "open > high"),
            (low > c_, "low > close"),
            (c_ > h, "close > high"),
            (v < 0, "volume < 0"),
        ]
    rules += [
        (unusable, lambda i: _timestamp_problem(given[i])),
        (_duplicated(ns) & ~unusable, "duplicate timestamp"),
    ]
    described, n_bad = find_bad_rows(n, rules)
    bad_rows = [
        BadRow(row=i + 1, timestamp=None if ns[i] == _NAT else pd.Timestamp(int(ns[i]), tz="UTC").isoformat(),
               problems=problems)
        for i, problems in described
    ]
    report = QualityReport(bad_rows, n_bad, "bar(s)")
    if not report.ok:
        return empty_frame(), report
    index = pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC").rename("timestamp")
    if not index.is_monotonic_increasing:
        order = np.argsort(ns, kind="stable")
        index, block = index[order], block[:, order]
    return pd.DataFrame(block.T, index=index, columns=list(BAR_COLUMNS), copy=False), report


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
