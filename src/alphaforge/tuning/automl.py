"""AutoML: cross-validate (optionally tune) several plugins on one dataset and rank them.

The system alphaforge replaces failed the whole request on one bad candidate, answered a 500
for an unknown key or metric, and never tuned. Here: unknown keys, invalid parameters and
unknown metrics are refused before computing (422); the dataset is assembled once and
every candidate uses the same leakage-safe folds as training; a candidate that fails while
computing gets a row with its error (ranked last) instead of failing the request; with
``n_trials`` each candidate is first tuned over its default space (its given parameters
stay fixed) through the tuning service; ``create_model`` saves and trains the winner.

Overfitting (issue 15, ``tuning.overfitting``): every row's forecasts are traded as
``request.signal`` says, giving its per-period net returns and ``net_sharpe`` (annualised). N is
every trial the run evaluated with a defined net Sharpe: each tuned candidate's complete trials,
plus one per untuned candidate; V the sample variance (ddof 1) of their per-period net Sharpe
ratios. Each row's ``deflated_sharpe`` is its PSR against SR0(N, V) (the same benchmark for every
row, so ranking by it ranks by PSR against SR0); ``metric: "deflated_sharpe"`` ranks the rows by
it (maximised by default; the candidates are then tuned on ``net_sharpe``, and a row whose DSR
is undefined becomes an error row). The response's ``overfitting`` block is the rank-1 row's
statistics given N and V, and the PBO over the matrix of the rows' returns.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pandas as pd

from alphaforge.context import Context
from alphaforge.errors import DependencyUnavailable, InvalidInput
from alphaforge.plugins.models import model_plugins
from alphaforge.schemas.models import ModelCreate, TrainRequest, TrainResponse
from alphaforge.schemas.tuning import (
    AutoMLRequest, AutoMLResponse, CandidateError, LeaderboardRow, Overfitting, TuneRequest,
)
from alphaforge.training import definitions
from alphaforge.training import out_of_fold, trainer
from alphaforge.tuning import overfitting, tuner
from alphaforge.training import pooled
from alphaforge.training.assembly import check_dataset_spec
from alphaforge.tasks.progress import Cancelled, Progress, no_progress
from alphaforge.tracking import StudyRun


def check_automl_request(ctx: Context, request: AutoMLRequest) -> None:
    """Every refusal that needs no computing: metric, plugin keys, parameters, CV purge, features;
    on a panel, every candidate that cannot pool symbols (named together, in one 422)."""
    objective = resolve_objective(request)
    tuner.check_objective_fits(objective, request.dataset)
    horizon = request.dataset.target_horizon
    cannot_pool = []
    for key, params in request.candidates.items():
        plugin = model_plugins.get(key).from_parameters(params, seed=request.seed)
        plugin.check_target_horizon(horizon)
        candidate = _tune_request(request, key, params)
        if candidate is not None:
            tuner.resolve_plan(candidate)  # the tuned space with these fixed parameters
        if request.dataset.is_panel and not plugin.pools_symbols():
            cannot_pool.append(key)
    if cannot_pool:
        raise InvalidInput(
            f"these candidates cannot be trained on a panel: {', '.join(cannot_pool)}. {pooled.CANNOT_POOL[0].upper()}"
            f"{pooled.CANNOT_POOL[1:]}: drop them, or run AutoML per symbol (dataset.symbol); models that pool "
            f"symbols: {pooled.POOLING_MODELS}",
            field="candidates",
        )
    if request.dataset.is_panel:
        pooled.check_panel_spec(ctx, request.dataset)
    else:
        check_dataset_spec(ctx, request.dataset)


def resolve_objective(request: AutoMLRequest) -> tuner.Objective:
    """A tuning metric, or a leaderboard-only one (``deflated_sharpe``)."""
    name = tuner.ALIASES.get(request.metric, request.metric)
    if name in tuner.LEADERBOARD_METRICS:
        return tuner.Objective(name, name, request.direction or tuner.LEADERBOARD_METRICS[name])
    return tuner.resolve_objective(request.metric, request.direction)


def automl(ctx: Context, request: AutoMLRequest, progress: Progress = no_progress) -> AutoMLResponse:
    check_automl_request(ctx, request)
    objective = resolve_objective(request)
    progress(0.0, "assembling the training data")
    data = trainer.assemble(ctx, request.dataset)
    folds = trainer.cv_folds(request.cv, data)
    share = (0.9 if request.create_model else 1.0) / len(request.candidates)
    evaluated: list[tuple[LeaderboardRow, pd.Series | None]] = []
    sharpes: list[float | None] = []  # per-period net Sharpe of every trial evaluated
    for i, (key, params) in enumerate(request.candidates.items()):
        progress(i * share, f"candidate {i + 1} of {len(request.candidates)}: {key}")
        evaluated.append(_evaluate(ctx, request, key, params, data, folds, _scaled(progress, i * share, share), sharpes))

    horizon, n_blocks = request.dataset.target_horizon, request.signal.n_blocks
    n_trials, variance = overfitting.population(sharpes)
    rows, returns_of = [], {}
    for row, returns in evaluated:
        if row.error is None:
            dsr = overfitting.deflated_sharpe(returns, n_trials, variance)
            update: dict[str, Any] = {"deflated_sharpe": dsr}
            if objective.metric == "deflated_sharpe":
                update["score"] = dsr
                if dsr is None:
                    update["error"] = CandidateError(
                        type="InvalidInput",
                        message="deflated_sharpe is undefined for this candidate's forecasts (fewer than 3 rebalance "
                        "periods, or net returns of zero variance)",
                    )
            row = row.model_copy(update=update)
        rows.append(row)
        returns_of[id(row)] = returns

    scored = sorted((r for r in rows if r.error is None), key=lambda r: objective.sort_key(r.score))  # stable
    ranked = [*scored, *(r for r in rows if r.error)]
    leaderboard = [r.model_copy(update={"rank": n}) for n, r in enumerate(ranked, 1)]
    best = leaderboard[0] if scored else None
    block = Overfitting(
        best_plugin_key=None if best is None else best.plugin_key,
        **overfitting.summarize(
            {n: returns_of[id(r)] for n, r in enumerate(ranked) if r.error is None}, 0 if best else None,
            horizon=horizon, n_blocks=n_blocks, sharpes=sharpes,
        ),
    )
    response = AutoMLResponse(metric=objective.metric, direction=objective.direction, leaderboard=leaderboard, best=best,
                              overfitting=block, mlflow_run_id=_log_leaderboard(ctx, request, objective, leaderboard, block))
    if request.create_model:
        if best is None:
            raise InvalidInput(
                f"every candidate failed, so there is no model to create; the first error: {rows[0].error.message}"  # type: ignore[union-attr]
            )
        progress(0.9, f"training the winner: {best.plugin_key}")
        response.model_id, response.trained = _create_and_train(ctx, request, best)
    progress(1.0, "done")
    return response


def _log_leaderboard(
    ctx: Context, request: AutoMLRequest, objective: tuner.Objective, leaderboard: list[LeaderboardRow],
    block: Overfitting,
) -> str:
    """The run's MLflow record: its configuration, each row's score and the winner's
    overfitting figures (``overfitting.*``), as a tuning study's parent run holds its own."""
    run_id = ctx.tracker.start_study(StudyRun(
        run_name=f"automl:{objective.metric}",
        params={"metric": objective.metric, "direction": objective.direction, "candidates": list(request.candidates),
                "n_trials": request.n_trials, "seed": request.seed, "signal": request.signal.model_dump(mode="json")},
        tags={"kind": "automl"},
    ))
    scores = {f"leaderboard.{r.rank}.{r.plugin_key}": r.score for r in leaderboard}
    notes = {f"overfitting.{k}": v for k, v in (("pbo_note", block.pbo_note), ("note", block.note)) if v}
    ctx.tracker.finish_study(
        run_id, {**scores, **overfitting.mlflow_metrics(block.model_dump())},
        {"best_plugin_key": block.best_plugin_key or "", **notes},
    )
    return run_id


def _evaluate(
    ctx: Context, request: AutoMLRequest, key: str, params: dict[str, Any], data: trainer.AnyData,
    folds: trainer.AnyFolds, progress: Progress, sharpes: list[float | None],
) -> tuple[LeaderboardRow, pd.Series | None]:
    """One candidate's row (tuned if asked and it has a space, then scored; its error if it
    fails) and its per-period net returns; the per-period net Sharpe of every trial it
    evaluated is appended to ``sharpes``. Under deflated_sharpe the score is set later."""
    objective = resolve_objective(request)
    horizon = request.dataset.target_horizon
    started = time.perf_counter()
    row: dict[str, Any] = {"rank": 0, "plugin_key": key, "params": params, "score": None, "metrics": None}
    returns: pd.Series | None = None
    try:
        candidate = _tune_request(request, key, params)
        if candidate is None:
            plugin = model_plugins.get(key).from_parameters(params, seed=request.seed)
            validation = trainer.cross_validate(plugin, data, folds, request.seed)
            summary = validation.metrics["summary"]
            frame = validation.out_of_fold(data, request.dataset.symbol)
            returns = overfitting.net_returns(frame, horizon, request.signal)
            sharpe = overfitting.sharpe_per_period(returns)
            sharpes.append(sharpe)
            net_sharpe = overfitting.annualised(sharpe, horizon)
            if objective.metric in ("net_sharpe", "deflated_sharpe"):
                if net_sharpe is None:
                    raise InvalidInput(f"{objective.metric} is undefined: the net returns of this candidate's forecasts "
                                       "have zero variance (e.g. a constant position) or too few periods")
                score = net_sharpe if objective.metric == "net_sharpe" else None
            elif summary[objective.metric] is None:
                raise InvalidInput(f"{objective.metric} is undefined on every fold (e.g. constant predictions)")
            else:
                score = summary[objective.metric]
            uri = out_of_fold.store(ctx, "automl", frame)
            row.update(score=score, metrics=summary, out_of_fold_uri=uri, net_sharpe=net_sharpe)
        else:
            study_name = tuner.create_study(ctx, candidate, f"automl-{uuid.uuid4().hex}")
            row["study_name"] = study_name
            try:
                tuner.run_trials_on(ctx, candidate, study_name, data, folds, progress)
            except BaseException as exc:
                tuner.abort_study(ctx, study_name, "KILLED" if isinstance(exc, Cancelled) else "FAILED")
                raise
            result, by_trial = tuner.study_result(ctx, candidate, study_name)
            sharpes.extend(overfitting.sharpe_per_period(r) for r in by_trial.values())
            best = next((t for t in result.trials if t.number == result.best_trial), None)
            returns = by_trial.get(result.best_trial)
            row.update(params=result.best_params, score=result.best_score, metrics=result.best_metrics,
                       n_trials=result.n_trials, out_of_fold_uri=None if best is None else best.out_of_fold_uri,
                       net_sharpe=None if best is None else best.net_sharpe)
            if objective.metric == "deflated_sharpe":
                row["score"] = None  # set once every candidate is evaluated
    except (Cancelled, DependencyUnavailable):
        raise
    except Exception as exc:  # noqa: BLE001 - one failing candidate must not fail the leaderboard
        message = exc.message if isinstance(exc, InvalidInput) else str(exc)
        row["error"] = CandidateError(type=type(exc).__name__, message=message[:2000] or type(exc).__name__)
        row.update(score=None, metrics=None, net_sharpe=None)
        returns = None
    return LeaderboardRow(fit_time_s=time.perf_counter() - started, **row), returns


def _tune_request(request: AutoMLRequest, key: str, params: dict[str, Any]) -> TuneRequest | None:
    """The candidate's study: its default space minus its given parameters (None: nothing to tune)."""
    if request.n_trials == 0:
        return None
    space = {n: s for n, s in model_plugins.get(key).search_space.items() if n not in params}
    if not space:
        return None
    leaderboard_only = tuner.ALIASES.get(request.metric, request.metric) in tuner.LEADERBOARD_METRICS
    return TuneRequest(
        plugin_key=key, dataset=request.dataset, param_space=space, fixed_params=params, n_trials=request.n_trials,
        cv=request.cv, metric="net_sharpe" if leaderboard_only else request.metric, direction=request.direction,
        seed=request.seed, signal=request.signal,
    )


def _create_and_train(ctx: Context, request: AutoMLRequest, best: LeaderboardRow) -> tuple[uuid.UUID, TrainResponse]:
    cls = model_plugins.get(best.plugin_key)
    model = definitions.create_model(
        ctx,
        ModelCreate(
            name=request.model_name or f"automl {best.plugin_key}", model_type=cls.key, family=cls.family,
            parameters=best.params,
        ),
    )
    result = trainer.train_model(ctx, model.id, TrainRequest(dataset=request.dataset, cv=request.cv, seed=request.seed))
    return model.id, TrainResponse.model_validate(result, from_attributes=True)


def _scaled(progress: Progress, start: float, span: float) -> Progress:
    def report(fraction: float, message: str) -> None:
        progress(start + span * fraction, message)

    return report
