"""Training data: feature datasets in request order, joined on time, with the forward-return target.

Column names carry the definition (``technical.rsi(period=21).rsi``), so two RSIs with
different periods are two columns and the same request always gives the same order.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from alphaforge.context import Context
from alphaforge.errors import InvalidInput, NotFound
from alphaforge.marketdata.bars import Timeframe
from alphaforge.plugins.features import FeaturePlugin
from alphaforge.schemas.features import FeatureGenerateRequest
from alphaforge.schemas.models import DatasetSpec
from alphaforge.features import generation
from alphaforge.features.sources import gather_sources
from alphaforge.features.definitions import resolve_plugin, resolve_references
from alphaforge.hashing import utc_iso
from alphaforge.storage.tables import Feature

MIN_ROWS = 30


@dataclass(frozen=True)
class FeatureSpec:
    """What a model needs to recompute one feature: recorded in the training lineage."""

    feature_id: str
    plugin_key: str
    category: str
    parameters: dict[str, Any]
    plugin_version: str
    columns: list[str]
    dataset_version_hash: str | None = None

    def plugin(self) -> FeaturePlugin:
        return resolve_plugin(self.plugin_key, self.category, self.parameters)


@dataclass
class TrainingData:
    X: np.ndarray  # (n, k) float64, rows in time order
    y: np.ndarray  # (n,) forward returns
    horizon: int  # rows each label looks ahead
    timestamps: pd.DatetimeIndex
    columns: list[str]
    features: list[FeatureSpec]
    dropped_rows: int


def column_name(plugin_key: str, parameters: dict[str, Any], column: str) -> str:
    args = ",".join(f"{k}={json.dumps(v, sort_keys=True, separators=(',', ':'))}" for k, v in sorted(parameters.items()))
    return f"{plugin_key}({args}).{column}"


def load_feature_specs(ctx: Context, feature_ids: list[uuid.UUID]) -> list[FeatureSpec]:
    """The definitions, in request order; 404 naming every unknown id, 422 on repeats."""
    repeated = sorted({str(f) for f in feature_ids if feature_ids.count(f) > 1})
    if repeated:
        raise InvalidInput(f"feature id(s) listed more than once: {', '.join(repeated)}")
    with ctx.db.session() as session:
        rows = {f.id: f for f in session.scalars(select(Feature).where(Feature.id.in_(feature_ids)))}
        missing = [str(f) for f in feature_ids if f not in rows]
        if missing:
            raise NotFound(f"Unknown feature id(s): {', '.join(missing)}")
        specs = []
        for fid in feature_ids:
            row = rows[fid]
            plugin = resolve_plugin(row.plugin_key, row.type, row.parameters)
            specs.append(
                FeatureSpec(
                    feature_id=str(fid),
                    plugin_key=plugin.key,
                    category=row.type,
                    parameters=plugin.resolved_parameters(),
                    plugin_version=plugin.version,
                    columns=[column_name(plugin.key, plugin.resolved_parameters(), c) for c in plugin.output_columns],
                )
            )
    _refuse_duplicate_columns(specs)
    return specs


def check_dataset_spec(ctx: Context, spec: DatasetSpec) -> list[FeatureSpec]:
    """The refusals that need no computing: unknown features (404), repeats, an empty range (422)."""
    features = load_feature_specs(ctx, spec.feature_ids)
    symbol, start, end = spec.symbol, spec.start_date, spec.end_date
    if ctx.bars.get_bars(symbol, spec.timeframe, start, end, warmup=0).empty:
        raise InvalidInput(
            f"no {spec.timeframe.value} bars for {symbol} in [{utc_iso(start)}, {utc_iso(end)}); "
            "check the symbol and range with GET /api/v1/market-data/symbols"
        )
    return features


def assemble_training_data(ctx: Context, spec: DatasetSpec) -> TrainingData:
    """Features from the dataset cache (generated on a miss) + target; warm-up and the last h rows dropped."""
    features = load_feature_specs(ctx, spec.feature_ids)
    request = FeatureGenerateRequest(
        symbol=spec.symbol, timeframe=spec.timeframe, start_date=spec.start_date, end_date=spec.end_date
    )
    frames, recorded = [], []
    for feature in features:
        result = generation.generate_dataset(ctx, uuid.UUID(feature.feature_id), request)
        frames.append(_renamed(result.frame, feature))
        recorded.append(_with_hash(feature, result.dataset.version_hash))
    bars = ctx.bars.get_bars(spec.symbol, spec.timeframe, spec.start_date, spec.end_date, warmup=0)
    return _align(frames, bars["close"], spec.target_horizon, recorded)


def assemble_prediction_rows(
    ctx: Context, features: list[FeatureSpec], symbol: str, timeframe: Timeframe, start: datetime, end: datetime,
    history_rows: int | None, horizon: int, panels: dict[str, pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, pd.Series, int]:
    """Feature rows and targets for prediction, recomputed from the lineage (nothing is stored).

    Returns the complete feature rows from ``history_rows`` rows before ``start`` (``None``:
    from the first stored bar on, so a filter always starts at the same row) to ``end``,
    the forward return of each over ``horizon`` bars as known from the bars before ``end``
    (NaN where not realised by then; the model reads each only once realised), and how
    many rows precede ``start``.

    A cross-sectional feature cannot be computed from one symbol: its values come from
    ``panels`` (feature id -> its panel over the request's members, keyed (timestamp, symbol)).
    """
    extra_warmup = generation.FULL_HISTORY if history_rows is None else history_rows
    frames = []
    for feature in features:
        plugin = resolve_references(ctx, feature.plugin(), (uuid.UUID(feature.feature_id),))
        if plugin.version != feature.plugin_version:
            raise InvalidInput(
                f"feature plugin {feature.plugin_key} is now version {plugin.version}, the model was trained "
                f"on version {feature.plugin_version}; retrain the model"
            )
        if not plugin.per_symbol:
            if panels is None or feature.feature_id not in panels:
                raise InvalidInput(
                    f"the model reads the cross-sectional feature {feature.feature_id} ({feature.plugin_key}), which "
                    "needs every member of a date: predict for a universe or a list of symbols, not one symbol"
                )
            panel = panels[feature.feature_id]
            mine = panel.xs(symbol, level="symbol") if symbol in panel.index.get_level_values("symbol") else panel.iloc[:0].droplevel("symbol")
            frames.append(_renamed(mine, feature))
            continue
        bars, _ = generation.feature_bars(ctx, plugin, symbol, timeframe, start, end, extra_warmup=extra_warmup)
        sources = gather_sources(ctx, plugin, symbol, timeframe.value, bars, end)
        full = generation.compute_frame(plugin, bars, len(bars), timeframe.value, sources)
        frames.append(_renamed(full, feature))
    joined = pd.concat(frames, axis=1, join="inner").dropna()
    before = int((joined.index < pd.Timestamp(start)).sum())
    keep_from = 0 if history_rows is None else max(0, before - history_rows)
    rows = joined.iloc[keep_from:]
    if rows.empty:
        return rows, pd.Series(np.nan, index=rows.index), 0
    close = ctx.bars.get_bars(symbol, timeframe, rows.index[0].to_pydatetime(), end, warmup=0)["close"]
    targets = (close.shift(-horizon) / close - 1.0).reindex(rows.index)
    return rows, targets, before - keep_from


def _renamed(frame: pd.DataFrame, feature: FeatureSpec) -> pd.DataFrame:
    out = frame.copy(deep=False)
    out.columns = feature.columns
    return out


def _with_hash(feature: FeatureSpec, version_hash: str) -> FeatureSpec:
    return FeatureSpec(**{**feature.__dict__, "dataset_version_hash": version_hash})


def _align(frames: list[pd.DataFrame], close: pd.Series, horizon: int, features: list[FeatureSpec]) -> TrainingData:
    joined = pd.concat(frames, axis=1, join="inner")
    target = (close.shift(-horizon) / close - 1.0).reindex(joined.index)
    complete = joined.notna().all(axis=1).to_numpy() & target.notna().to_numpy()
    n = int(complete.sum())
    if n < MIN_ROWS:
        incomplete = int((~joined.notna().all(axis=1)).sum())
        raise InvalidInput(
            f"only {n} aligned rows remain of {len(joined)} in the range ({incomplete} with a missing feature value, "
            f"and the last {horizon} without a target); at least {MIN_ROWS} are needed: widen the date range "
            "or lower target_horizon"
        )
    return TrainingData(
        X=np.ascontiguousarray(joined.to_numpy(dtype="float64")[complete]),
        y=target.to_numpy(dtype="float64")[complete],
        horizon=horizon,
        timestamps=pd.DatetimeIndex(joined.index[complete]),
        columns=[c for f in features for c in f.columns],
        features=features,
        dropped_rows=len(joined) - n,
    )


def _refuse_duplicate_columns(specs: list[FeatureSpec]) -> None:
    seen: dict[str, str] = {}
    for spec in specs:
        for column in spec.columns:
            if column in seen:
                raise InvalidInput(
                    f"features {seen[column]} and {spec.feature_id} compute the same column {column!r} "
                    "(same plugin and parameters); list only one of them"
                )
            seen[column] = spec.feature_id


def describe_range(spec: DatasetSpec) -> dict[str, Any]:
    source: dict[str, Any] = {"symbol": spec.symbol}
    if spec.is_panel:
        source = {"universe": spec.universe, "symbols": spec.symbols, "target_transform": spec.target_transform}
    return source | {
        "timeframe": spec.timeframe.value,
        "start": utc_iso(spec.start_date),
        "end": utc_iso(spec.end_date),
        "target_horizon": spec.target_horizon,
    }
