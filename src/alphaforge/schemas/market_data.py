"""Request and response shapes of the market-data endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class BarsUpload(BaseModel):
    """JSON upload: rows with timestamp, open, high, low, close, volume. Each row is
    checked by the data-quality gate, which names the bad ones."""

    bars: list[dict[str, Any]] = Field(
        min_length=1,
        examples=[[{"timestamp": "2019-01-02T00:00:00Z", "open": 2476.96, "high": 2519.49,
                    "low": 2467.47, "close": 2510.03, "volume": 3733160000}]],
    )


class IngestResponse(BaseModel):
    symbol: str
    timeframe: str
    received: int
    inserted: int
    replaced: int = Field(description="Bars that already existed and were restated")
    n_bars: int
    first_bar: datetime
    last_bar: datetime
    fingerprint: str


class TimeframeInfo(BaseModel):
    timeframe: str
    first_bar: datetime
    last_bar: datetime
    n_bars: int | None = Field(description="null for 1w, which is aggregated from 1d on read")


class SymbolInfo(BaseModel):
    symbol: str
    timeframes: list[TimeframeInfo]


class SymbolList(BaseModel):
    symbols: list[SymbolInfo]


class BarsResponse(BaseModel):
    symbol: str
    timeframe: str
    n_bars: int
    bars: list[dict[str, Any]]
