"""Request and response shapes of the fundamentals endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class FundamentalsUpload(BaseModel):
    """JSON upload: records with period_end, available_at, field, value. Each is checked by
    the data-quality gate, which names the bad ones."""

    records: list[dict[str, Any]] = Field(
        min_length=1,
        examples=[[{"period_end": "2018-09-30", "available_at": "2018-10-25T21:00:00Z", "field": "eps",
                    "value": 41.38}]],
    )


class FundamentalsIngestResponse(BaseModel):
    symbol: str
    received: int
    inserted: int = Field(description="New records: new periods or restatements (a later available_at)")
    unchanged: int = Field(description="Records identical to stored ones (no-op)")
    n_records: int = Field(description="Records of the symbol, all fields")
    fingerprints: dict[str, str] = Field(description="Field -> SHA-256 of all its records (PitSeries.fingerprint)")


class FundamentalFieldInfo(BaseModel):
    field: str
    n_records: int
    first_period_end: datetime
    last_period_end: datetime
    last_available_at: datetime


class FundamentalRecord(BaseModel):
    field: str
    period_end: datetime
    available_at: datetime
    value: float


class FundamentalsResponse(BaseModel):
    symbol: str
    as_of: datetime | None
    fields: list[FundamentalFieldInfo] = Field(description="Every field the symbol has (whatever the filter)")
    n_records: int
    records: list[FundamentalRecord]
