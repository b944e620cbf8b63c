"""Request and response shapes of the Features API (the seed's contract, plus extras)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from alphaforge.marketdata.bars import Timeframe
from alphaforge.plugins.features.base import FeatureCategory
from alphaforge.schemas.request import (
    DESCRIPTION_MAX,
    KEY_MAX,
    NAME_MAX,
    URI_MAX,
    RequestModel,
    RequestTime,
    Symbol,
    TimeRange,
)


class FeatureCreate(RequestModel):
    name: str = Field(min_length=1, max_length=NAME_MAX, examples=["14-period RSI"])
    type: FeatureCategory
    plugin_key: str = Field(max_length=KEY_MAX, examples=["technical.rsi"])
    parameters: dict[str, Any] = Field(default_factory=dict, examples=[{"period": 14}])
    description: str | None = Field(None, max_length=DESCRIPTION_MAX)


class FeatureUpdate(RequestModel):
    """All optional; ``parameters`` replaces the whole dict. ``version``, when sent, must
    equal the stored version (optimistic lock) or the update is refused with 409."""

    name: str | None = Field(None, min_length=1, max_length=NAME_MAX)
    type: FeatureCategory | None = None
    plugin_key: str | None = Field(None, max_length=KEY_MAX)
    parameters: dict[str, Any] | None = None
    description: str | None = Field(None, max_length=DESCRIPTION_MAX)
    storage_uri: str | None = Field(None, max_length=URI_MAX)
    version: int | None = Field(None, ge=1, description="The version you read; 409 if it changed since")


class FeatureRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    type: str
    plugin_key: str
    parameters: dict[str, Any]
    description: str | None
    version: int
    storage_uri: str | None
    created_at: datetime
    created_by: uuid.UUID | None = Field(None, description="The API key that created it")
    updated_at: datetime


class FeatureGenerateRequest(TimeRange):
    symbol: Symbol
    timeframe: Timeframe = Timeframe.DAY
    start_date: RequestTime = Field(description="Inclusive; naive values are read as UTC", examples=["2010-01-01"])
    end_date: RequestTime = Field(description="Exclusive; naive values are read as UTC", examples=["2019-01-01"])


class FeatureDatasetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    feature_id: uuid.UUID
    symbol: str
    timeframe: str
    start_date: datetime
    end_date: datetime
    version_hash: str
    storage_uri: str
    row_count: int
    columns: list[str]
    source_fingerprint: str
    lineage: dict[str, Any] = Field(description="The document the version hash was computed from")
    created_at: datetime
    created_by: uuid.UUID | None = Field(None, description="The API key whose request computed it")


class FeatureGenerateResponse(BaseModel):
    dataset: FeatureDatasetRead
    preview: list[dict[str, Any]] = Field(description="First 10 rows; NaN as null")
    cached: bool = Field(description="True when an existing dataset was returned without computing")


class FeaturePluginCatalog(BaseModel):
    plugins: list[str]
    metadata: dict[str, dict[str, Any]]
