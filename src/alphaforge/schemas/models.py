"""Request and response shapes of the Models API (the seed's contract, plus lineage)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from alphaforge.errors import InvalidInput
from alphaforge.evaluation.cv import effective_purge
from alphaforge.marketdata.bars import Timeframe
from alphaforge.plugins.models.base import ModelFamily
from alphaforge.schemas.request import KEY_MAX, NAME_MAX, URI_MAX, RequestModel, RequestTime, Symbol, TimeRange

MetricName = Annotated[str, StringConstraints(min_length=1, max_length=KEY_MAX)]
#: A metric's value: an integer, a finite number, or null (JSON has no NaN or infinity).
MetricValue = int | Annotated[float, Field(allow_inf_nan=False)] | None
METRICS_MAX = 100


class ModelCreate(RequestModel):
    name: str = Field(min_length=1, max_length=NAME_MAX, examples=["GSPC xgboost"])
    model_type: str = Field(
        min_length=1, max_length=KEY_MAX, description="A short name within the family or a plugin key", examples=["xgboost"]
    )
    family: ModelFamily
    parameters: dict[str, Any] = Field(default_factory=dict, examples=[{"max_depth": 4}])


class ModelUpdate(RequestModel):
    """All optional; ``parameters`` replaces the whole dict. ``version``, when sent, must
    equal the stored version (optimistic lock) or the update is refused with 409. No field
    may be null: leave a field out to keep it.

    ``mlflow_run_id``, ``artifact_uri`` and ``metrics`` amend the model's last training by
    hand (a model never trained is a 409: train it first). Each is checked against what it
    names and recorded in ``lineage.manual`` with the key that set it, when, and the values
    it replaced; the next training replaces them all."""

    name: str | None = Field(None, min_length=1, max_length=NAME_MAX)
    model_type: str | None = Field(None, min_length=1, max_length=KEY_MAX)
    family: ModelFamily | None = None
    parameters: dict[str, Any] | None = None
    mlflow_run_id: str | None = Field(
        None,
        min_length=1,
        max_length=NAME_MAX,
        pattern=r"^[!-~]+$",
        description=(
            "Link or update the MLflow run of the model, by hand: printable ASCII without spaces. "
            "The run must exist, not deleted, in this service's MLflow tracking store (422 otherwise; "
            "503 naming mlflow when it is down)"
        ),
        examples=["0123456789abcdef0123456789abcdef"],
    )
    artifact_uri: str | None = Field(
        None,
        min_length=1,
        max_length=URI_MAX,
        description=(
            "Link another stored artifact, by hand: the URI of an object in this service's object store, "
            "named with the artifact format of the plugin the model's training lineage predicts with "
            "(artifact_format in GET /api/v1/models/plugins/available; e.g. the artifact_uri of another "
            "trained model of that plugin); 422 when it is outside the "
            "store or no object is stored there. Its SHA-256 is computed from the stored bytes "
            "(artifact_sha256) and checked before every prediction. Bytes a training stored on a model "
            "row bring that training's recipe into lineage (prediction feeds them the features they were "
            "trained on; another plugin's training is a 422); other bytes keep the lineage's recipe and "
            "must fit it (a misfit is a 409 at prediction)"
        ),
    )
    metrics: dict[MetricName, MetricValue] | None = Field(
        None,
        max_length=METRICS_MAX,
        description=(
            "Override the stored metrics dict, by hand: names to numbers (or null). Shown as metrics "
            "with metrics_source 'manual'; the training's CV summary stays in cv_metrics"
        ),
        examples=[{"mean_mse": 0.0001, "sharpe": 1.2}],
    )
    version: int | None = Field(None, ge=1, description="The version you read; 409 if it changed since")


class ModelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    model_type: str
    plugin_key: str = Field(description="The registered plugin model_type resolved to")
    family: str
    parameters: dict[str, Any]
    version: int = Field(description="Optimistic-lock counter: bumped by every PATCH and every training")
    mlflow_run_id: str | None = Field(
        description="The MLflow run of the last training, or one linked by hand (see manual_fields); null before"
    )
    artifact_uri: str | None = Field(
        description="The artifact prediction loads: the last training's, or one linked by hand (see manual_fields)"
    )
    artifact_sha256: str | None = Field(description="SHA-256 of the artifact's bytes, checked before every load")
    out_of_fold_uri: str | None = Field(
        None, description="The last training's test-fold predictions (GET /api/v1/models/{id}/out-of-fold); null before"
    )
    metrics: dict[str, Any] = Field(
        description="The last training's CV summary, or the dict set by hand (metrics_source says which); {} before"
    )
    lineage: dict[str, Any] | None = Field(
        description=(
            "How the artifact was trained: the recipe prediction loads it with and recomputes the features "
            "from. Under 'manual': the outputs set by hand (fields: who, when, and for artifact_uri "
            "recipe_from, the model whose training the recipe comes from, null when unknown), what the "
            "model's own training wrote, its recipe included (training), and every hand edit (history); "
            "null before the first training"
        )
    )
    trained_at: datetime | None
    created_at: datetime
    created_by: uuid.UUID | None = Field(None, description="The API key that created it")
    updated_at: datetime

    metrics_source: Literal["cv", "manual"] | None = Field(
        None, description="'cv': metrics is the last training's CV summary; 'manual': set by hand; null: never trained"
    )
    cv_metrics: dict[str, Any] | None = Field(
        None, description="The last training's CV summary, even when metrics was set by hand; null before"
    )
    manual_fields: list[str] = Field(
        default_factory=list,
        description="Training outputs that hold a value set by hand: artifact_uri, metrics, mlflow_run_id",
    )


#: Most symbols a pooled dataset or prediction may name (a universe's members, or a list).
POOLED_SYMBOLS_MAX = 500


class SymbolSource(RequestModel):
    """One symbol, or a panel: a universe's members (point in time) or a list of symbols
    (members for the whole range) — exactly one of the three."""

    symbol: Symbol | None = Field(None, description="One series; or send universe or symbols instead")
    universe: str | None = Field(
        None, min_length=1, max_length=NAME_MAX, description="A panel: this universe's members (name or id)",
        examples=["SP20"],
    )
    symbols: list[Symbol] | None = Field(
        None, min_length=1, max_length=POOLED_SYMBOLS_MAX, description="A panel: these symbols over the whole range"
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        sources = [name for name in ("symbol", "universe", "symbols") if getattr(self, name) is not None]
        if len(sources) != 1:
            raise PydanticCustomError(
                "symbol_universe_or_symbols", "send exactly one of symbol, universe and symbols (got {got})",
                {"got": ", ".join(sources) or "none"},
            )
        if self.symbols is not None:
            repeated = sorted({s for s in self.symbols if self.symbols.count(s) > 1})
            if repeated:
                raise PydanticCustomError(
                    "repeated_symbols", "symbols must be unique; repeated: {repeated}", {"repeated": ", ".join(repeated)}
                )
        return self

    @property
    def is_panel(self) -> bool:
        return self.symbol is None


class DatasetSpec(TimeRange, SymbolSource):
    """The rows a model trains on: one symbol's, or a panel's keyed (timestamp, symbol)."""

    feature_ids: list[uuid.UUID] = Field(min_length=1, max_length=200, description="Columns follow this order")
    timeframe: Timeframe = Timeframe.DAY
    start_date: RequestTime = Field(description="Inclusive; naive values are read as UTC", examples=["2005-01-01"])
    end_date: RequestTime = Field(description="Exclusive; naive values are read as UTC", examples=["2019-01-01"])
    target_horizon: int = Field(1, ge=1, le=260, description="Bars ahead: target = close[t+h] / close[t] - 1")
    target_transform: Literal["raw", "demean", "rank"] = Field(
        "raw",
        description="Panels only: the forward return as is, demeaned, or ranked (0..1) across the symbols of each date",
    )

    @model_validator(mode="after")
    def _transform_needs_a_panel(self) -> Self:
        if self.symbol is not None and self.target_transform != "raw":
            raise PydanticCustomError(
                "transform_needs_panel", "target_transform {transform!r} works across symbols: send a universe or symbols",
                {"transform": self.target_transform},
            )
        return self


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


class CrossValidated(RequestModel):
    """A request whose rows are split by ``cv``: a purge shorter than the target horizon
    would leak the test window into training, and is refused here, once."""

    dataset: DatasetSpec
    cv: CVConfig = Field(default_factory=CVConfig)

    @model_validator(mode="after")
    def _purge_covers_horizon(self) -> Self:
        try:
            effective_purge(self.cv.purge, self.dataset.target_horizon)
        except InvalidInput as exc:
            raise PydanticCustomError("purge_too_short", "{message}", {"message": exc.message}) from None
        return self


class TrainRequest(CrossValidated):
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


class PanelFoldResult(FoldResult):
    """A pooled model's fold: split by date, scored pooled and per date across symbols
    (``cs_``: the IC and rank IC of each test date, then their mean, std, IR and t-statistic)."""

    n_train_dates: int
    n_test_dates: int
    cs_ic: float | None
    cs_ic_std: float | None
    cs_icir: float | None
    cs_ic_t_stat: float | None
    cs_rank_ic: float | None
    cs_rank_ic_std: float | None
    cs_rank_icir: float | None
    cs_rank_ic_t_stat: float | None
    cs_n_dates: int = Field(description="Test dates with an IC (two or more symbols, neither side constant)")


class CVMetrics(BaseModel):
    folds: list[PanelFoldResult | FoldResult]
    summary: dict[str, float | int | None]
    baseline: dict[str, float | int | None] = Field(description="The same metrics for predicting the training mean")


class TrainResponse(BaseModel):
    model_id: uuid.UUID
    version: int
    artifact_uri: str
    artifact_sha256: str
    out_of_fold_uri: str = Field(description="This training's test-fold predictions: GET /api/v1/models/{id}/out-of-fold")
    cv_metrics: CVMetrics
    n_train_rows: int
    feature_columns: list[str]
    mlflow_run_id: str


class PredictRequest(TimeRange, SymbolSource):
    """One symbol's forecasts, or a panel's: every member's while it was a member."""

    timeframe: Timeframe = Timeframe.DAY
    start_date: RequestTime = Field(description="Inclusive; naive values are read as UTC", examples=["2018-01-01"])
    end_date: RequestTime = Field(description="Exclusive; naive values are read as UTC", examples=["2019-01-01"])


class PredictResponse(BaseModel):
    model_id: uuid.UUID
    model_version: int
    plugin_key: str
    symbol: str | None = Field(description="The symbol asked for; null for a universe or a list of symbols")
    symbols: list[str] | None = Field(
        None, description="Panels: each row's symbol (rows sorted by timestamp, then symbol); null for one symbol"
    )
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


class ModelCrossValidation(BaseModel):
    """The cross-validation of a model's last training, as that training answered it: each
    fold's train and test spans and scores, and the naive baseline's (the model row keeps
    only the summary)."""

    model_id: uuid.UUID
    version: int = Field(description="The model version that training produced")
    task_id: uuid.UUID = Field(description="The task that trained it: a train task, or AutoML with create_model")
    finished_at: datetime | None
    mlflow_run_id: str | None = Field(description="The training's MLflow run")
    cv_metrics: CVMetrics
