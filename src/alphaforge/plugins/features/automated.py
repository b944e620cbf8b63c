"""Automated features: tsfresh calculators over a trailing window of one bar series.

Row t holds the features of the window ending at t, so every value uses bars up to t
only. The columns are fixed by the definition (calculators and column), never by the
data: tsfresh's own pipeline drops all-null and constant columns, which made the column
set differ between symbols; here a feature that cannot be computed is NaN instead.

tsfresh is imported lazily: it is an optional extra and importing it takes seconds.
"""

from __future__ import annotations

import logging
from functools import cache, lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field, model_validator

from alphaforge.errors import DependencyUnavailable
from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.features.base import FeatureInputs, FeaturePlugin, feature_plugins
from alphaforge.plugins.features.transforms import log_returns, simple_returns

#: Windows handed to tsfresh at once: bounds the long frame to CHUNK_WINDOWS * window rows.
CHUNK_WINDOWS = 500

TsfreshColumn = Literal["close", "open", "high", "low", "volume", "returns", "log_returns"]
_RETURN_COLUMNS = ("returns", "log_returns")
_EXAMPLE_CALCULATORS = ("mean", "standard_deviation", "skewness", "autocorrelation", "linear_trend")


def _tsfresh() -> Any:
    try:
        import tsfresh
    except ImportError as exc:
        # An ImportError's text can name installed files; the log keeps it.
        logging.getLogger(__name__).warning("tsfresh cannot be imported: %s", exc)
        raise DependencyUnavailable(
            "tsfresh", "it is not installed or cannot be imported; install the automated extra: "
            "pip install 'alphaforge[automated]'"
        ) from None
    return tsfresh


@cache
def _minimal_parameters() -> dict[str, Any]:
    """tsfresh's minimal settings, built once (building them logs a warning per missing extra)."""
    _tsfresh()
    from tsfresh.feature_extraction import MinimalFCParameters

    return dict(MinimalFCParameters())


@cache
def _efficient_parameters() -> dict[str, Any]:
    """Calculators a custom set may name, with tsfresh's settings for each.

    EfficientFCParameters leaves out the calculators tsfresh marks as expensive. Those that
    read a DatetimeIndex are left out too: a window here is indexed by position, and tsfresh
    would silently skip them, leaving a definition with no columns.
    """
    _tsfresh()
    from tsfresh.feature_extraction import EfficientFCParameters, feature_calculators

    return {
        name: settings
        for name, settings in EfficientFCParameters().items()
        if getattr(getattr(feature_calculators, name), "index_type", None) is None
    }


class TsfreshParams(PluginParams):
    column: TsfreshColumn = Field(
        "close", description="Bar series the window is taken of; returns/log_returns are close-to-close"
    )
    window: int = Field(50, ge=10, le=500, description="Bars in the trailing window (row t: bars t-window+1..t)")
    feature_set: Literal["minimal", "custom"] = Field(
        "minimal", description="'minimal': tsfresh MinimalFCParameters; 'custom': the calculators listed"
    )
    calculators: list[str] | None = Field(
        None,
        min_length=1,
        description="tsfresh calculator names (keys of EfficientFCParameters, with its settings); "
        "only with feature_set 'custom'",
    )

    @model_validator(mode="after")
    def _calculators_match_feature_set(self) -> TsfreshParams:
        if self.feature_set == "minimal":
            if self.calculators is not None:
                raise ValueError("calculators are only allowed with feature_set 'custom'")
            return self
        if self.calculators is None:
            raise ValueError("feature_set 'custom' needs calculators, e.g. " + ", ".join(_EXAMPLE_CALCULATORS))
        repeated = sorted({c for c in self.calculators if self.calculators.count(c) > 1})
        if repeated:
            raise ValueError(f"calculators listed more than once: {', '.join(repeated)}")
        valid = _efficient_parameters()
        unknown = [c for c in self.calculators if c not in valid]
        if unknown:
            raise ValueError(
                f"unknown or unsupported tsfresh calculators: {', '.join(unknown)}; use keys of "
                f"tsfresh EfficientFCParameters ({len(valid)} names, e.g. {', '.join(_EXAMPLE_CALCULATORS)}); "
                "the slow ones (approximate_entropy, sample_entropy, ...) and linear_trend_timewise "
                "are not available"
            )
        return self


def _fc_parameters(feature_set: str, calculators: tuple[str, ...] | None) -> dict[str, Any]:
    """The tsfresh settings a definition computes (a fresh dict, so the cached ones stay intact)."""
    if feature_set == "minimal":
        return dict(_minimal_parameters())
    efficient = _efficient_parameters()
    return {name: efficient[name] for name in calculators or ()}


def _extract(windows: np.ndarray, ids: np.ndarray, kind: str, fc_parameters: dict[str, Any]) -> pd.DataFrame:
    """tsfresh features of each row of ``windows``, indexed by ``ids``.

    The long frame is built with numpy: tsfresh's roll_time_series does the same far slower.
    The value column is named ``kind``, so tsfresh names the features ``{kind}__...``.
    """
    n, length = windows.shape
    frame = pd.DataFrame(
        {
            "id": np.repeat(ids, length),
            "sort": np.tile(np.arange(length), n),
            kind: windows.reshape(-1),
        }
    )
    return _tsfresh().extract_features(
        frame,
        column_id="id",
        column_sort="sort",
        column_value=kind,
        default_fc_parameters=fc_parameters,
        impute_function=None,
        n_jobs=0,
        disable_progressbar=True,
    )


@lru_cache(maxsize=256)
def _feature_names(kind: str, window: int, feature_set: str, calculators: tuple[str, ...] | None) -> tuple[str, ...]:
    """Column names of a definition, from one extraction on a fixed synthetic window.

    tsfresh names a feature by calculator and settings only, so any series gives the same
    names; a fixed one keeps the list independent of the bars a dataset is built from.
    """
    steps = np.arange(window, dtype="float64")
    synthetic = (100.0 + np.sin(0.7 * steps) + 0.01 * steps)[np.newaxis, :]
    fc_parameters = _fc_parameters(feature_set, calculators)
    names = tuple(_extract(synthetic, np.array([0]), kind, fc_parameters).columns)
    if not names:
        raise RuntimeError(f"tsfresh computes no features for {list(fc_parameters)}")
    return names


@feature_plugins.register
class Tsfresh(FeaturePlugin):
    key = "automated.tsfresh"
    category = "automated"
    description = (
        "tsfresh features (minimal set or chosen calculators) of the trailing window of one bar "
        "series, one row per bar; a fixed column set, NaN where a feature is undefined."
    )
    Params = TsfreshParams
    libraries = ("tsfresh", "numpy", "pandas", "scipy", "statsmodels")

    @property
    def _calculators(self) -> tuple[str, ...] | None:
        calculators = self.params.calculators
        return tuple(calculators) if calculators is not None else None

    @property
    def output_columns(self) -> list[str]:
        p = self.params
        return list(_feature_names(p.column, p.window, p.feature_set, self._calculators))

    @property
    def lookback(self) -> int:
        p = self.params
        return p.window - 1 + (1 if p.column in _RETURN_COLUMNS else 0)

    def bar_fields(self) -> tuple[str, ...]:
        column = self.params.column
        return ("close",) if column in _RETURN_COLUMNS else (column,)

    def _series(self, inputs: FeatureInputs) -> np.ndarray:
        bars, column = inputs.bars, self.params.column
        with np.errstate(divide="ignore", invalid="ignore"):
            if column == "returns":
                return simple_returns(bars.close)
            if column == "log_returns":
                return log_returns(bars.close)
        return bars.column(column)

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        p = self.params
        names = self.output_columns
        values = self._series(inputs)
        out = np.full((len(names), len(values)), np.nan)
        if len(values) >= p.window:
            windows = sliding_window_view(values, p.window)  # row i ends at bar i + window - 1
            # A window with a missing value (the first return, a gap) is not computed at all.
            missing = np.concatenate(([0], np.cumsum(~np.isfinite(values))))
            complete = np.flatnonzero(missing[p.window:] == missing[: len(windows)])
            fc_parameters = _fc_parameters(p.feature_set, self._calculators)
            for start in range(0, len(complete), CHUNK_WINDOWS):
                rows = complete[start: start + CHUNK_WINDOWS]
                ends = rows + p.window - 1
                features = _extract(windows[rows], ends, p.column, fc_parameters)
                unexpected = sorted(set(features.columns) - set(names))
                if unexpected:
                    raise RuntimeError(f"tsfresh returned undeclared features {unexpected}")
                out[:, ends] = features.reindex(index=ends, columns=names).to_numpy(dtype="float64").T
        out[~np.isfinite(out)] = np.nan
        return dict(zip(names, out))
