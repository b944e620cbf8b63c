"""Training: assemble, cross-validate without leakage, fit on everything, store, track.

Order of effects, so nothing is half-written: the artifact and the out-of-fold predictions
(``out_of_fold``) are stored first, then
the MLflow run is logged, then the model row is updated in one compare-and-swap on its
revision. A failure at any step leaves at most an orphan object, never a row that points
at something that was not stored.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import update

from alphaforge import __version__
from alphaforge.context import Context
from alphaforge.errors import Conflict, NotFound
from alphaforge.plugins.base import library_version
from alphaforge.plugins.models import ModelPlugin, Timeline, forecast_panel
from alphaforge.schemas.models import CVConfig, DatasetSpec, TrainRequest
from alphaforge.evaluation import cv
from alphaforge.evaluation import cross_section, metrics, panel
from alphaforge.training.assembly import TrainingData, assemble_training_data, check_dataset_spec, describe_range
from alphaforge.tasks.progress import Progress, no_progress
from alphaforge.training import out_of_fold, pooled
from alphaforge.training.definitions import NOT_FOUND, artifact_prefix, resolve_plugin
from alphaforge.tracking import TrainingRun
from alphaforge.storage.db import utcnow
from alphaforge.storage.tables import Model

LINEAGE_SCHEMA = "alphaforge.model-training/1"

#: One series' rows or a panel's, and their folds (by row or by date).
AnyData = TrainingData | pooled.PanelTrainingData
AnyFolds = list[cv.Fold] | list[panel.PanelFold]


@dataclass(frozen=True)
class _Definition:
    id: uuid.UUID
    name: str
    version: int
    plugin: ModelPlugin
    family: str


@dataclass
class TrainResult:
    model_id: uuid.UUID
    version: int
    artifact_uri: str
    artifact_sha256: str
    out_of_fold_uri: str
    cv_metrics: dict[str, Any]
    n_train_rows: int
    feature_columns: list[str]
    mlflow_run_id: str


def check_train_request(
    ctx: Context, model_id: uuid.UUID, request: TrainRequest, *, plan_panels: bool = True
) -> _Definition:
    """Everything that can be refused before computing (shared by the sync and async paths).
    ``plan_panels=False``: leave a panel's planning (and its refusals) to the assembly that
    follows, rather than reading every member's bars twice."""
    definition = _load_definition(ctx, model_id, request.seed)
    if request.dataset.is_panel:
        pooled.check_pooling(definition.plugin)
        if plan_panels:
            pooled.check_panel_spec(ctx, request.dataset)
    else:
        check_dataset_spec(ctx, request.dataset)
    definition.plugin.check_target_horizon(request.dataset.target_horizon)
    return definition


def train_model(
    ctx: Context, model_id: uuid.UUID, request: TrainRequest, progress: Progress = no_progress
) -> TrainResult:
    definition = check_train_request(ctx, model_id, request, plan_panels=False)
    progress(0.0, "assembling features")
    data = assemble(ctx, request.dataset)
    validation = cross_validate(definition.plugin, data, cv_folds(request.cv, data), request.seed, progress)
    cv_metrics = validation.metrics

    progress(0.9, "final fit on all rows")
    final = type(definition.plugin)(definition.plugin.params, seed=request.seed)
    fit_rows(final, data)
    artifact = final.to_bytes()
    sha256 = hashlib.sha256(artifact).hexdigest()
    key = f"{artifact_prefix(model_id)}/{sha256}.{final.artifact_ext}"
    uri = ctx.objects.put(key, artifact)
    oof_uri = out_of_fold.store(ctx, artifact_prefix(model_id), validation.out_of_fold(data, request.dataset.symbol))

    lineage = _lineage(definition, request, data, cv_metrics)
    run_id = ctx.tracker.log_training(
        TrainingRun(
            run_name=f"train:{definition.name}",
            params={
                "model_id": str(model_id),
                "plugin_key": definition.plugin.key,
                "family": definition.family,
                **{f"param.{k}": v for k, v in definition.plugin.resolved_parameters().items()},
                **{f"cv.{k}": v for k, v in lineage["cv"].items()},
                **{f"dataset.{k}": v for k, v in lineage["dataset"].items() if v is not None},
                "seed": request.seed,
                "n_features": len(data.columns),
            },
            fold_metrics=[{k: v for k, v in f.items() if not k.startswith(("train_", "test_"))} for f in cv_metrics["folds"]],
            summary=cv_metrics["summary"],
            baseline=cv_metrics["baseline"],
            tags={
                "model_id": str(model_id),
                "model_version": str(definition.version + 1),
                "plugin_key": definition.plugin.key,
                "symbol": lineage["dataset"].get("symbol") or "panel",
                **({"universe": lineage["dataset"]["universe"]} if lineage["dataset"].get("universe") else {}),
                "timeframe": lineage["dataset"]["timeframe"],
                "artifact_sha256": sha256,
                "feature_dataset_hashes": ",".join(f["dataset_version_hash"] for f in lineage["features"]),
                "alphaforge_version": __version__,
            },
            artifact=artifact,
            artifact_name=f"{sha256}.{final.artifact_ext}",
            lineage=lineage,
        )
    )

    new_revision = definition.version + 1
    with ctx.db.session() as session:
        updated = session.execute(
            update(Model)
            .where(Model.id == model_id, Model.version == definition.version)
            .values(
                version=new_revision,
                artifact_uri=uri,
                artifact_sha256=sha256,
                out_of_fold_uri=oof_uri,
                metrics=cv_metrics["summary"],
                mlflow_run_id=run_id,
                lineage=lineage,
                trained_at=utcnow(),
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        ).rowcount
    if updated != 1:
        if _exists(ctx, model_id):
            raise Conflict("the model was edited while it trained; train it again to use the new definition")
        raise NotFound(NOT_FOUND)
    return TrainResult(
        model_id=model_id,
        version=new_revision,
        artifact_uri=uri,
        artifact_sha256=sha256,
        out_of_fold_uri=oof_uri,
        cv_metrics=cv_metrics,
        n_train_rows=len(data.y),
        feature_columns=data.columns,
        mlflow_run_id=run_id,
    )


def folds_for(config: CVConfig, horizon: int, n_rows: int) -> list[cv.Fold]:
    """The purged walk-forward folds of a request's CV configuration (training, tuning and
    AutoML split the same rows the same way)."""
    return cv.make_folds(
        n_rows,
        method=config.method,
        n_splits=config.n_splits,
        test_size=config.test_size,
        min_train_size=config.min_train_size,
        horizon=horizon,
        purge=config.purge,
        embargo=config.embargo,
    )


def panel_folds_for(config: CVConfig, data: pooled.PanelTrainingData) -> list[panel.PanelFold]:
    """The same configuration over a panel's dates (purge and embargo in dates): every
    symbol of a date falls on the same side."""
    return panel.panel_folds(
        data.timestamps,
        method=config.method,
        n_splits=config.n_splits,
        test_size=config.test_size,
        min_train_size=config.min_train_size,
        horizon=data.horizon,
        purge=None if config.purge is None else max(config.purge, data.horizon),
        embargo=config.embargo,
    )


def assemble(ctx: Context, spec: DatasetSpec) -> AnyData:
    """The rows of a dataset spec: one series' or a panel's (training, tuning and AutoML alike)."""
    if spec.is_panel:
        return pooled.assemble_panel_training_data(ctx, spec)
    return assemble_training_data(ctx, spec)


def cv_folds(config: CVConfig, data: AnyData) -> AnyFolds:
    """The folds of ``data``: by row for one series, by date for a panel."""
    if isinstance(data, pooled.PanelTrainingData):
        return panel_folds_for(config, data)
    return folds_for(config, data.horizon, len(data.y))


def score_fold(plugin: ModelPlugin, data: AnyData, fold: cv.Fold | panel.PanelFold, seed: int) -> tuple[dict[str, Any], np.ndarray]:
    """One fold, forecast and scored the one way training and tuning both use: its index,
    spans and scores (a panel's add the cross-sectional ones), and the forecast."""
    if isinstance(data, pooled.PanelTrainingData):
        assert isinstance(fold, panel.PanelFold)
        predicted = panel_fold_forecast(plugin, data, fold, seed)
        actual, timestamps = data.y[fold.test], data.timestamps[fold.test]
        scores = cross_section.panel_fold_metrics(actual, predicted, timestamps=timestamps)
        return {"fold": fold.index, **panel.panel_fold_spans(fold, data.timestamps), **scores}, predicted
    assert isinstance(fold, cv.Fold)
    predicted = fold_forecast(plugin, data, fold, seed)
    scores = metrics.fold_metrics(data.y[fold.test], predicted)
    return {"fold": fold.index, **cv.fold_spans(fold, data.timestamps), **scores}, predicted


def summarize_folds(data: AnyData, folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Scores over folds: means and stds, plus a panel's cross-sectional ones (``mean_cs_*``)."""
    if isinstance(data, pooled.PanelTrainingData):
        return cross_section.summarize_panel(folds)
    return metrics.summarize(folds)


@dataclass
class CrossValidation:
    """Scores of every fold and their summary (``metrics``), and the forecasts they scored."""

    metrics: dict[str, Any]
    tests: list[np.ndarray]
    forecasts: list[np.ndarray]

    def out_of_fold(self, data: AnyData, symbol: str | None) -> pd.DataFrame:
        """The test rows' forecasts and targets (``symbol``: a one-series training's)."""
        return out_of_fold_frame(data, symbol, self.tests, self.forecasts)


def out_of_fold_frame(data: AnyData, symbol: str | None, tests: list[np.ndarray], forecasts: list[np.ndarray]) -> pd.DataFrame:
    """Folds' test rows (``tests``) with their ``forecasts``, targets and forward returns."""
    if isinstance(data, pooled.PanelTrainingData):
        symbols, returns = data.symbols, data.y if data.returns is None else data.returns
    else:
        symbols, returns = np.full(len(data.y), symbol or ""), data.y
    return out_of_fold.out_of_fold_frame(data.timestamps, symbols, tests, forecasts, data.y, returns)


def cross_validate(
    plugin: ModelPlugin, data: AnyData, folds: AnyFolds, seed: int, progress: Progress = no_progress
) -> CrossValidation:
    """Fit a fresh model per fold; score it and the training-mean baseline on the test rows.
    A panel's summary adds the per-date statistics over every test date of every fold."""
    results, baselines, forecasts = [], [], []
    for fold in folds:
        progress(0.05 + 0.85 * fold.index / len(folds), f"fold {fold.index + 1} of {len(folds)}")
        scores, predicted = score_fold(plugin, data, fold, seed)
        baseline = metrics.fold_metrics(data.y[fold.test], metrics.naive_baseline(data.y[fold.train], len(fold.test)))
        baselines.append(baseline)
        forecasts.append(predicted)
        results.append({**scores, "baseline_mse": baseline["mse"]})
    summary = summarize_folds(data, results)
    tests = [np.asarray(fold.test) for fold in folds]
    if isinstance(data, pooled.PanelTrainingData):
        rows = np.concatenate(tests)
        summary |= cross_section.cross_section_metrics(
            data.y[rows], np.concatenate(forecasts), timestamps=data.timestamps[rows]
        )
    return CrossValidation(
        {"folds": results, "summary": summary, "baseline": metrics.summarize(baselines)}, tests, forecasts
    )


def fit_rows(model: ModelPlugin, data: AnyData, rows: np.ndarray | None = None) -> None:
    """Fit ``model`` on ``rows`` of the data (``None``: all, without a copy): one series' as
    they are, a panel's with their :class:`~alphaforge.plugins.models.PanelIndex` (each
    row's date and symbol)."""
    X, y = (data.X, data.y) if rows is None else (data.X[rows], data.y[rows])
    if isinstance(data, pooled.PanelTrainingData):
        model.fit_panel(X, y, data.panel_index if rows is None else data.panel_index.take(rows))
    else:
        model.fit(X, y)


def panel_fold_forecast(plugin: ModelPlugin, data: pooled.PanelTrainingData, fold: panel.PanelFold, seed: int) -> np.ndarray:
    """A fresh model fitted on the training dates' rows forecasts the test dates' rows as it
    would have live, symbol by symbol: each from that symbol's rows up to its date (its first
    panel row on), seeing the labels realised by then except the purge gap dates' (the
    single-series :func:`fold_forecast`, by date)."""
    model = type(plugin)(plugin.params, seed=seed)
    fit_rows(model, data, fold.train)
    index = data.panel_index
    stop = int(fold.test[-1]) + 1
    known = fold.known_targets(data.y, index.dates)
    return forecast_panel(model, data.X[:stop], known, index.take(np.arange(stop)), start=int(fold.test[0]))


def fold_forecast(plugin: ModelPlugin, data: TrainingData, fold: cv.Fold, seed: int) -> np.ndarray:
    """A fresh model fitted on the fold's training rows forecasts its test rows as it would
    have live: from the series' first row, each row seeing the labels realised by it
    except the purge gap's (filtered across on features alone)."""
    model = type(plugin)(plugin.params, seed=seed)
    fit_rows(model, data, fold.train)
    stop = int(fold.test[-1]) + 1
    timeline = Timeline(data.X[:stop], fold.known_targets(data.y), horizon=data.horizon, start=int(fold.test[0]))
    return np.asarray(model.predict(timeline).mean, dtype=np.float64)


def _lineage(
    definition: _Definition, request: TrainRequest, data: TrainingData | pooled.PanelTrainingData, cv_metrics: dict[str, Any]
) -> dict[str, Any]:
    plugin = definition.plugin
    purge = cv.effective_purge(request.cv.purge, request.dataset.target_horizon)
    panel_part: dict[str, Any] = {}
    if isinstance(data, pooled.PanelTrainingData):
        purge = max(purge, data.horizon)
        panel_part = {"panel": pooled.describe_panel(request.dataset, data)}
    return panel_part | {
        "schema": LINEAGE_SCHEMA,
        "plugin_key": plugin.key,
        "plugin_version": plugin.version,
        "parameters": plugin.resolved_parameters(),
        "seed": request.seed,
        "dataset": describe_range(request.dataset),
        "features": [f.__dict__ for f in data.features],
        "feature_columns": data.columns,
        "n_rows": len(data.y),
        "first_row": data.timestamps[0].isoformat(),
        "last_row": data.timestamps[-1].isoformat(),
        "cv": request.cv.model_dump(mode="json") | {"purge": purge},
        "n_folds": len(cv_metrics["folds"]),
        "libraries": plugin.lineage_libraries() | {"alphaforge": __version__, "numpy": library_version("numpy")},
    }


def _load_definition(ctx: Context, model_id: uuid.UUID, seed: int) -> _Definition:
    with ctx.db.session() as session:
        model = session.get(Model, model_id)
        if model is None:
            raise NotFound(NOT_FOUND)
        plugin = resolve_plugin(model.model_type, model.family, model.parameters, seed=seed)
        return _Definition(id=model.id, name=model.name, version=model.version, plugin=plugin, family=model.family)


def _exists(ctx: Context, model_id: uuid.UUID) -> bool:
    with ctx.db.session() as session:
        return session.get(Model, model_id) is not None

