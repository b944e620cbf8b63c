"""The bars upload gate: raw rows (a CSV, JSON records, a provider's payload) to the
canonical frame of :mod:`alphaforge.marketdata.bars`, or a 422 naming the bad rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.ingestion.gate import FirstValues, RecordsQualityReport, Rule, find_bad_rows, require_rows, resolve_columns
from alphaforge.ingestion.records import ColumnBuffer, Records, as_records, parse_numbers, parse_times
from alphaforge.marketdata.bars import BAR_COLUMNS, empty_frame
from alphaforge.marketdata.times import MAX_TIME, MIN_TIME


@dataclass(frozen=True)
class BadRow:
    row: int  # 1-based position in the upload
    timestamp: str | None
    problems: list[str]

    def label(self) -> str:
        return str(self.timestamp)


BarsQualityReport = RecordsQualityReport[BadRow]

#: The fields an upload may lack (a close-only series: adjusted closes, an index level).
OPTIONAL_FIELDS = ("open", "high", "low", "volume")
#: The names a bar's time column may have.
_ALIASES = {"timestamp": ("timestamp", "datetime", "date", "time")}
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


def parse_bars_upload(records: pd.DataFrame | Records) -> tuple[pd.DataFrame, BarsQualityReport]:
    """Parse raw uploaded rows (any case of column names) and run the quality gate.

    ``timestamp`` and ``close`` are required; open, high, low and volume may be absent as
    whole columns (their frame columns are then NaN throughout: never fabricated), but a
    column that is there must hold a finite number in every row. Returns the canonical frame and the report; the frame is only meaningful if the
    report is ok. Rows are numbered from 1 in upload order. The rows are read chunk by
    chunk; only the parsed numbers are kept.
    """
    records = as_records(records)
    columns = resolve_columns(records, "bars", ("timestamp", "close"), OPTIONAL_FIELDS, aliases=_ALIASES)
    fields = [c for c in BAR_COLUMNS if c in columns]  # close, and the optional fields it has
    stamps, unusable_rows = ColumnBuffer(1, "int64"), ColumnBuffer(1, "bool")
    values = ColumnBuffer(len(fields), "float64")
    given = FirstValues()  # the first unusable timestamps as uploaded, for the 422
    for chunk in records.chunks([columns["timestamp"], *(columns[c] for c in fields)]):
        raw_ts = chunk.iloc[:, 0]
        ns, unusable = parse_times(raw_ts, _TS_MIN, _TS_MAX)
        given.offer(stamps.n_rows, unusable, raw_ts)
        stamps.append(ns)
        unusable_rows.append(unusable)
        values.append(*(parse_numbers(chunk.iloc[:, k + 1]) for k in range(len(fields))))
    n = stamps.n_rows
    require_rows(n, "bars")

    ns, unusable = stamps.values()[0], unusable_rows.values()[0]
    block = np.full((len(BAR_COLUMNS), n), np.nan)  # a field the upload lacks stays NaN throughout
    given_block = values.values()
    for k, c in enumerate(fields):
        block[BAR_COLUMNS.index(c)] = given_block[k]
    o, h, low, c_, v = block

    rules: list[Rule] = [(~np.isfinite(block[BAR_COLUMNS.index(c)]), f"{c} is missing or not a finite number")
                         for c in fields]
    with np.errstate(invalid="ignore"):  # a comparison with an absent field (NaN) is False
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
    report = BarsQualityReport(bad_rows, n_bad, "bar(s)")
    if not report.ok:
        return empty_frame(), report
    index = pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC").rename("timestamp")
    if not index.is_monotonic_increasing:
        order = np.argsort(ns, kind="stable")
        index, block = index[order], block[:, order]
    return pd.DataFrame(block.T, index=index, columns=list(BAR_COLUMNS), copy=False), report
