"""The macro upload gate: records (observation_date, available_at, value) of one series,
parsed and checked before :class:`alphaforge.marketdata.macro.MacroStore` merges them."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from alphaforge.ingestion.gate import RecordsQualityReport, find_bad_rows, require_rows, resolve_columns
from alphaforge.ingestion.pit import PitParser
from alphaforge.ingestion.records import Records, as_records
from alphaforge.marketdata.pit_table import iso

RECORD_COLUMNS = ("observation_date", "available_at", "value")


@dataclass(frozen=True)
class MacroBadRow:
    row: int  # 1-based position in the upload
    observation_date: str | None
    available_at: str | None
    problems: list[str]

    def label(self) -> str:
        return f"{self.observation_date}, available {self.available_at}"


MacroQualityReport = RecordsQualityReport[MacroBadRow]


def parse_macro_upload(records: pd.DataFrame | Records) -> tuple[pd.DataFrame, MacroQualityReport]:
    """Parse raw uploaded rows (any case of column names) and run the quality gate.

    Returns a frame of ``observation`` / ``available`` (int64 UTC ns) and ``value``
    (float64) in upload order, and the report; the frame is only meaningful when the
    report is ok. Rows are numbered from 1 in upload order.
    """
    records = as_records(records)
    columns = resolve_columns(records, "macro records", RECORD_COLUMNS)
    parser = PitParser()
    for chunk in records.chunks([columns[c] for c in RECORD_COLUMNS]):
        parser.add(chunk.iloc[:, 0], chunk.iloc[:, 1], chunk.iloc[:, 2])
    require_rows(parser.n_rows, "records")
    pit = parser.finish()
    described, n_bad = find_bad_rows(parser.n_rows, pit.rules)
    bad_rows = [
        MacroBadRow(
            row=i + 1,
            observation_date=None if pit.obs_bad[i] else iso(pit.observation[i]),
            available_at=None if pit.avail_bad[i] else iso(pit.available[i]),
            problems=problems,
        )
        for i, problems in described
    ]
    frame = pd.DataFrame({"observation": pit.observation, "available": pit.available, "value": pit.value})
    return frame, MacroQualityReport(bad_rows, n_bad, "record(s)")
