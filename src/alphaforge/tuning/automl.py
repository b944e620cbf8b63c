"""AutoML: cross-validate (optionally tune) several plugins on one dataset and rank them.

The system alphaforge replaces failed the whole request on one bad candidate, answered a 500
for an unknown key or metric, and never tuned. Here: unknown keys, invalid parameters and
unknown metrics are refused before computing (422); the dataset is assembled once and
every candidate uses the same leakage-safe folds as training; a candidate that fails while
computing gets a row with its error (ranked last) instead of failing the request; with
``n_trials`` each candidate is first tuned over its default space (its given parameters
stay fixed) through the tuning service; ``create_model`` saves and trains the winner.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from alphaforge.context import Context
from alphaforge.errors import DependencyUnavailable, InvalidInput
from alphaforge.plugins.models import model_plugins
from alphaforge.schemas.models import ModelCreate, TrainRequest, TrainResponse
from alphaforge.schemas.tuning import AutoMLRequest, AutoMLResponse, CandidateError, LeaderboardRow, TuneRequest
from alphaforge.training import definitions
from alphaforge.training import out_of_fold, trainer
from alphaforge.tuning import tuner
from alphaforge.training import pooled
from alphaforge.training.assembly import check_dataset_spec
from alphaforge.tasks.progress import Cancelled, Progress, no_progress


def check_automl_request(ctx: Context, request: AutoMLRequest) -> None:
    """Every refusal that needs no computing: metric, plugin keys, parameters, CV purge, features;
    on a panel, every candidate that cannot pool symbols (named together, in one 422)."""
    objective = tuner.resolve_objective(request.metric, request.direction)
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


def automl(ctx: Context, request: AutoMLRequest, progress: Progress = no_progress) -> AutoMLResponse:
    check_automl_request(ctx, request)
    objective = tuner.resolve_objective(request.metric, request.direction)
    progress(0.0, "assembling the training data")
    data = trainer.assemble(ctx, request.dataset)
    folds = trainer.cv_folds(request.cv, data)
    share = (0.9 if request.create_model else 1.0) / len(request.candidates)
    rows = []
    for i, (key, params) in enumerate(request.candidates.items()):
        progress(i * share, f"candidate {i + 1} of {len(request.candidates)}: {key}")
        rows.append(_evaluate(ctx, request, key, params, data, folds, _scaled(progress, i * share, share)))

    scored = sorted((r for r in rows if r.error is None), key=lambda r: objective.sort_key(r.score))  # stable
    leaderboard = [r.model_copy(update={"rank": n}) for n, r in enumerate([*scored, *(r for r in rows if r.error)], 1)]
    best = leaderboard[0] if scored else None
    response = AutoMLResponse(metric=objective.metric, direction=objective.direction, leaderboard=leaderboard, best=best)
    if request.create_model:
        if best is None:
            raise InvalidInput(
                f"every candidate failed, so there is no model to create; the first error: {rows[0].error.message}"  # type: ignore[union-attr]
            )
        progress(0.9, f"training the winner: {best.plugin_key}")
        response.model_id, response.trained = _create_and_train(ctx, request, best)
    progress(1.0, "done")
    return response


def _evaluate(
    ctx: Context, request: AutoMLRequest, key: str, params: dict[str, Any], data: trainer.AnyData,
    folds: trainer.AnyFolds, progress: Progress,
) -> LeaderboardRow:
    """One candidate's row: tuned (if asked and it has a space) then scored; its error if it fails."""
    objective = tuner.resolve_objective(request.metric, request.direction)
    started = time.perf_counter()
    row: dict[str, Any] = {"rank": 0, "plugin_key": key, "params": params, "score": None, "metrics": None}
    try:
        candidate = _tune_request(request, key, params)
        if candidate is None:
            plugin = model_plugins.get(key).from_parameters(params, seed=request.seed)
            validation = trainer.cross_validate(plugin, data, folds, request.seed)
            summary = validation.metrics["summary"]
            if summary[objective.metric] is None:
                raise InvalidInput(f"{objective.metric} is undefined on every fold (e.g. constant predictions)")
            uri = out_of_fold.store(ctx, "automl", validation.out_of_fold(data, request.dataset.symbol))
            row.update(score=summary[objective.metric], metrics=summary, out_of_fold_uri=uri)
        else:
            study_name = tuner.create_study(ctx, candidate, f"automl-{uuid.uuid4().hex}")
            row["study_name"] = study_name
            try:
                tuner.run_trials_on(ctx, candidate, study_name, data, folds, progress)
            except BaseException as exc:
                tuner.abort_study(ctx, study_name, "KILLED" if isinstance(exc, Cancelled) else "FAILED")
                raise
            result = tuner.tune_result(ctx, candidate, study_name)
            best = next((t for t in result.trials if t.number == result.best_trial), None)
            row.update(params=result.best_params, score=result.best_score, metrics=result.best_metrics,
                       n_trials=result.n_trials, out_of_fold_uri=None if best is None else best.out_of_fold_uri)
    except (Cancelled, DependencyUnavailable):
        raise
    except Exception as exc:  # noqa: BLE001 - one failing candidate must not fail the leaderboard
        message = exc.message if isinstance(exc, InvalidInput) else str(exc)
        row["error"] = CandidateError(type=type(exc).__name__, message=message[:2000] or type(exc).__name__)
        row.update(score=None, metrics=None)
    return LeaderboardRow(fit_time_s=time.perf_counter() - started, **row)


def _tune_request(request: AutoMLRequest, key: str, params: dict[str, Any]) -> TuneRequest | None:
    """The candidate's study: its default space minus its given parameters (None: nothing to tune)."""
    if request.n_trials == 0:
        return None
    space = {n: s for n, s in model_plugins.get(key).search_space.items() if n not in params}
    if not space:
        return None
    return TuneRequest(
        plugin_key=key, dataset=request.dataset, param_space=space, fixed_params=params, n_trials=request.n_trials,
        cv=request.cv, metric=request.metric, direction=request.direction, seed=request.seed,
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
