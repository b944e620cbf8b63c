"""Request and response shapes of the macro-series endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class MacroUpload(BaseModel):
    """JSON upload: records with observation_date, available_at, value. Each is checked by
    the data-quality gate, which names the bad ones."""

    records: list[dict[str, Any]] = Field(
        min_length=1,
        examples=[[{"observation_date": "2018-11-01", "available_at": "2018-12-15", "value": 259.481}]],
    )


class MacroIngestResponse(BaseModel):
    series: str
    received: int
    inserted: int = Field(description="New records: new observations or restatements (a later available_at)")
    unchanged: int = Field(description="Records identical to stored ones (no-op)")
    n_records: int
    fingerprint: str = Field(description="SHA-256 of all the series' records (PitSeries.fingerprint)")


class MacroSeriesInfo(BaseModel):
    series: str
    n_records: int
    first_observation: datetime
    last_observation: datetime
    last_available_at: datetime


class MacroSeriesList(BaseModel):
    series: list[MacroSeriesInfo]


class MacroRecord(BaseModel):
    observation_date: datetime
    available_at: datetime
    value: float


class MacroRecordsResponse(BaseModel):
    series: str
    as_of: datetime | None
    n_records: int
    fingerprint: str = Field(description="Fingerprint of the records known at as_of (all when as_of is absent)")
    records: list[MacroRecord]
