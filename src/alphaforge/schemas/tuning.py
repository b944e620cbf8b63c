"""Request and response shapes of tuning (Optuna studies) and AutoML (the seed's contract, extended)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from alphaforge.plugins.models.base import ParamSpec
from alphaforge.schemas.models import CrossValidated, CVConfig, DatasetSpec, TrainResponse
from alphaforge.schemas.request import KEY_MAX, NAME_MAX, RequestModel

Direction = Literal["minimize", "maximize"]
TrialState = Literal["COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"]
StudyStopReason = Literal["n_trials", "early_stopping", "timeout", "cancelled"]

METRIC_DESCRIPTION = (
    "Summary metric to optimise: mean_mse, mean_mae (minimised by default), directional_accuracy "
    "(alias mean_directional_accuracy), mean_ic, mean_rank_ic (maximised by default; on a panel these are "
    "pooled over all of a fold's rows, then averaged over folds). Panels only (dataset.universe or "
    "dataset.symbols), maximised by default: mean_cs_ic, mean_cs_rank_ic (per fold the mean over its test "
    "dates of the IC / Spearman rank IC across symbols, then averaged over folds), mean_cs_icir, "
    "mean_cs_rank_icir (per fold that mean over its sample std across dates, then averaged over folds); "
    "icir is an alias of mean_cs_rank_icir. net_sharpe (maximised by default): the annualised Sharpe ratio of the "
    "trial's out-of-fold forecasts traded as `signal` says, net of its costs; known only once every fold is done, "
    "so a study on net_sharpe never prunes. AutoML only, maximised by default: deflated_sharpe (each row's deflated "
    "Sharpe ratio given every trial the run evaluated; its candidates are tuned on net_sharpe)"
)
#: A plugin key, metric or parameter name.
Key = Annotated[str, Field(min_length=1, max_length=KEY_MAX)]

SEED = Field(0, ge=0, le=2**31 - 1, description="Seeds the sampler and every fit: a sequential run is reproducible")


class SignalConfig(RequestModel):
    """How forecasts become returns for the net Sharpe and the overfitting statistics: one symbol
    is a sign strategy, a panel a quantile long-short portfolio, rebalanced every
    dataset.target_horizon bars, annualised with 252 bars a year."""

    cost_bps: float = Field(0.0, ge=0.0, le=10_000.0, description="cost in basis points per unit of turnover")
    n_quantiles: int = Field(5, ge=2, le=20, description="a panel's quantiles: long the top, short the bottom")
    weighting: Literal["equal", "prediction"] = Field("equal", description="within each leg (panels)")
    n_blocks: int = Field(
        16, ge=2, le=64,
        description="even number of blocks of periods for the probability of backtest overfitting (CSCV: C(S, S/2) "
        "splits)",
    )

    @field_validator("n_blocks")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"n_blocks must be even (CSCV splits the blocks into two halves), got {value}")
        return value


SIGNAL_DESCRIPTION = "How forecasts are traded for net_sharpe and the overfitting statistics (defaults when omitted)"


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
    pruner: Literal["percentile", "median", "wilcoxon", "none"] = Field(
        "percentile",
        description="percentile (the default): stop a trial whose score so far is outside the best 40% of the "
        "completed trials' scores after the same fold, from the first fold on; median: stop it when worse than their "
        "median, from the second fold on; wilcoxon: Optuna's WilcoxonPruner, stop a trial whose per-fold scores a "
        "paired signed-rank test finds worse than the best trial's on the same folds (p < 0.15: from the third fold "
        "on, so never with fewer than 4 folds); none. Fold-wise rules start once 5 trials completed. Never with "
        "metric net_sharpe (its score is known only after the last fold), never on the last fold. The default was "
        "measured (lightgbm, 30 trials, 5 folds, 5 seeds): 0.65x the wall time of no pruning with the same best "
        "trial in every seed; median 0.77x, same best; wilcoxon 0.80x, another best in 3 of 5 seeds",
    )
    signal: SignalConfig = Field(default_factory=SignalConfig, description=SIGNAL_DESCRIPTION)
    top_k: int = Field(10, ge=1, le=100, description="Complete trials listed in the response's top_trials, best first")
    warm_start_from: int | None = Field(
        None, ge=0, le=2**31 - 1, description="A study id (GET /api/v1/studies) of the same plugin: its best complete trials' "
        "parameters are the first trials of this study (they must lie in this study's search space)",
    )
    warm_start_trials: int = Field(5, ge=1, le=100, description="How many of its best trials warm_start_from enqueues")


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
    net_sharpe: float | None = Field(
        None, description="A complete trial's forecasts traded as the request's signal says: annualised net Sharpe ratio"
    )


class Overfitting(BaseModel):
    """How much of the winner's performance is selection. Sharpe ratios per period (one period =
    one rebalance, every target_horizon bars) unless named net_sharpe (annualised)."""

    n_trials: int = Field(description="N: trials evaluated whose forecasts have a defined net Sharpe ratio")
    trial_sharpe_variance: float | None = Field(
        description="V: sample variance (ddof 1) of those trials' per-period net Sharpe ratios (0 for one trial)"
    )
    best_trial: int | None = Field(None, description="The winner's trial number (tuning)")
    best_plugin_key: str | None = Field(None, description="The winner's candidate (AutoML)")
    best_net_sharpe: float | None = Field(description="The winner's annualised net Sharpe ratio")
    best_sharpe_per_period: float | None = Field(description="The winner's per-period net Sharpe ratio")
    skew: float | None = Field(description="of the winner's per-period net returns (biased sample skewness)")
    kurtosis: float | None = Field(description="of the winner's per-period net returns (biased, not excess: 3 is normal)")
    expected_max_sharpe: float | None = Field(
        description="SR0: the per-period Sharpe the best of N skill-less trials with variance V is expected to reach"
    )
    probabilistic_sharpe: float | None = Field(description="PSR: P(true Sharpe > 0) of the winner")
    deflated_sharpe: float | None = Field(description="DSR: the winner's PSR against SR0")
    pbo: float | None = Field(
        description="Probability of backtest overfitting: CSCV over the T x N matrix of per-period net returns of the "
        "trials (tuning) or leaderboard rows (AutoML), aligned on their common rebalance dates, selecting by Sharpe"
    )
    pbo_note: str | None = Field(None, description="Why pbo is null")
    n_blocks: int
    n_periods: int = Field(description="T: rows of the matrix (common rebalance dates)")
    note: str | None = Field(None, description="Why the winner's statistics are null")


#: Trials a tune response lists inline (by number); the rest are paged through
#: ``GET /api/v1/studies/{study_id}/trials``.
TRIALS_INLINE_MAX = 100


class TuneResponse(BaseModel):
    study_id: int | None = Field(None, description="The study's id in /api/v1/studies")
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
    stop_reason: StudyStopReason
    top_trials: list[TrialRead] = Field(
        default_factory=list, description="The best complete trials, best first (top_k of the request)"
    )
    trials: list[TrialRead] = Field(
        description=f"The first {TRIALS_INLINE_MAX} trials by number (every trial of a study that small); "
        "page through all of them with GET /api/v1/studies/{study_id}/trials"
    )
    trials_truncated: bool = Field(False, description=f"Whether the study has more than {TRIALS_INLINE_MAX} trials")
    mlflow_parent_run_id: str | None
    warm_start_from: int | None = Field(None, description="The study whose best trials this one started with")
    overfitting: Overfitting | None = Field(
        None, description="The best trial's probabilistic and deflated Sharpe ratios over the study's complete trials, "
        "and the study's probability of backtest overfitting"
    )


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
    signal: SignalConfig = Field(default_factory=SignalConfig, description=SIGNAL_DESCRIPTION)


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
    net_sharpe: float | None = Field(None, description="Annualised net Sharpe ratio of the row's forecasts")
    deflated_sharpe: float | None = Field(
        None, description="The row's deflated Sharpe ratio: its PSR against SR0 of the run's N evaluated trials and the "
        "variance V of their per-period net Sharpe ratios (see overfitting)"
    )
    error: CandidateError | None = None


class AutoMLResponse(BaseModel):
    metric: str
    direction: Direction
    leaderboard: list[LeaderboardRow] = Field(description="Best first; failed candidates last")
    best: LeaderboardRow | None = Field(description="The first row, unless every candidate failed")
    model_id: uuid.UUID | None = None
    trained: TrainResponse | None = Field(None, description="The winner's training (create_model=true)")
    overfitting: Overfitting | None = Field(
        None, description="The winner's (rank 1) probabilistic and deflated Sharpe ratios given every trial the run "
        "evaluated, and the probability of backtest overfitting over the leaderboard rows"
    )
    mlflow_run_id: str | None = Field(None, description="The run's MLflow record: each row's score, overfitting.* figures")


# -- stored studies (GET /api/v1/studies) ---------------------------------------------------
class StudyRead(BaseModel):
    """A stored study in a few numbers: what it tunes, how far it got, its best trial."""

    study_id: int
    study_name: str
    plugin_key: str | None = Field(description="None for a study this service did not create")
    metric: str | None
    direction: Direction
    n_trials_requested: int | None = Field(description="The request's n_trials")
    n_trials: int = Field(description="Trials that finished (complete, pruned or failed)")
    n_complete: int
    n_pruned: int
    n_failed: int
    n_running: int
    n_waiting: int = Field(description="Enqueued trials not started yet (warm starts)")
    best_trial: int | None
    best_score: float | None
    best_params: dict[str, Any] | None = None
    stop_reason: StudyStopReason | None = Field(description="None while the study can still run trials")
    created_at: str | None = Field(description="ISO time the study was created (UTC)")
    mlflow_parent_run_id: str | None
    warm_start_from: int | None = Field(None, description="The study whose best trials were enqueued first (lineage)")
    warm_start_trials: list[int] = Field(
        default_factory=list, description="Those trials' numbers in that study, in the order they were enqueued here "
        "(this study's trials 0, 1, ...)",
    )


class StudyPage(BaseModel):
    items: list[StudyRead]
    total: int
    limit: int
    offset: int


class TrialPage(BaseModel):
    items: list[TrialRead]
    total: int = Field(description="Trials matching the filter")
    limit: int
    offset: int
    next_offset: int | None = Field(description="The offset of the next page; None on the last page")
