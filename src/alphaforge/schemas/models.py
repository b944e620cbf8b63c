"""Request and response shapes of the Models API (the seed's contract, plus lineage)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from alphaforge.marketdata.bars import Timeframe
from alphaforge.plugins.models.base import ModelFamily
from alphaforge.schemas.request import KEY_MAX, NAME_MAX, URI_MAX, RequestModel, RequestTime, Symbol

#: Fields of the seed's ModelUpdate that only training writes; sending one is a 422.
TRAINING_OUTPUTS = ("mlflow_run_id", "artifact_uri", "metrics")


class ModelCreate(RequestModel):
    name: str = Field(min_length=1, max_length=NAME_MAX, examples=["GSPC xgboost"])
    model_type: str = Field(
        min_length=1, max_length=KEY_MAX, description="A short name within the family or a plugin key", examples=["xgboost"]
    )
    family: ModelFamily
    parameters: dict[str, Any] = Field(default_factory=dict, examples=[{"max_depth": 4}])


class ModelUpdate(RequestModel):
    """All optional; ``parameters`` replaces the whole dict. ``version``, when sent, must
    equal the stored version (optimistic lock) or the update is refused with 409.
    ``mlflow_run_id``, ``artifact_uri`` and ``metrics`` are written by training only."""

    name: str | None = Field(None, min_length=1, max_length=NAME_MAX)
    model_type: str | None = Field(None, min_length=1, max_length=KEY_MAX)
    family: ModelFamily | None = None
    parameters: dict[str, Any] | None = None
    mlflow_run_id: str | None = Field(
        None, max_length=NAME_MAX, description="Read-only: written by training; sending it is a 422"
    )
    artifact_uri: str | None = Field(
        None, max_length=URI_MAX, description="Read-only: written by training; sending it is a 422"
    )
    metrics: dict[str, Any] | None = Field(None, description="Read-only: written by training; sending it is a 422")
    version: int | None = Field(None, ge=1, description="The version you read; 409 if it changed since")


class ModelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    model_type: str
    plugin_key: str = Field(description="The registered plugin model_type resolved to")
    family: str
    parameters: dict[str, Any]
    version: int
    mlflow_run_id: str | None
    artifact_uri: str | None
    artifact_sha256: str | None
    metrics: dict[str, Any]
    lineage: dict[str, Any] | None = Field(description="How the stored artifact was trained")
    trained_at: datetime | None
    created_at: datetime
    created_by: uuid.UUID | None = Field(None, description="The API key that created it")
    updated_at: datetime


class DatasetSpec(RequestModel):
    feature_ids: list[uuid.UUID] = Field(min_length=1, max_length=200, description="Columns follow this order")
    symbol: Symbol
    timeframe: Timeframe = Timeframe.DAY
    start_date: RequestTime = Field(description="Inclusive; naive values are read as UTC", examples=["2005-01-01"])
    end_date: RequestTime = Field(description="Exclusive; naive values are read as UTC", examples=["2019-01-01"])
    target_horizon: int = Field(1, ge=1, le=260, description="Bars ahead: target = close[t+h] / close[t] - 1")


class CVConfig(RequestModel):
    method: Literal["rolling", "expanding"] = "rolling"
    n_splits: int = Field(5, ge=1, le=50)
    test_size: float = Field(0.15, gt=0, lt=1, description="Rows per test fold, as a fraction of all rows")
    min_train_size: float = Field(
        0.2, gt=0, lt=1, description="Fewest training rows a fold may have, as a fraction of all rows"
    )
    purge: int | None = Field(
        None, ge=0, le=10_000, description="Training rows dropped before each test window; default and minimum: target_horizon"
    )
    embargo: int = Field(0, ge=0, le=10_000, description="Rows after each test window left out of later training sets")


class TrainRequest(RequestModel):
    dataset: DatasetSpec
    cv: CVConfig = Field(default_factory=CVConfig)
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds every fit: the same request gives the same model")


class FoldResult(BaseModel):
    fold: int
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime
    n_train: int
    n_test: int
    mse: float | None
    mae: float | None
    directional_accuracy: float | None
    ic: float | None
    rank_ic: float | None
    baseline_mse: float | None = Field(description="MSE of predicting the training mean")


class CVMetrics(BaseModel):
    folds: list[FoldResult]
    summary: dict[str, float | int | None]
    baseline: dict[str, float | int | None] = Field(description="The same metrics for predicting the training mean")


class TrainResponse(BaseModel):
    model_id: uuid.UUID
    version: int
    artifact_uri: str
    artifact_sha256: str
    cv_metrics: CVMetrics
    n_train_rows: int
    feature_columns: list[str]
    mlflow_run_id: str


class PredictRequest(RequestModel):
    symbol: Symbol
    timeframe: Timeframe = Timeframe.DAY
    start_date: RequestTime = Field(description="Inclusive; naive values are read as UTC", examples=["2018-01-01"])
    end_date: RequestTime = Field(description="Exclusive; naive values are read as UTC", examples=["2019-01-01"])


class PredictResponse(BaseModel):
    model_id: uuid.UUID
    model_version: int
    plugin_key: str
    symbol: str
    timeframe: str
    feature_columns: list[str]
    timestamps: list[datetime]
    predictions: list[float]
    volatility: list[float] | None = Field(
        None, description="stat.garch: each bar's volatility forecast (return units), made horizon bars before it"
    )


class ModelPluginCatalog(BaseModel):
    plugins: list[str]
    metadata: dict[str, dict[str, Any]]
