"""Request and response shapes of tuning (Optuna studies) and AutoML (the seed's contract, extended)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from alphaforge.plugins.models.base import ParamSpec
from alphaforge.schemas.models import CrossValidated, CVConfig, DatasetSpec, TrainResponse
from alphaforge.schemas.request import KEY_MAX, NAME_MAX

Direction = Literal["minimize", "maximize"]
TrialState = Literal["COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"]

METRIC_DESCRIPTION = (
    "Summary metric to optimise: mean_mse, mean_mae (minimised by default), directional_accuracy "
    "(alias mean_directional_accuracy), mean_ic, mean_rank_ic (maximised by default; on a panel these are "
    "pooled over all of a fold's rows, then averaged over folds). Panels only (dataset.universe or "
    "dataset.symbols), maximised by default: mean_cs_ic, mean_cs_rank_ic (per fold the mean over its test "
    "dates of the IC / Spearman rank IC across symbols, then averaged over folds), mean_cs_icir, "
    "mean_cs_rank_icir (per fold that mean over its sample std across dates, then averaged over folds); "
    "icir is an alias of mean_cs_rank_icir"
)
#: A plugin key, metric or parameter name.
Key = Annotated[str, Field(min_length=1, max_length=KEY_MAX)]

SEED = Field(0, ge=0, le=2**31 - 1, description="Seeds the sampler and every fit: a sequential run is reproducible")


class TuneRequest(CrossValidated):
    plugin_key: Key = Field(examples=["ml.lightgbm"])
    dataset: DatasetSpec
    param_space: dict[Key, ParamSpec] | None = Field(
        None,
        max_length=100,
        description="{parameter: ParamSpec}; replaces the plugin's default space (GET /models/plugins/search-spaces)",
    )
    fixed_params: dict[str, Any] = Field(
        default_factory=dict, description="Parameters held fixed in every trial (not also in param_space)"
    )
    n_trials: int = Field(30, ge=1, le=1000, description="Trials in the study, across all workers")
    cv: CVConfig = Field(default_factory=CVConfig)
    metric: Key = Field("mean_mse", description=METRIC_DESCRIPTION)
    direction: Direction | None = Field(None, description="Default: from the metric")
    seed: int = SEED
    timeout_s: float | None = Field(
        None, gt=0, le=7 * 86_400, description="No trial starts this long after the first one started"
    )
    patience: int | None = Field(
        None, ge=1, le=1000, description="Early stopping: stop after this many finished trials without a better score"
    )
    pruner: Literal["median", "none"] = Field(
        "median", description="median: stop a trial whose score so far is worse than the median of earlier trials"
    )


class TrialRead(BaseModel):
    number: int
    state: TrialState
    params: dict[str, Any] = Field(description="Sampled values merged with fixed_params")
    score: float | None = Field(description="The metric; for a pruned trial, over the folds it reached")
    folds_evaluated: int
    folds: list[dict[str, Any]] = Field(
        default_factory=list, description="Each evaluated fold's spans and scores, as training reports them"
    )
    metrics: dict[str, float | int | None] | None = Field(None, description="Summary over the folds (complete trials)")
    duration_s: float | None
    error: str | None = Field(None, description="Why a failed trial failed")
    mlflow_run_id: str | None = None
    out_of_fold_uri: str | None = Field(
        None, description="A complete trial's test-fold forecasts (timestamp, symbol, fold, prediction, target)"
    )


class TuneResponse(BaseModel):
    study_name: str
    plugin_key: str
    metric: str
    direction: Direction
    best_params: dict[str, Any] = Field(description="The best trial's sampled values merged with fixed_params")
    best_score: float
    best_trial: int
    best_metrics: dict[str, float | int | None] = Field(description="Every summary metric of the best trial")
    n_trials: int = Field(description="Trials that finished (complete, pruned or failed)")
    n_complete: int
    n_pruned: int
    n_failed: int
    stop_reason: Literal["n_trials", "early_stopping", "timeout", "cancelled"]
    trials: list[TrialRead]
    mlflow_parent_run_id: str | None


class AutoMLRequest(CrossValidated):
    dataset: DatasetSpec
    candidates: dict[Key, dict[str, Any]] = Field(
        min_length=1,
        max_length=20,
        description="{plugin_key: fixed parameters}, evaluated in this order",
        examples=[{"ml.ridge": {"alpha": 1.0}, "ml.lightgbm": {"n_estimators": 100}}],
    )
    cv: CVConfig = Field(default_factory=CVConfig)
    metric: Key = Field("mean_mse", description=METRIC_DESCRIPTION)
    direction: Direction | None = Field(None, description="Default: from the metric")
    n_trials: int = Field(
        0, ge=0, le=1000,
        description="Tuning trials per candidate over its default search space (its fixed parameters stay fixed); 0: no tuning",
    )
    seed: int = SEED
    create_model: bool = Field(False, description="Save the best candidate as a model definition and train it")
    model_name: str | None = Field(None, min_length=1, max_length=NAME_MAX, description="Default: 'automl <plugin_key>'")


class CandidateError(BaseModel):
    type: str
    message: str


class LeaderboardRow(BaseModel):
    rank: int
    plugin_key: str
    params: dict[str, Any] = Field(description="As given, or the tuned best merged with them")
    score: float | None
    metrics: dict[str, float | int | None] | None = Field(description="Every summary metric")
    fit_time_s: float = Field(description="Wall time spent on this candidate (tuning and cross-validation)")
    n_trials: int = Field(0, description="Tuning trials run for this candidate")
    study_name: str | None = None
    out_of_fold_uri: str | None = Field(
        None, description="The row's test-fold forecasts (its best trial's when tuned): timestamp, symbol, fold, prediction, target"
    )
    error: CandidateError | None = None


class AutoMLResponse(BaseModel):
    metric: str
    direction: Direction
    leaderboard: list[LeaderboardRow] = Field(description="Best first; failed candidates last")
    best: LeaderboardRow | None = Field(description="The first row, unless every candidate failed")
    model_id: uuid.UUID | None = None
    trained: TrainResponse | None = Field(None, description="The winner's training (create_model=true)")
