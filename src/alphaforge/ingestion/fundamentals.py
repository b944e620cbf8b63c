"""The fundamentals upload gate: records (period_end, available_at, field, value) of one
symbol, parsed and checked before :class:`alphaforge.marketdata.fundamentals.FundamentalsStore`
merges them. Shares the point-in-time rules of macro series (:mod:`alphaforge.ingestion.pit`)
and adds the field name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.ingestion.gate import FirstValues, RecordsQualityReport, Rule, find_bad_rows, require_rows, resolve_columns
from alphaforge.ingestion.pit import PitParser
from alphaforge.ingestion.records import ColumnBuffer, Records, as_records
from alphaforge.marketdata.fundamentals import field_name
from alphaforge.marketdata.pit_table import iso

RECORD_COLUMNS = ("period_end", "available_at", "field", "value")


@dataclass(frozen=True)
class FundamentalBadRow:
    row: int  # 1-based position in the upload
    field: str | None
    period_end: str | None
    available_at: str | None
    problems: list[str]

    def label(self) -> str:
        return f"{self.field}, {self.period_end}, available {self.available_at}"


FundamentalQualityReport = RecordsQualityReport[FundamentalBadRow]


class _FieldNames:
    """Field names normalized chunk by chunk into int codes (one per distinct name; -1 for
    an invalid one): each distinct text is normalized once, never a string per row."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._codes: dict[str, int] = {}
        self.given = FirstValues()  # invalid names as uploaded, for the 422

    def _code(self, given: Any) -> int:
        name = field_name(given)
        if name is None:
            return -1
        return self._codes.setdefault(name, len(self._codes))

    def add(self, offset: int, raw: pd.Series) -> np.ndarray:
        if isinstance(raw.dtype, pd.StringDtype):  # a CSV: codes of the distinct texts
            codes, uniques = pd.factorize(raw)
            lookup = np.asarray([self._code(u) for u in uniques] + [-1], dtype="int64")
            out = lookup[codes]  # code -1 (a missing value) takes the last entry: invalid
        else:  # JSON values: any type
            out = np.asarray([self._code(v) for v in raw], dtype="int64")
        self.names = list(self._codes)
        self.given.offer(offset, out < 0, raw)
        return out


def parse_fundamentals_upload(records: pd.DataFrame | Records) -> tuple[pd.DataFrame, FundamentalQualityReport]:
    """Parse raw uploaded rows (any case of column names) and run the quality gate.

    Returns a frame of ``field`` (normalized), ``observation`` (the period end) /
    ``available`` (int64 UTC ns) and ``value`` (float64) in upload order, and the report;
    the frame is only meaningful when the report is ok. Rows are numbered from 1."""
    records = as_records(records)
    columns = resolve_columns(records, "fundamentals records", RECORD_COLUMNS)
    parser, fields, field_codes = PitParser("period_end"), _FieldNames(), ColumnBuffer(1, "int64")
    for chunk in records.chunks([columns[c] for c in RECORD_COLUMNS]):
        field_codes.append(fields.add(parser.n_rows, chunk.iloc[:, 2]))
        parser.add(chunk.iloc[:, 0], chunk.iloc[:, 1], chunk.iloc[:, 3])
    require_rows(parser.n_rows, "records")
    codes = field_codes.values()[0]
    invalid = codes < 0
    # An invalid name never duplicates another row: a code of its own (below -1).
    pit = parser.finish(group=np.where(invalid, -2 - np.arange(len(codes)), codes), group_name="field")
    rules: list[Rule] = [
        (invalid, lambda i: f"field {fields.given[i]!r} is not a field name (lower-case, e.g. eps)"),
        *pit.rules,
    ]
    described, n_bad = find_bad_rows(parser.n_rows, rules)
    bad_rows = [
        FundamentalBadRow(
            row=i + 1,
            field=None if invalid[i] else fields.names[codes[i]],
            period_end=None if pit.obs_bad[i] else iso(pit.observation[i]),
            available_at=None if pit.avail_bad[i] else iso(pit.available[i]),
            problems=problems,
        )
        for i, problems in described
    ]
    names = np.asarray([*fields.names, ""], dtype=object)  # one object per name, shared by its rows
    frame = pd.DataFrame(
        {"field": names[codes], "observation": pit.observation, "available": pit.available, "value": pit.value}
    )
    return frame, FundamentalQualityReport(bad_rows, n_bad, "fundamentals record(s)")
