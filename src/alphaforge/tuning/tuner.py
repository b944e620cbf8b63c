"""Hyperparameter tuning: an Optuna study over the same purged walk-forward CV as trainer.

What the system alphaforge replaces lacked, and how it is done here:

- The study lives in the service's database (``tuning.studies``), so several processes
  can run trials of one study: ``create_study`` once, ``run_trials`` in any number of
  workers, ``tune_result`` once they are done. ``tune`` does the three in a row.
- The trial budget is exact across processes. Optuna numbers trials under a row lock on
  the study, so a trial numbered ``>= n_trials`` is surplus: it is told FAIL with the user
  attribute ``surplus`` before running, and never counted or shown. (``MaxTrialsCallback``
  counts only once a trial ends: two workers could both start the last trial.)
- Sampling is TPE seeded per trial from ``(seed, trial number)``: a sequential study is
  reproducible, and concurrent workers do not draw the same start-up points.
- After each fold the score so far (the metric over the folds evaluated) is reported at
  step = fold index, and a fold-wise rule (``tuning.pruning``) may stop the trial: by default
  (``pruner="percentile"``) when that score is outside the best 40 % of the completed trials'
  scores after the same fold, from the first fold on; ``pruner="median"`` when it is worse than
  their median, from the second fold on (``FOLD_RULES``, chosen by measurement). With
  ``pruner="wilcoxon"`` the fold's own score is reported instead and Optuna's
  ``WilcoxonPruner`` tests it, fold by fold, against the best trial's (folds in a fixed order).
  ``net_sharpe`` (the annualised net Sharpe of the trial's out-of-fold forecasts traded as
  ``request.signal`` says) is known only once every fold is done: a study on it never prunes.
- Every complete trial's net Sharpe is reported, and the result carries the overfitting
  statistics of the best trial over the study (``tuning.overfitting``: PSR, DSR, PBO), also
  logged as ``overfitting.*`` metrics of the study's MLflow parent run.
- A trial that fails (a combination the plugin refuses, a fit error, an undefined metric)
  is FAIL with its message; the study goes on. Only a study without one complete trial
  is an error (422, with the first failure's message).
- A study stops at ``n_trials``, after ``patience`` finished trials without a better score,
  ``timeout_s`` after its first trial started, or when cancelled. The reason is a study
  attribute that every worker reads before starting a trial, so all of them stop.
- MLflow: a parent run per study (``tune:<plugin>``), a child run per trial; workers find
  the parent run id in the study's user attributes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
import warnings
from datetime import datetime, timezone
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from alphaforge.context import Context
from alphaforge.errors import Conflict, DependencyUnavailable, InvalidInput, NotFound
from alphaforge.plugins.models import ModelPlugin, ParamSpec, model_plugins
from alphaforge.schemas.models import DatasetSpec
from alphaforge.schemas.tuning import TRIALS_INLINE_MAX, Overfitting, TrialRead, TuneRequest, TuneResponse
from alphaforge.evaluation import cv, panel
from alphaforge.tuning import search_space
from alphaforge.tuning import overfitting, studies
from alphaforge.tuning.trial_records import (
    CONFIG, MLFLOW_RUNS, PARENT_RUN, RESULT, STARTED_AT, STOP_REASON, SURPLUS, mlflow_runs, trial_read,
)
from alphaforge.training import out_of_fold, trainer
from alphaforge.training import pooled
from alphaforge.training.assembly import check_dataset_spec, describe_range
from alphaforge.tasks.progress import Cancelled, Progress, no_progress
from alphaforge.tracking import StudyRun, TrialRun

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

Direction = Literal["minimize", "maximize"]

#: metric name -> (per-fold key, default direction); the summary key is the name itself.
METRICS: dict[str, tuple[str, Direction]] = {
    "mean_mse": ("mse", "minimize"),
    "mean_mae": ("mae", "minimize"),
    "directional_accuracy": ("directional_accuracy", "maximize"),
    "mean_ic": ("ic", "maximize"),
    "mean_rank_ic": ("rank_ic", "maximize"),
    # Cross-sectional (panels only): per fold over its test dates, then averaged over folds.
    "mean_cs_ic": ("cs_ic", "maximize"),
    "mean_cs_rank_ic": ("cs_rank_ic", "maximize"),
    "mean_cs_icir": ("cs_icir", "maximize"),
    "mean_cs_rank_icir": ("cs_rank_icir", "maximize"),
    # From the trial's out-of-fold forecasts as a whole (after its last fold): no per-fold key.
    "net_sharpe": ("net_sharpe", "maximize"),
}
#: Metrics computed from a trial's forecasts once all its folds are done (never pruned).
FORECAST_METRICS = frozenset({"net_sharpe"})
#: Metrics that rank an AutoML leaderboard only (metric -> default direction).
LEADERBOARD_METRICS: dict[str, Direction] = {"deflated_sharpe": "maximize"}
#: The seed's name for directional accuracy (upstream's summary key); ``icir`` is the
#: cross-sectional rank ICIR (``mean_rank_ic`` stays the pooled rank IC averaged over folds).
ALIASES = {"mean_directional_accuracy": "directional_accuracy", "icir": "mean_cs_rank_icir"}

#: Fold-wise pruning (``tuning.pruning.FoldMedianPruner``) starts once this many trials completed.
PRUNER_STARTUP_TRIALS = 5
#: The fold-wise rules: request's pruner -> (the share in % of the completed trials' scores after
#: the same fold, counted from the best, that a trial's score so far must be within to go on;
#: the first fold index after which it may be stopped). ``percentile``, the default, was chosen
#: by bench/tuning.py's pruning section (ml.lightgbm, 30 trials, 5 folds, seeds 0-4): 0.65x the
#: wall time of no pruning (median over the seeds; 488 of 750 folds run) with the exact best of
#: no pruning in every seed; ``median`` (the default before) 0.77x, 615 folds, best exact 5/5;
#: ``wilcoxon`` 0.80x, 580 folds, best exact 2/5. A stricter share from the second fold on
#: (25 %) ran as few folds but lost the best in 2 of 5 seeds: the trials it pruned steered TPE
#: away from the best point.
FOLD_RULES: dict[str, tuple[float, int]] = {"percentile": (40.0, 0), "median": (50.0, 1)}
#: Optuna's WilcoxonPruner: a one-sided paired test of the trial's per-fold scores against the
#: best trial's on the same folds. Over n folds its smallest p-value is 2**-n (every fold
#: worse), so with 0.1 a 5-fold trial could be pruned only after its 4th fold; 0.15 allows the
#: 3rd (0.125), chosen by bench/tuning.py's pruning section (see the README's figures).
WILCOXON_P_THRESHOLD = 0.15
WILCOXON_STARTUP_STEPS = 2
#: Seconds between two reads of a study's stop reason by a worker running its trials (the
#: other workers' cancel, early stopping or timeout is seen within this delay).
STOP_READ_S = 0.5
#: Seconds the MLflow thread gathers ended trials before writing their child runs together.
MLFLOW_BATCH_S = 0.25



@dataclass(frozen=True)
class Objective:
    metric: str  # the summary key, e.g. "mean_mse"
    fold_metric: str  # the per-fold key, e.g. "mse"
    direction: Direction

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` is strictly better than ``b``."""
        return a < b if self.direction == "minimize" else a > b

    def sort_key(self, score: float) -> float:
        return score if self.direction == "minimize" else -score

    @property
    def from_forecasts(self) -> bool:
        """Whether the score comes from the trial's forecasts after its last fold (no pruning)."""
        return self.metric in FORECAST_METRICS

    @property
    def cross_sectional(self) -> bool:
        """Whether it ranks symbols within a date (defined on panels only)."""
        return self.fold_metric.startswith("cs_")


def check_objective_fits(objective: Objective, dataset: DatasetSpec) -> None:
    """422 for a cross-sectional metric on one series: it has one symbol per date."""
    if objective.cross_sectional and not dataset.is_panel:
        raise InvalidInput(
            f"{objective.metric} is cross-sectional (it ranks symbols within each date): it needs a panel, "
            "so send dataset.universe or dataset.symbols instead of dataset.symbol",
            field="metric",
        )


def resolve_objective(metric: str, direction: Direction | None = None) -> Objective:
    """The metric's summary and fold keys; its direction unless one is given (422 on an unknown metric)."""
    name = ALIASES.get(metric, metric)
    if name in LEADERBOARD_METRICS:
        raise InvalidInput(
            f"{name} ranks an AutoML leaderboard (it needs every trial evaluated): a study cannot optimise it; "
            "tune on net_sharpe instead (its best trial's deflated Sharpe is in the response's overfitting block)",
            field="metric",
        )
    if name not in METRICS:
        valid = ", ".join([*METRICS, *ALIASES])
        raise InvalidInput(f"unknown metric {metric!r}; valid: {valid}", field="metric")
    fold_metric, default = METRICS[name]
    return Objective(metric=name, fold_metric=fold_metric, direction=direction or default)


@dataclass(frozen=True)
class _Plan:
    """A request resolved: the plugin, the space to sample, the objective."""

    cls: type[ModelPlugin]
    space: dict[str, ParamSpec]
    objective: Objective
    fixed: dict[str, Any] = field(default_factory=dict)


def resolve_plan(request: TuneRequest) -> _Plan:
    """The plugin, the checked space and the objective of a request (422s, no I/O)."""
    cls = model_plugins.get(request.plugin_key)
    objective = resolve_objective(request.metric, request.direction)
    space = search_space.resolve_space(cls, request.param_space, request.fixed_params)
    return _Plan(cls=cls, space=space, objective=objective, fixed=dict(request.fixed_params))


# -- the service API -------------------------------------------------------------------
def check_tune_request(ctx: Context, request: TuneRequest) -> None:
    """Every refusal that needs no computing (shared by the sync and async paths)."""
    plan = resolve_plan(request)
    cls, horizon = plan.cls, request.dataset.target_horizon
    cls.from_parameters(plan.fixed)  # fixed_params with the defaults for the rest: 422 if refused
    try:
        probe = cls.from_parameters({**plan.fixed, **search_space.lowest(plan.space)})
    except InvalidInput:
        probe = None  # a cross-field rule refuses this corner; the trials that hit it fail alone
    if probe is not None:
        probe.check_target_horizon(horizon)
    check_objective_fits(plan.objective, request.dataset)
    if request.dataset.is_panel:
        pooled.check_pooling(cls.from_parameters(plan.fixed))
        pooled.check_panel_spec(ctx, request.dataset)
    else:
        check_dataset_spec(ctx, request.dataset)
    from alphaforge.tuning import warm_start

    warm_start.resolve(ctx, request, plan.space)


def create_study(ctx: Context, request: TuneRequest, study_name: str) -> str:
    """Create the study (direction from the request), enqueue a warm start's trials, create its
    MLflow parent run; return its name."""
    import optuna

    from alphaforge.tuning import warm_start

    plan = resolve_plan(request)
    warm = warm_start.resolve(ctx, request, plan.space)
    storage = _storage(ctx)
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, direction=plan.objective.direction)
    except optuna.exceptions.DuplicatedStudyError:
        raise Conflict(f"a tuning study named {study_name!r} exists already") from None
    try:
        study.set_user_attr(CONFIG, {
            "request": request.model_dump(mode="json"), "created_at": datetime.now(timezone.utc).isoformat(),
            "warm_start_from": warm and warm.study_id, "warm_start_trials": [n for n, _ in warm.trials] if warm else [],
        })
        for number, values in warm.trials if warm else []:
            study.enqueue_trial(values, user_attrs={"warm_start": {"study_id": warm.study_id, "trial": number}})  # type: ignore[union-attr]
        run_id = ctx.tracker.start_study(_study_run(request, plan, study_name))
        study.set_user_attr(PARENT_RUN, run_id)
    except BaseException:
        optuna.delete_study(study_name=study_name, storage=storage)
        raise
    return study_name


def run_trials(ctx: Context, request: TuneRequest, study_name: str, progress: Progress = no_progress) -> None:
    """Run trials of the study until it is done (see the module docstring); safe in parallel.

    ``progress`` is called after each trial; when it raises ``Cancelled`` the study is marked
    cancelled (every worker stops before its next trial) and the exception propagates.
    """
    _load(ctx, request, study_name)  # 404 before the data is assembled
    progress(0.0, "assembling the training data")
    data = trainer.assemble(ctx, request.dataset)
    run_trials_on(ctx, request, study_name, data, trainer.cv_folds(request.cv, data), progress)


def tune_result(ctx: Context, request: TuneRequest, study_name: str) -> TuneResponse:
    """Read the study back, finish its MLflow parent run; 422 when no trial completed."""
    return study_result(ctx, request, study_name)[0]


def study_result(ctx: Context, request: TuneRequest, study_name: str) -> tuple[TuneResponse, dict[int, pd.Series | None]]:
    """``tune_result`` and the per-period net returns of each complete trial (by number; None
    when its forecasts cannot be traded), for AutoML's statistics across studies."""
    plan = resolve_plan(request)
    study = _load(ctx, request, study_name)
    attrs = study.user_attrs
    parent = attrs.get(PARENT_RUN)
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS)]
    runs = mlflow_runs(attrs)
    reads = [_trial_read(t, plan.fixed, runs) for t in trials]
    counts = {s: sum(1 for r in reads if r.state == s) for s in ("COMPLETE", "PRUNED", "FAIL")}
    stop_reason = attrs.get(STOP_REASON, "n_trials")
    totals = {"n_trials": sum(counts.values()), "n_complete": counts["COMPLETE"], "n_pruned": counts["PRUNED"],
              "n_failed": counts["FAIL"]}
    direction: Direction = "maximize" if study.direction.name == "MAXIMIZE" else "minimize"
    objective = Objective(plan.objective.metric, plan.objective.fold_metric, direction)
    complete = [r for r in reads if r.state == "COMPLETE" and r.score is not None]
    if not complete:
        if parent:
            ctx.tracker.finish_study(parent, totals, {"stop_reason": stop_reason}, status="FAILED")
        errors = [r.error for r in reads if r.error]
        why = f"; the first failure: {errors[0]}" if errors else ""
        raise InvalidInput(
            f"no trial of {request.plugin_key} completed ({counts['FAIL']} failed, {counts['PRUNED']} pruned){why}"
        )
    best = min(complete, key=lambda r: (objective.sort_key(r.score), r.number))  # type: ignore[arg-type]
    horizon = request.dataset.target_horizon
    returns = {r.number: overfitting.read_returns(ctx, r.out_of_fold_uri, horizon, request.signal) for r in complete}
    block = Overfitting(
        best_trial=best.number,
        **overfitting.summarize(returns, best.number, horizon=horizon, n_blocks=request.signal.n_blocks),
    )
    top = sorted(complete, key=lambda r: (objective.sort_key(r.score), r.number))[: request.top_k]  # type: ignore[arg-type]
    response = TuneResponse(
        study_id=study._study_id,
        study_name=study_name,
        plugin_key=plan.cls.key,
        metric=objective.metric,
        direction=direction,
        best_params=best.params,
        best_score=best.score,  # type: ignore[arg-type]
        best_trial=best.number,
        best_metrics=best.metrics or {},
        stop_reason=stop_reason,
        top_trials=top,
        trials=reads[:TRIALS_INLINE_MAX],
        trials_truncated=len(reads) > TRIALS_INLINE_MAX,
        mlflow_parent_run_id=parent,
        warm_start_from=request.warm_start_from,
        overfitting=block,
        **totals,
    )
    if parent:
        notes = {f"overfitting.{k}": v for k, v in (("pbo_note", block.pbo_note), ("note", block.note)) if v}
        ctx.tracker.finish_study(
            parent,
            {"best_score": best.score, **totals, **overfitting.mlflow_metrics(block.model_dump())},
            {"best_trial": str(best.number), "best_params": json.dumps(best.params, sort_keys=True),
             "stop_reason": stop_reason, **notes},
        )
    return response, returns


def abort_study(ctx: Context, study_name: str, status: Literal["FAILED", "KILLED"] = "FAILED") -> None:
    """Best effort after a failure (FAILED) or a cancellation (KILLED): end the MLflow parent run;
    a cancellation also marks the study stopped, so no worker starts another trial."""
    import optuna

    try:
        study = optuna.load_study(study_name=study_name, storage=_storage(ctx))
        if status == "KILLED" and STOP_REASON not in study.user_attrs:
            study.set_user_attr(STOP_REASON, "cancelled")
        parent = study.user_attrs.get(PARENT_RUN)
        if parent:
            ctx.tracker.finish_study(parent, {}, {"stop_reason": "cancelled" if status == "KILLED" else "error"}, status)
    except Exception:  # noqa: BLE001 - the original error is the one to report
        logging.getLogger(__name__).warning("could not close tuning study %s", study_name, exc_info=True)


def tune(ctx: Context, request: TuneRequest, progress: Progress = no_progress) -> TuneResponse:
    """The synchronous path: check, create the study, run every trial here, read the result."""
    check_tune_request(ctx, request)
    study_name = create_study(ctx, request, f"tune-{uuid.uuid4().hex}")
    try:
        run_trials(ctx, request, study_name, progress)
    except BaseException as exc:
        abort_study(ctx, study_name, "KILLED" if isinstance(exc, Cancelled) else "FAILED")
        raise
    return tune_result(ctx, request, study_name)


# -- trials ----------------------------------------------------------------------------
def run_trials_on(
    ctx: Context, request: TuneRequest, study_name: str, data: trainer.AnyData, folds: trainer.AnyFolds,
    progress: Progress = no_progress,
) -> None:
    """``run_trials`` on data already assembled (AutoML assembles once for every candidate)."""
    plan = resolve_plan(request)
    study = _load(ctx, request, study_name, running=True)
    attrs = study.user_attrs
    parent = attrs.get(PARENT_RUN)
    if STARTED_AT not in attrs:
        study.set_user_attr(STARTED_AT, time.time())
        attrs = study.user_attrs
    started = float(attrs.get(STARTED_AT, time.time()))
    try:
        with _TrialLogger(ctx, study, plan, parent) as mlflow_log:
            _trial_loop(ctx, request, study, plan, data, folds, progress, started, mlflow_log)
    finally:
        study._storage.close()  # the connection it held while the trials ran


def _trial_loop(
    ctx: Context, request: TuneRequest, study: optuna.Study, plan: _Plan, data: trainer.AnyData,
    folds: trainer.AnyFolds, progress: Progress, started: float, mlflow_log: _TrialLogger,
) -> None:
    from optuna.trial import TrialState

    study_name = study.study_name
    recorded: str | None = None  # the study's stop reason, as last read
    read_at = -np.inf
    while True:
        mlflow_log.check()  # an earlier trial's MLflow run failed: stop as that trial would have
        trials = study.get_trials(deepcopy=False)
        if recorded is None and time.monotonic() - read_at >= STOP_READ_S:
            # Another worker's stop (cancel, early stopping, timeout) is read at most every
            # STOP_READ_S: a query per trial cost more than a cheap trial's model.
            read_at = time.monotonic()
            recorded = study.user_attrs.get(STOP_REASON)
        reason = _stop_reason(study, trials, request, plan.objective, started, recorded)
        if reason == "cancelled":  # by another worker's task: this shard was cancelled too
            raise Cancelled()
        if reason is not None:
            break
        trial = study.ask()
        if trial.number >= request.n_trials:  # another worker took the last slot meanwhile
            trial.set_user_attr(SURPLUS, True)
            study.tell(trial, state=TrialState.FAIL)
            break
        try:
            outcome = _evaluate(ctx, trial, plan, request, data, folds, study_name)
            mlflow_log.submit(trial.number, outcome)
            trial.set_user_attr(RESULT, outcome.attrs())
        except BaseException as exc:
            trial.set_user_attr(RESULT, {"error": f"interrupted: {type(exc).__name__}: {exc}"[:2000]})
            study.tell(trial, state=TrialState.FAIL)
            raise
        if outcome.state == "COMPLETE":
            study.tell(trial, outcome.score)
        else:
            study.tell(trial, state=TrialState[outcome.state])
        finished = 1 + sum(1 for t in trials if t.state.is_finished() and not t.user_attrs.get(SURPLUS))
        try:
            progress(
                min(1.0, finished / request.n_trials),
                f"trial {trial.number} {outcome.state.lower()}"
                + (f" ({plan.objective.metric} {outcome.score:.6g})" if outcome.score is not None else "")
                + f"; about {min(finished, request.n_trials)} of {request.n_trials} trials finished",
            )
        except Cancelled:
            study.set_user_attr(STOP_REASON, "cancelled")
            raise


class _TrialLogger:
    """Logs each trial's MLflow child run on a background thread, while the next trials run.

    The thread writes whatever trials have ended since its last write, at most every
    ``MLFLOW_BATCH_S``, in one call (``Tracker.log_trials``: one transaction on a database
    store). Through MLflow's API a child run cost three transactions of MLflow's ORM, more CPU
    than a cheap trial, and on two cores the thread's work is the next trials' wait. A run id
    cannot be in the trial's result attribute (written before the trial is told), so the ids are
    written once, when the loop ends, as the study attribute ``mlflow_runs:<uuid>`` ({trial
    number: run id}; one per ``run_trials`` call, so workers never overwrite each other's) and
    merged by the readers (``mlflow_runs``).
    """

    def __init__(self, ctx: Context, study: optuna.Study, plan: _Plan, parent: str | None) -> None:
        import queue
        import threading

        self.ctx, self.study, self.plan, self.parent = ctx, study, plan, parent
        self.ids: dict[int, str] = {}
        self.error: BaseException | None = None
        self._queue: queue.SimpleQueue[tuple[int, TrialRun] | None] = queue.SimpleQueue()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._write, name="mlflow-trials", daemon=True) if parent else None
        if self._thread is not None:
            self._thread.start()

    def submit(self, number: int, outcome: _Outcome) -> None:
        """Log trial ``number``'s child run, after the ones before it."""
        if self._thread is not None and self.parent is not None:
            self._queue.put((number, _trial_run(self.parent, self.study.study_name, self.plan, number, outcome)))

    def check(self) -> None:
        """Raise the error of a child run that failed (MLflow unavailable: a 503)."""
        if self.error is not None:
            raise self.error

    def _write(self) -> None:
        import queue

        done = False
        while not done:
            first = self._queue.get()
            batch = [] if first is None else [first]
            done = first is None
            if not done:
                self._closing.wait(MLFLOW_BATCH_S)  # let the trials of the next moments join this write
            while not done:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    done = True
                else:
                    batch.append(item)
            if batch and self.error is None:
                try:
                    ids = self.ctx.tracker.log_trials([run for _, run in batch])
                except BaseException as exc:  # noqa: BLE001 - raised in the trial loop (check)
                    self.error = exc
                else:
                    self.ids.update({number: run_id for (number, _), run_id in zip(batch, ids)})

    def __enter__(self) -> _TrialLogger:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._closing.set()
        self._thread.join()
        if self.ids:
            self.study.set_user_attr(f"{MLFLOW_RUNS}:{uuid.uuid4().hex}", {str(n): r for n, r in sorted(self.ids.items())})
        if error is None:
            self.check()


@dataclass
class _Outcome:
    state: Literal["COMPLETE", "PRUNED", "FAIL"]
    params: dict[str, Any]
    score: float | None = None
    folds: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    error: str | None = None
    out_of_fold_uri: str | None = None
    net_sharpe: float | None = None

    def attrs(self) -> dict[str, Any]:
        return {"params": self.params, "folds": self.folds, "summary": self.summary, "error": self.error,
                "out_of_fold_uri": self.out_of_fold_uri,
                "net_sharpe": self.net_sharpe}


def _evaluate(
    ctx: Context, trial: optuna.Trial, plan: _Plan, request: TuneRequest, data: trainer.AnyData,
    folds: trainer.AnyFolds, study_name: str,
) -> _Outcome:
    """Sample, validate, cross-validate fold by fold with pruning; a complete trial's
    test-fold forecasts are stored (one object). Never raises for a bad trial."""
    import optuna

    params = {**search_space.sample(trial, plan.space), **plan.fixed}
    outcome = _Outcome(state="FAIL", params=params)
    try:
        plugin = plan.cls.from_parameters(params, seed=request.seed)
        plugin.check_target_horizon(request.dataset.target_horizon)
        if isinstance(data, pooled.PanelTrainingData):
            pooled.check_pooling(plugin)
        forecasts = []
        fold_wise = not plan.objective.from_forecasts
        wilcoxon = request.pruner == "wilcoxon"
        for fold in folds:
            scores, predicted = _fold_scores(plugin, data, fold, request.seed)
            outcome.folds.append(scores)
            forecasts.append(predicted)
            if not fold_wise:
                continue
            so_far = trainer.summarize_folds(data, outcome.folds)[plan.objective.metric]
            if so_far is not None:
                outcome.score = float(so_far)
            # Wilcoxon pairs each fold's own score with the best trial's; the median rule
            # compares the score so far (see tuning.pruning).
            reported = scores.get(plan.objective.fold_metric) if wilcoxon else outcome.score
            if request.pruner == "none":
                continue  # nothing reads the reports: no write per fold (the folds are in the result)
            if reported is not None and np.isfinite(reported):
                trial.report(float(reported), fold.index)  # the last fold's too: the study's record
            if fold.index < len(folds) - 1 and trial.should_prune():
                if wilcoxon and outcome.score is not None:
                    # Optuna gives a pruned trial its last reported value: make that the score so
                    # far, at a step past the folds (never paired: only complete trials are "best").
                    trial.report(outcome.score, len(folds))
                raise optuna.TrialPruned()
        outcome.summary = trainer.summarize_folds(data, outcome.folds)
        if fold_wise and outcome.summary[plan.objective.metric] is None:
            outcome.score = None
            raise InvalidInput(
                f"{plan.objective.metric} is undefined on every fold (e.g. constant predictions have no correlation)"
            )
        frame = trainer.out_of_fold_frame(data, request.dataset.symbol, [np.asarray(f.test) for f in folds], forecasts)
        outcome.net_sharpe = overfitting.net_sharpe(frame, request.dataset.target_horizon, request.signal)
        if not fold_wise:
            if outcome.net_sharpe is None:
                raise InvalidInput(
                    "net_sharpe is undefined for this trial's forecasts (its net returns have zero variance, e.g. a "
                    "constant position, or there are fewer than 2 rebalance periods)"
                )
            outcome.score = outcome.net_sharpe
        outcome.out_of_fold_uri = out_of_fold.store(ctx, f"studies/{study_name}", frame)
        outcome.state = "COMPLETE"
    except optuna.TrialPruned:
        outcome.state = "PRUNED"
    except DependencyUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - a failing trial must not end the study
        message = exc.message if isinstance(exc, InvalidInput) else f"{type(exc).__name__}: {exc}"
        outcome.state, outcome.error, outcome.score = "FAIL", message[:2000], None
    return outcome


def _fold_scores(
    plugin: ModelPlugin, data: trainer.AnyData, fold: cv.Fold | panel.PanelFold, seed: int
) -> tuple[dict[str, Any], np.ndarray]:
    """The fold scored as training scores it, its spans as ISO strings (a trial's folds are
    stored as JSON in the study), and its forecast."""
    scores, predicted = trainer.score_fold(plugin, data, fold, seed)
    return {k: v.isoformat() if isinstance(v, pd.Timestamp) else v for k, v in scores.items()}, predicted


def _stop_reason(
    study: optuna.Study, trials: list[FrozenTrial], request: TuneRequest, objective: Objective, started: float,
    recorded: str | None,
) -> str | None:
    """Why no further trial should start (recorded on the study for the other workers), or None;
    ``recorded``: the study's stop reason attribute as read."""
    if recorded:
        return str(recorded)
    if sum(1 for t in trials if t.state.name != "WAITING") >= request.n_trials:  # enqueued ones are still to run
        return "n_trials"
    if request.patience is not None:
        since = _trials_since_best(trials, objective)
        if since is not None and since >= request.patience:
            return _record_stop(study, "early_stopping")
    if request.timeout_s is not None and time.time() - started >= request.timeout_s:
        return _record_stop(study, "timeout")
    return None


def _record_stop(study: optuna.Study, reason: str) -> str:
    """Record why the study stops, unless another worker did first (its reason stands)."""
    earlier = study.user_attrs.get(STOP_REASON)
    if earlier:
        return str(earlier)
    study.set_user_attr(STOP_REASON, reason)
    return reason


def _trials_since_best(trials: list[FrozenTrial], objective: Objective) -> int | None:
    """Finished trials numbered after the one that first reached the best score."""
    from optuna.trial import TrialState

    finished = sorted(
        (t for t in trials if t.state.is_finished() and not t.user_attrs.get(SURPLUS)), key=lambda t: t.number
    )
    best: tuple[float, int] | None = None
    for t in finished:
        if t.state == TrialState.COMPLETE and t.value is not None and (best is None or objective.better(t.value, best[0])):
            best = (t.value, t.number)
    if best is None:
        return None
    return sum(1 for t in finished if t.number > best[1])


def _trial_read(t: FrozenTrial, fixed: dict[str, Any], runs: dict[int, str]) -> TrialRead:
    duration = t.duration.total_seconds() if t.duration is not None else None
    return trial_read(t.number, t.state.name, t.value, duration, t.user_attrs.get(RESULT), t.params, fixed, runs)


# -- Optuna and MLflow plumbing ----------------------------------------------------------
def _storage(ctx: Context) -> optuna.storages.RDBStorage:
    return studies.storage(ctx.settings.resolved_optuna_storage_url)


def _load(ctx: Context, request: TuneRequest, study_name: str, running: bool = False) -> optuna.Study:
    """The study with the request's sampler and pruner; ``running``: on a storage of its own
    that writes each trial of this process once, when it ends (``studies.trial_storage``)."""
    import optuna

    from alphaforge.tuning.pruning import FoldMedianPruner

    pruner: optuna.pruners.BasePruner
    if request.pruner == "none" or ALIASES.get(request.metric, request.metric) in FORECAST_METRICS:
        pruner = optuna.pruners.NopPruner()
    elif request.pruner == "wilcoxon":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            pruner = optuna.pruners.WilcoxonPruner(
                p_threshold=WILCOXON_P_THRESHOLD, n_startup_steps=WILCOXON_STARTUP_STEPS
            )
    else:
        share, first_fold = FOLD_RULES[request.pruner]
        pruner = FoldMedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=first_fold, percentile=share)
    try:
        storage = studies.trial_storage(ctx.settings.resolved_optuna_storage_url) if running else _storage(ctx)
        return optuna.load_study(
            study_name=study_name, storage=storage, sampler=_trial_seeded_tpe(request.seed), pruner=pruner
        )
    except KeyError:
        raise NotFound(f"no tuning study named {study_name!r}") from None


def _trial_seeded_tpe(seed: int) -> optuna.samplers.BaseSampler:
    """TPE whose randomness comes from ``(seed, trial number)``, whichever process runs the trial."""
    import optuna

    def seeded(number: int, search_space: Any = None) -> optuna.samplers.TPESampler:
        digest = hashlib.sha256(f"alphaforge.tune:{seed}:{number}".encode()).digest()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            tpe = optuna.samplers.TPESampler(seed=int.from_bytes(digest[:4], "big"), constant_liar=True)
        if search_space is not None:
            # The study's intersection search space, kept across trials as one TPESampler keeps
            # it (it reads only the trials finished since): a fresh one per trial re-read them all.
            tpe._search_space = search_space
        return tpe

    class TrialSeededTPE(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self._tpe = seeded(0)

        def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
            self._tpe = seeded(trial.number, self._tpe._search_space)
            self._tpe.before_trial(study, trial)

        def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
            return self._tpe.infer_relative_search_space(study, trial)

        def sample_relative(self, study: optuna.Study, trial: FrozenTrial, space: dict[str, Any]) -> dict[str, Any]:
            return self._tpe.sample_relative(study, trial, space)

        def sample_independent(self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: Any) -> Any:
            return self._tpe.sample_independent(study, trial, name, distribution)

        def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: Any, values: Any) -> None:
            self._tpe.after_trial(study, trial, state, values)

    return TrialSeededTPE()


def _study_run(request: TuneRequest, plan: _Plan, study_name: str) -> StudyRun:
    space = {k: v.model_dump(exclude_none=True) for k, v in plan.space.items()}
    return StudyRun(
        run_name=f"tune:{plan.cls.key}",
        params={
            "plugin_key": plan.cls.key,
            "metric": plan.objective.metric,
            "direction": plan.objective.direction,
            "n_trials": request.n_trials,
            "space": json.dumps(space, sort_keys=True),
            "fixed_params": json.dumps(plan.fixed, sort_keys=True, default=str),
            "seed": request.seed,
            "pruner": request.pruner,
            "warm_start_from": request.warm_start_from,
            **{f"signal.{k}": v for k, v in request.signal.model_dump(mode="json").items()},
            "patience": request.patience,
            "timeout_s": request.timeout_s,
            **{f"cv.{k}": v for k, v in request.cv.model_dump(mode="json").items()},
            **{f"dataset.{k}": v for k, v in describe_range(request.dataset).items() if v is not None},
            "dataset.feature_ids": ",".join(str(f) for f in request.dataset.feature_ids),
        },
        tags={"study_name": study_name, "plugin_key": plan.cls.key,
              **{k: str(v) for k, v in describe_range(request.dataset).items() if k in ("symbol", "universe") and v}},
    )


def _trial_run(parent: str, study_name: str, plan: _Plan, number: int, outcome: _Outcome) -> TrialRun:
    folds = [{k: v for k, v in f.items() if isinstance(v, (int, float)) and k != "fold"} for f in outcome.folds]
    summary = {f"cv_{k}": v for k, v in (outcome.summary or {}).items()}
    tags = {"study_name": study_name, "trial_number": str(number), "trial_state": outcome.state,
            "plugin_key": plan.cls.key}
    if outcome.error:
        tags["error"] = outcome.error
    return TrialRun(
        parent_run_id=parent,
        run_name=f"{study_name}:trial-{number}",
        params=outcome.params,
        fold_metrics=folds,
        metrics={"score": outcome.score, "net_sharpe": outcome.net_sharpe, **summary},
        tags=tags,
        failed=outcome.state == "FAIL",
    )
