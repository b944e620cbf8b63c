"""Pooled training data: many symbols' rows in one panel, keyed (timestamp, symbol).

The rules:
- Each feature is the panel dataset of the request's universe (members point in time) or
  symbols (``features.panels``): per-symbol pieces underneath, so warm-up, causality and
  restatement are those of single-symbol datasets, symbol by symbol.
- The target of row (t, s) is ``close_s[t+h] / close_s[t] - 1`` over the symbol's own bars
  up to the range's end, as for one series; ``target_transform`` then demeans it or ranks
  it across the symbols of date t (the label of a date uses only that date's labels).
- Rows are the (timestamp, symbol) pairs where every feature and the target exist, sorted
  by timestamp then symbol. Cross-validation splits them by date (``evaluation.panel``):
  all symbols of a date fall on the same side. ``horizon`` is the longest span in calendar
  dates any label covers (a symbol missing dates spans more of them than ``h``).
- Models that ``pools_symbols`` are fitted on every row at once with the panel's
  :class:`~alphaforge.plugins.models.PanelIndex` (each row's date and symbol), so the LSTM's
  windows read one symbol's rows and stacking's inner folds split by date; each fold's test
  rows are forecast symbol by symbol (``forecast_panel``). Per-series filters (ARIMA, GARCH,
  and ensembles with one as a member) are refused: their state runs through one series.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.context import Context
from alphaforge.errors import InvalidInput
from alphaforge.features.panels import build_panel, plan_panel
from alphaforge.plugins.features.cross_section import apply_cross_section
from alphaforge.evaluation.panel import panel_calendar
from alphaforge.plugins.models.base import ModelPlugin, PanelIndex
from alphaforge.schemas.features import FeaturePanelRequest
from alphaforge.schemas.models import DatasetSpec
from alphaforge.training.assembly import MIN_ROWS, FeatureSpec, load_feature_specs

TARGET = "target"
RAW_RETURN = "_forward_return"


@dataclass
class PanelTrainingData:
    X: np.ndarray  # (n, k) float64, rows sorted by (timestamp, symbol)
    y: np.ndarray  # (n,) the (transformed) forward returns
    horizon: int  # calendar dates the longest label spans
    timestamps: pd.DatetimeIndex  # one per row
    symbols: np.ndarray  # one per row
    columns: list[str]
    features: list[FeatureSpec]  # each with its panel dataset's version hash
    dropped_rows: int
    #: The forward returns before ``target_transform`` (None: ``y`` is them), what signal evaluation reads.
    returns: np.ndarray | None = None

    @cached_property
    def panel_index(self) -> PanelIndex:
        """Each row's calendar date and symbol as codes (symbols coded in sorted order, as
        the rows are), with the label span in dates: what a pooling model's fit reads."""
        dates, _ = panel_calendar(self.timestamps)
        series = pd.factorize(self.symbols, sort=True)[0]
        return PanelIndex(dates, series, self.horizon)


def panel_request(spec: DatasetSpec) -> FeaturePanelRequest:
    return FeaturePanelRequest(
        universe=spec.universe, symbols=spec.symbols, timeframe=spec.timeframe,
        start_date=spec.start_date, end_date=spec.end_date,
    )


#: Why a model that does not pool symbols is refused a panel (training, tuning, AutoML).
CANNOT_POOL = (
    "a per-series statistical filter (ARIMA, GARCH) carries one series' state from its first row, and so does "
    "an ensemble with one as a member; a panel's rows interleave symbols"
)
#: What to do instead.
POOLING_MODELS = "machine-learning models, dl.lstm, or ensembles of them"


def check_pooling(plugin: ModelPlugin) -> None:
    """422 for a model that cannot fit many symbols' rows at once."""
    if not plugin.pools_symbols():
        raise InvalidInput(
            f"{plugin.key} cannot be trained on a panel: {CANNOT_POOL}. Train it per symbol (dataset.symbol) "
            f"or choose a model that pools symbols: {POOLING_MODELS}",
            plugin_key=plugin.key,
        )


def check_panel_spec(ctx: Context, spec: DatasetSpec) -> list[FeatureSpec]:
    """The refusals that need no computing: unknown features (404), unknown universe (404),
    members whose bars cannot feed a feature, no member with bars (422)."""
    features = load_feature_specs(ctx, spec.feature_ids)
    request = panel_request(spec)
    for feature in features:
        plan_panel(ctx, uuid.UUID(feature.feature_id), request)
    return features


def assemble_panel_training_data(ctx: Context, spec: DatasetSpec) -> PanelTrainingData:
    features = load_feature_specs(ctx, spec.feature_ids)
    request = panel_request(spec)
    results, recorded = [], []
    for feature in features:
        result = build_panel(ctx, uuid.UUID(feature.feature_id), request)
        results.append(result)
        recorded.append(FeatureSpec(**{**feature.__dict__, "dataset_version_hash": result.panel.version_hash}))
    joined = _join([r.arrays() for r in results], [f.columns for f in features])
    targets, ends = _targets(ctx, spec, joined.index)
    joined[TARGET] = targets
    joined[RAW_RETURN] = targets
    if spec.target_transform != "raw":
        long = joined[[TARGET]].reset_index()
        joined[TARGET] = apply_cross_section(long, spec.target_transform, TARGET)[TARGET].to_numpy()
    complete = joined.notna().all(axis=1).to_numpy()
    n = int(complete.sum())
    if n < MIN_ROWS:
        raise InvalidInput(
            f"only {n} complete (timestamp, symbol) rows remain of {len(joined)} in the range (a missing feature "
            f"value, or the last {spec.target_horizon} bars of a symbol without a target); at least {MIN_ROWS} "
            "are needed: widen the date range or lower target_horizon"
        )
    rows = joined[complete]
    timestamps = pd.DatetimeIndex(rows.index.get_level_values("timestamp"))
    return PanelTrainingData(
        X=np.ascontiguousarray(rows.drop(columns=[TARGET, RAW_RETURN]).to_numpy(dtype="float64")),
        y=rows[TARGET].to_numpy(dtype="float64"),
        returns=None if spec.target_transform == "raw" else rows[RAW_RETURN].to_numpy(dtype="float64"),
        horizon=_calendar_span(timestamps, pd.DatetimeIndex(ends[complete])),
        timestamps=timestamps,
        symbols=rows.index.get_level_values("symbol").to_numpy(dtype=object),
        columns=[c for f in features for c in f.columns],
        features=recorded,
        dropped_rows=len(joined) - n,
    )


def _join(panels: list[tuple[np.ndarray, pd.Categorical, dict[str, np.ndarray]]], names: list[list[str]]) -> pd.DataFrame:
    """The panels' columns side by side on the (timestamp, symbol) rows they all have, sorted.
    Panels of one request usually hold the same rows in the same order (each member's bars in
    its spells): then the columns are put side by side as they are."""
    stamps, symbols, _ = panels[0]
    if all(np.array_equal(s, stamps) and _same_labels(y, symbols) for s, y, _ in panels[1:]):
        index = _row_index(stamps, symbols)
        values = {n: c for (_, _, columns), given in zip(panels, names, strict=True)
                  for n, c in zip(given, columns.values(), strict=True)}
        joined = pd.DataFrame(values, index=index)
        return joined if index.is_monotonic_increasing else joined.sort_index()
    frames = []
    for (s, y, columns), given in zip(panels, names, strict=True):
        frames.append(pd.DataFrame(dict(zip(given, columns.values(), strict=True)), index=_row_index(s, y)))
    return pd.concat(frames, axis=1, join="inner").sort_index()


def _row_index(stamps: np.ndarray, symbols: pd.Categorical) -> pd.MultiIndex:
    """(timestamp UTC, symbol) from codes: the symbol level sorted, as a DataFrame's would be."""
    names = np.asarray(symbols.categories, dtype=object)
    order = np.argsort(names)
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    times, calendar = pd.factorize(stamps, sort=True)
    return pd.MultiIndex(
        levels=[pd.DatetimeIndex(calendar, tz="UTC").as_unit("ns"), pd.Index(names[order].tolist())],
        codes=[times, rank[symbols.codes]], names=["timestamp", "symbol"],
    )


def _same_labels(a: pd.Categorical, b: pd.Categorical) -> bool:
    return a.categories.equals(b.categories) and np.array_equal(a.codes, b.codes)


def _targets(ctx: Context, spec: DatasetSpec, index: pd.MultiIndex) -> tuple[np.ndarray, np.ndarray]:
    """Each row's forward return over its symbol's own bars, and the date its label ends
    (NaT without a target)."""
    targets = np.full(len(index), np.nan)
    ends = np.full(len(index), np.datetime64("NaT"), dtype="datetime64[ns]")
    codes, members = pd.factorize(index.get_level_values("symbol"))
    by_symbol = np.argsort(codes, kind="stable")  # each symbol's rows found once, not by a scan per symbol
    bounds = np.searchsorted(codes[by_symbol], np.arange(len(members) + 1))
    stamps_all = index.get_level_values("timestamp")
    h = spec.target_horizon
    for i, symbol in enumerate(members):
        at = by_symbol[bounds[i]:bounds[i + 1]]
        close = ctx.bars.get_bars(symbol, spec.timeframe, spec.start_date, spec.end_date, warmup=0)["close"]
        forward = close.shift(-h) / close - 1.0
        end_time = pd.Series(close.index, index=close.index).shift(-h)
        stamps = stamps_all[at]
        targets[at] = forward.reindex(stamps).to_numpy(dtype="float64")
        ends[at] = pd.DatetimeIndex(end_time.reindex(stamps)).tz_convert(None).to_numpy()
    return targets, ends


def _calendar_span(timestamps: pd.DatetimeIndex, ends: pd.DatetimeIndex) -> int:
    """The most calendar dates (the panel's distinct timestamps) any row's label reaches:
    the purge a training row at date d needs is the index of the last date <= its label's
    end, minus d (with every symbol on every date: ``h``)."""
    calendar = timestamps.unique().sort_values().tz_convert(None)
    start_at = calendar.searchsorted(timestamps.tz_convert(None))
    last_within = calendar.searchsorted(ends, side="right") - 1
    return int(max(1, (last_within - start_at).max()))


def describe_panel(spec: DatasetSpec, data: PanelTrainingData) -> dict[str, Any]:
    return {
        "universe": spec.universe,
        "symbols": sorted(set(data.symbols.tolist())),
        "n_symbols": len(set(data.symbols.tolist())),
        "target_transform": spec.target_transform,
        "calendar_horizon": data.horizon,
    }
