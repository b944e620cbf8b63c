"""Prediction from the stored artifact and its training lineage.

Each row's forecast is what the model would have said live on that date (see
``plugins.models.base.Timeline``): features recomputed over the rows the model reads
(from the symbol's first bar for filters), targets only once realised.

The features are recomputed exactly as trained (same plugins, parameters and column
order, from the lineage rather than today's definitions, which may have been edited) and
the artifact's SHA-256 is checked before anything is deserialized.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from alphaforge.context import Context
from alphaforge.errors import (
    AlphaforgeError,
    Conflict,
    DependencyFailed,
    InvalidInput,
    NotFound,
)
from alphaforge.features.panels import build_panel
from alphaforge.hashing import utc_iso
from alphaforge.plugins.base import validate_params
from alphaforge.plugins.models import ModelPlugin, Timeline, model_plugins
from alphaforge.schemas.features import FeaturePanelRequest
from alphaforge.schemas.models import PredictRequest
from alphaforge.storage.object_store import ObjectNotFound
from alphaforge.storage.tables import Model
from alphaforge.tasks.progress import Cancelled
from alphaforge.training.assembly import FeatureSpec, assemble_prediction_rows
from alphaforge.training.definitions import NOT_FOUND, hand_linked_artifact_failed
from alphaforge.universes.definitions import find_universe, member_spells

log = logging.getLogger(__name__)


class NoCompleteRows(InvalidInput):
    """No bar of the symbol in the range has every feature: a 422 for one symbol; a panel
    member in this state simply has no rows."""


@dataclass
class PredictResult:
    model_id: uuid.UUID
    model_version: int
    plugin_key: str
    symbol: str | None
    timeframe: str
    feature_columns: list[str]
    timestamps: list[pd.Timestamp]
    predictions: list[float]
    volatility: list[float] | None
    symbols: list[str] | None = None  # panels: each row's symbol


def check_predict_request(ctx: Context, model_id: uuid.UUID, request: PredictRequest) -> Model:
    """The refusals that need no computing: unknown (404) or untrained (409) model, unknown
    universe (404). (The request refused a bad symbol or range when it was parsed.)"""
    model = _trained_model(ctx, model_id)
    if request.universe is not None:
        find_universe(ctx, request.universe)
    return model


def predict(ctx: Context, model_id: uuid.UUID, request: PredictRequest) -> PredictResult:
    model = check_predict_request(ctx, model_id, request)
    try:
        plugin = load_artifact(ctx, model)
        return _predict_panel(ctx, model, plugin, request) if request.is_panel else _predict(ctx, model, plugin, request)
    except (AlphaforgeError, Cancelled):
        raise
    except Exception as exc:
        # Bytes linked by hand (PATCH artifact_uri) may not fit the lineage's plugin or
        # features: a 409 naming the link; an artifact a training stored fits: still a bug.
        refusal = hand_linked_artifact_failed(model, exc)
        if refusal is None:
            raise
        raise refusal from exc


def _predict(
    ctx: Context, model: Model, plugin: ModelPlugin, request: PredictRequest, panels: dict[str, pd.DataFrame] | None = None
) -> PredictResult:
    lineage = model.lineage or {}
    start, end = request.start_date, request.end_date
    features = [FeatureSpec(**f) for f in lineage["features"]]
    horizon = int(lineage["dataset"]["target_horizon"])
    rows, targets, n_history = assemble_prediction_rows(
        ctx, features, request.symbol, request.timeframe, start, end, history_rows=plugin.history_rows(), horizon=horizon,
        panels=panels,
    )
    if len(rows) == n_history:
        raise NoCompleteRows(
            f"no {request.timeframe.value} bars with complete features for {request.symbol} "
            f"in [{utc_iso(start)}, {utc_iso(end)}); check the range with GET /api/v1/market-data/symbols"
        )
    timeline = Timeline(rows.to_numpy(dtype="float64"), targets.to_numpy(dtype="float64"), horizon, start=n_history)
    prediction = plugin.predict(timeline)
    volatility = prediction.extras.get("volatility")
    return PredictResult(
        model_id=model.id,
        model_version=model.version,
        plugin_key=model.plugin_key,
        symbol=request.symbol,
        timeframe=request.timeframe.value,
        feature_columns=list(lineage["feature_columns"]),
        timestamps=list(rows.index[n_history:]),
        predictions=np.asarray(prediction.mean, dtype="float64").tolist(),
        volatility=None if volatility is None else np.asarray(volatility, dtype="float64").tolist(),
    )


def _predict_panel(ctx: Context, model: Model, plugin: ModelPlugin, request: PredictRequest) -> PredictResult:
    """Each member's forecasts over its spells in the range, by the one-symbol rule, sorted
    by (timestamp, symbol); a member without complete feature rows in its spell has none."""
    parts: list[tuple[str, PredictResult]] = []
    panels = _cross_sectional_panels(ctx, model, request)
    _, spells = member_spells(ctx, request.universe, request.symbols, request.start_date, request.end_date)
    limit, rows_so_far = ctx.settings.max_predict_rows, 0
    for symbol, start, end in spells:
        one = request.model_copy(update={"symbol": symbol, "universe": None, "symbols": None,
                                         "start_date": start, "end_date": end})
        try:
            parts.append((symbol, _predict(ctx, model, plugin, one, panels)))
        except NoCompleteRows:
            continue
        rows_so_far += len(parts[-1][1].timestamps)
        if rows_so_far > limit:  # refused as soon as it is known, not after every member
            raise InvalidInput(
                f"the forecasts of {len(parts)} of the {len(spells)} members' spells already number {rows_so_far} rows, "
                f"over the {limit} an answer may hold (ALPHAFORGE_MAX_PREDICT_ROWS): ask for a shorter range or "
                "fewer symbols", field="end_date",
            )
    if not parts:
        raise InvalidInput(
            f"no member has {request.timeframe.value} bars with complete features in "
            f"[{utc_iso(request.start_date)}, {utc_iso(request.end_date)}); check the range with GET /api/v1/market-data/symbols"
        )
    rows = pd.DataFrame({
        "timestamp": [t for _, r in parts for t in r.timestamps],
        "symbol": [s for s, r in parts for _ in r.timestamps],
        "prediction": [p for _, r in parts for p in r.predictions],
        "volatility": [v for _, r in parts for v in (r.volatility or [np.nan] * len(r.timestamps))],
    }).sort_values(["timestamp", "symbol"], kind="stable")
    has_volatility = parts[0][1].volatility is not None
    return replace(
        parts[0][1],
        symbol=None,
        symbols=rows["symbol"].tolist(),
        timestamps=list(rows["timestamp"]),
        predictions=rows["prediction"].tolist(),
        volatility=rows["volatility"].tolist() if has_volatility else None,
    )


def _cross_sectional_panels(ctx: Context, model: Model, request: PredictRequest) -> dict[str, pd.DataFrame]:
    """The panel over the request's members of each cross-sectional feature the model reads
    (generated, or read back when stored): their values exist only across symbols."""
    panels = {}
    for feature in (FeatureSpec(**f) for f in (model.lineage or {})["features"]):
        if not feature.plugin().per_symbol:
            panel_request = FeaturePanelRequest(
                universe=request.universe, symbols=request.symbols, timeframe=request.timeframe,
                start_date=request.start_date, end_date=request.end_date,
            )
            panels[feature.feature_id] = build_panel(ctx, uuid.UUID(feature.feature_id), panel_request).frame
    return panels


def load_artifact(ctx: Context, model: Model) -> ModelPlugin:
    """Fetch, verify (SHA-256 from the row) and only then deserialize the stored model."""
    assert model.artifact_uri and model.artifact_sha256 and model.lineage
    try:
        data = ctx.objects.get(ctx.objects.key_of(model.artifact_uri))
    except ObjectNotFound:
        log.warning("model %s: its artifact %s is missing from the object store", model.id, model.artifact_uri)
        raise Conflict(
            f"the artifact of model {model.id} is missing from the object store; train the model again"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != model.artifact_sha256:
        log.error(
            "model %s: artifact %s has SHA-256 %s, the row records %s", model.id, model.artifact_uri, digest,
            model.artifact_sha256,
        )
        raise DependencyFailed(
            "object store",
            f"the stored artifact of model {model.id} does not match the SHA-256 its row records; "
            "refusing to load it: train the model again",
        )
    lineage = model.lineage
    cls = model_plugins.get(lineage["plugin_key"])
    if cls.version != lineage["plugin_version"]:
        raise Conflict(
            f"model plugin {cls.key} is now version {cls.version}, the artifact was trained with version "
            f"{lineage['plugin_version']}; train the model again"
        )
    params = validate_params(cls.Params, lineage["parameters"], cls.key)
    return cls.from_bytes(data, params, seed=lineage["seed"])


def _trained_model(ctx: Context, model_id: uuid.UUID) -> Model:
    with ctx.db.session() as session:
        model = session.get(Model, model_id)
        if model is None:
            raise NotFound(NOT_FOUND)
        if model.artifact_uri is None or model.lineage is None:
            raise Conflict(f"model {model_id} has not been trained yet; POST /api/v1/models/{model_id}/train first")
        return model
