"""Request and response shapes of the Features API (the seed's contract, plus extras)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

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


class FeatureTemplate(BaseModel):
    """A ready-made definition: POST it to /api/v1/features as it stands (or edit it first)."""

    name: str
    type: str
    plugin_key: str
    parameters: dict[str, Any]
    description: str


class ExpressionOperator(BaseModel):
    name: str
    signature: str = Field(examples=["mean(x, n)"])
    kind: str = Field(description="elementwise, time_series (each symbol's own bars) or cross_sectional")
    summary: str


class FeatureLibrary(BaseModel):
    templates: list[FeatureTemplate]
    operators: list[ExpressionOperator] = Field(
        description="functions of the expression language (automated.expression); infix: + - * / < <= > >= == != "
        "and or not, parentheses, numbers and the bar fields open high low close volume"
    )


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


#: Symbols one explicit panel request may list (a universe may hold more over its history).
PANEL_SYMBOLS_MAX = 500


class FeaturePanelRequest(TimeRange):
    """One feature over a universe's members (point in time) or over a list of symbols
    (members for the whole range): exactly one of the two."""

    universe: str | None = Field(
        None, min_length=1, max_length=NAME_MAX, description="A universe's name or id", examples=["SP20"]
    )
    symbols: list[Symbol] | None = Field(
        None, min_length=1, max_length=PANEL_SYMBOLS_MAX, description="Instead of a universe: these symbols",
    )
    timeframe: Timeframe = Timeframe.DAY
    start_date: RequestTime = Field(description="Inclusive; naive values are read as UTC", examples=["2005-01-01"])
    end_date: RequestTime = Field(description="Exclusive; naive values are read as UTC", examples=["2022-12-29"])

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.universe is None) == (self.symbols is None):
            raise PydanticCustomError("universe_or_symbols", "send exactly one of universe and symbols")
        if self.symbols is not None:
            repeated = sorted({s for s in self.symbols if self.symbols.count(s) > 1})
            if repeated:
                raise PydanticCustomError(
                    "repeated_symbols", "symbols must be unique; repeated: {repeated}", {"repeated": ", ".join(repeated)}
                )
        return self


class FeaturePanelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    feature_id: uuid.UUID
    universe_id: uuid.UUID | None = Field(description="Null for a list of symbols, or once the universe was deleted")
    symbols: list[str] = Field(description="The members with rows in the range")
    timeframe: str
    start_date: datetime
    end_date: datetime
    version_hash: str
    request_key: str | None = Field(
        None, description="The hash of the request and each member's series fingerprint that last found this panel "
        "without planning its pieces (null: planned piece by piece, e.g. a feature reading other sources)",
    )
    storage_uri: str
    row_count: int
    columns: list[str]
    lineage: dict[str, Any] = Field(
        description="The document the version hash was computed from: definition, membership, each piece's dataset hash"
    )
    created_at: datetime
    created_by: uuid.UUID | None = Field(None, description="The API key whose request computed it")


class PanelPiece(BaseModel):
    symbol: str
    dataset_id: uuid.UUID
    cached: bool = Field(description="True when the symbol's dataset was a hit (nothing computed)")


class FeaturePanelResponse(BaseModel):
    panel: FeaturePanelRead
    preview: list[dict[str, Any]] = Field(description="First 10 rows (timestamp, symbol, values); NaN as null")
    cached: bool = Field(description="True when an existing panel was returned without assembling it")
    pieces: list[PanelPiece] = Field(
        default_factory=list, description="The per-symbol generations this request ran (none on a panel hit)"
    )


#: Features one multi-feature panel request may name.
PANEL_FEATURES_MAX = 50


class FeaturePanelsRequest(FeaturePanelRequest):
    """Several features over the same universe (or symbols) and range, built together: one
    plan, one task, each batch of members' bars read once for every feature (what a
    request per feature pays ten times)."""

    feature_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=PANEL_FEATURES_MAX, description="The features, each answered with its own panel, in this order",
    )

    @model_validator(mode="after")
    def _distinct_features(self) -> Self:
        repeated = sorted({str(f) for f in self.feature_ids if self.feature_ids.count(f) > 1})
        if repeated:
            raise PydanticCustomError(
                "repeated_features", "feature_ids must be unique; repeated: {repeated}", {"repeated": ", ".join(repeated)}
            )
        return self

    def one(self) -> FeaturePanelRequest:
        """The request each feature's panel answers."""
        return FeaturePanelRequest.model_validate(self.model_dump(exclude={"feature_ids"}))


class FeaturePanelsResponse(BaseModel):
    panels: list[FeaturePanelResponse] = Field(description="One per requested feature, in the request's order")


class FeaturePluginCatalog(BaseModel):
    plugins: list[str]
    metadata: dict[str, dict[str, Any]]
