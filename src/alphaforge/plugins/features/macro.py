"""Macro features: point-in-time series read as of each bar.

A value at bar t uses only records whose ``available_at`` is at or before t (the vintage
known then), so a CPI print is used from its publication on, never from its reference
month, and a later restatement never changes an earlier bar.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.features.base import FeatureInputs, FeaturePlugin, feature_plugins
from alphaforge.plugins.features.transforms import zscore

SERIES_PATTERN = r"^[A-Z0-9][A-Z0-9._-]{0,39}$"


def _series(default: str) -> str:
    return Field(default, pattern=SERIES_PATTERN, description="A macro series (GET /api/v1/market-data/macro)")


class MacroPlugin(FeaturePlugin):
    category = "macro"
    libraries = ("numpy",)

    def bar_fields(self) -> tuple[str, ...]:
        return ()  # the bars' times only

    @property
    def lookback(self) -> int:
        return 0

    def macro_series(self) -> list[str]:
        return [self.params.series]  # type: ignore[attr-defined]

    def _level(self, inputs: FeatureInputs, series: str, lag: int = 0) -> np.ndarray:
        return inputs.macro[series].as_of(inputs.bars.timestamps, lag=lag)


class SeriesParams(PluginParams):
    series: str = _series("VIX")


@feature_plugins.register
class Level(MacroPlugin):
    key = "macro.level"
    description = "The latest observation of a macro series known at each bar (its latest vintage then)."
    outputs = ("level",)
    Params = SeriesParams

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        return {"level": self._level(inputs, self.params.series)}


class ChangeParams(PluginParams):
    series: str = _series("VIX")
    n: int = Field(1, ge=1, le=1000, description="Observations back (not bars)")
    kind: Literal["diff", "pct"] = Field("diff", description="diff: x[k] - x[k-n]; pct: x[k] / x[k-n] - 1")


@feature_plugins.register
class Change(MacroPlugin):
    key = "macro.change"
    description = "Change of a macro series over its last n observations, both as known at each bar."
    outputs = ("change",)
    Params = ChangeParams

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        p = self.params
        now, then = self._level(inputs, p.series), self._level(inputs, p.series, lag=p.n)
        with np.errstate(divide="ignore", invalid="ignore"):
            change = now - then if p.kind == "diff" else now / then - 1.0
        change[~np.isfinite(change)] = np.nan
        return {"change": change}


class ZScoreParams(PluginParams):
    series: str = _series("VIX")
    window: int = Field(60, ge=2, le=5000, description="Bars in the trailing window")


@feature_plugins.register
class ZScore(MacroPlugin):
    key = "macro.zscore"
    description = "(level - rolling mean) / rolling std of the as-of level over the last `window` bars."
    outputs = ("zscore",)
    Params = ZScoreParams
    libraries = ("numpy", "pandas")

    @property
    def lookback(self) -> int:
        return self.params.window - 1

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        return {"zscore": zscore(self._level(inputs, self.params.series), self.params.window)}


class SpreadParams(PluginParams):
    series_a: str = _series("BAA")
    series_b: str = _series("AAA")

    @model_validator(mode="after")
    def _two_series(self) -> SpreadParams:
        if self.series_a == self.series_b:
            raise ValueError("series_a and series_b must differ")
        return self


@feature_plugins.register
class Spread(MacroPlugin):
    key = "macro.spread"
    description = "series_a - series_b, each as known at each bar (e.g. BAA - AAA, the default spread)."
    outputs = ("spread",)
    Params = SpreadParams

    def macro_series(self) -> list[str]:
        return [self.params.series_a, self.params.series_b]

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        p = self.params
        return {"spread": self._level(inputs, p.series_a) - self._level(inputs, p.series_b)}
