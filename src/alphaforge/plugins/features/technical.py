"""Technical indicators, computed by TA-Lib on the bars' numpy arrays.

Each plugin names its TA-Lib function, the bar columns it reads, its outputs and how its
parameters map onto TA-Lib's. Indicators built on exponential smoothing or cumulative
sums (RSI, MACD, ATR, EMA, ADX, OBV) are ``recursive``: their value depends on where the
series starts, so the engine warms them up over the whole stored history.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import talib
from pydantic import Field, model_validator
from talib import abstract

from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.features.base import FeatureInputs, FeaturePlugin, PriceColumn, feature_plugins

Period = Field(14, ge=2, le=1000, description="Bars in the indicator window")


class TalibPlugin(FeaturePlugin):
    category = "technical"
    libraries = ("TA-Lib", "numpy")
    function: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]] = ("close",)

    def __init__(self, params: PluginParams) -> None:
        super().__init__(params)
        self._function = getattr(talib, self.function)
        self._kwargs = self.talib_parameters()
        self._columns = self.input_columns()

    def talib_parameters(self) -> dict[str, Any]:
        """TA-Lib keyword arguments for these parameters."""
        return {"timeperiod": self.params.period}  # type: ignore[attr-defined]

    def input_columns(self) -> tuple[str, ...]:
        column = getattr(self.params, "column", None)
        return (column,) if column else self.inputs

    def bar_fields(self) -> tuple[str, ...]:
        return self.input_columns()

    @cached_property
    def lookback(self) -> int:  # type: ignore[override]
        fn = abstract.Function(self.function)
        fn.parameters = self._kwargs
        return int(fn.lookback)

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        bars = inputs.bars
        result = self._function(*(bars.column(c) for c in self._columns), **self._kwargs)
        if len(self.outputs) == 1:
            return {self.outputs[0]: result}
        return dict(zip(self.outputs, result, strict=True))


class PeriodParams(PluginParams):
    period: int = Period


class PeriodColumnParams(PluginParams):
    period: int = Period
    column: PriceColumn = Field("close", description="Bar column the indicator reads")


@feature_plugins.register
class Rsi(TalibPlugin):
    key = "technical.rsi"
    description = "Relative Strength Index (Wilder smoothing), 0 to 100."
    function, outputs, recursive = "RSI", ("rsi",), True
    Params = PeriodColumnParams


class MacdParams(PluginParams):
    fast_period: int = Field(12, ge=2, le=500)
    slow_period: int = Field(26, ge=2, le=1000)
    signal_period: int = Field(9, ge=1, le=500)
    column: PriceColumn = "close"

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MacdParams:
        if self.fast_period >= self.slow_period:
            raise ValueError("fast_period must be smaller than slow_period")
        return self


@feature_plugins.register
class Macd(TalibPlugin):
    key = "technical.macd"
    description = "MACD line, signal line and histogram (EMA-based)."
    function, outputs, recursive = "MACD", ("macd", "macd_signal", "macd_hist"), True
    Params = MacdParams

    def talib_parameters(self) -> dict[str, Any]:
        p = self.params
        return {"fastperiod": p.fast_period, "slowperiod": p.slow_period, "signalperiod": p.signal_period}


@feature_plugins.register
class Atr(TalibPlugin):
    key = "technical.atr"
    description = "Average True Range (Wilder smoothing), in price units."
    function, outputs, recursive = "ATR", ("atr",), True
    inputs = ("high", "low", "close")
    Params = PeriodParams


class BbandsParams(PluginParams):
    period: int = Field(20, ge=2, le=1000)
    nbdev_up: float = Field(2.0, gt=0, le=10, description="Standard deviations above the mean")
    nbdev_dn: float = Field(2.0, gt=0, le=10, description="Standard deviations below the mean")
    column: PriceColumn = "close"


@feature_plugins.register
class Bbands(TalibPlugin):
    key = "technical.bbands"
    description = "Bollinger Bands over a simple moving average: upper, middle, lower."
    function, outputs = "BBANDS", ("bb_upper", "bb_middle", "bb_lower")
    Params = BbandsParams

    def talib_parameters(self) -> dict[str, Any]:
        p = self.params
        return {"timeperiod": p.period, "nbdevup": p.nbdev_up, "nbdevdn": p.nbdev_dn, "matype": 0}


class MovingAverageParams(PluginParams):
    period: int = Field(20, ge=2, le=1000, description="Bars in the average")
    column: PriceColumn = "close"


@feature_plugins.register
class Sma(TalibPlugin):
    key = "technical.sma"
    description = "Simple moving average."
    function, outputs = "SMA", ("sma",)
    Params = MovingAverageParams


@feature_plugins.register
class Ema(TalibPlugin):
    key = "technical.ema"
    description = "Exponential moving average."
    function, outputs, recursive = "EMA", ("ema",), True
    Params = MovingAverageParams


class StochParams(PluginParams):
    fastk_period: int = Field(14, ge=1, le=1000)
    slowk_period: int = Field(3, ge=1, le=1000)
    slowd_period: int = Field(3, ge=1, le=1000)


@feature_plugins.register
class Stoch(TalibPlugin):
    key = "technical.stoch"
    description = "Slow stochastic oscillator %K and %D (simple moving averages), 0 to 100."
    function, outputs = "STOCH", ("stoch_k", "stoch_d")
    inputs = ("high", "low", "close")
    Params = StochParams

    def talib_parameters(self) -> dict[str, Any]:
        p = self.params
        return {
            "fastk_period": p.fastk_period,
            "slowk_period": p.slowk_period,
            "slowk_matype": 0,
            "slowd_period": p.slowd_period,
            "slowd_matype": 0,
        }


@feature_plugins.register
class Adx(TalibPlugin):
    key = "technical.adx"
    description = "Average Directional Index (Wilder smoothing), 0 to 100."
    function, outputs, recursive = "ADX", ("adx",), True
    inputs = ("high", "low", "close")
    Params = PeriodParams


class NoParams(PluginParams):
    pass


@feature_plugins.register
class Obv(TalibPlugin):
    key = "technical.obv"
    description = "On-Balance Volume: cumulative volume signed by the close-to-close move."
    function, outputs, recursive = "OBV", ("obv",), True
    inputs = ("close", "volume")
    Params = NoParams

    def talib_parameters(self) -> dict[str, Any]:
        return {}


class RocParams(PluginParams):
    period: int = Field(10, ge=1, le=1000)
    column: PriceColumn = "close"


@feature_plugins.register
class Roc(TalibPlugin):
    key = "technical.roc"
    description = "Rate of change in percent: 100 * (x[t] / x[t - period] - 1)."
    function, outputs = "ROC", ("roc",)
    Params = RocParams


@feature_plugins.register
class Willr(TalibPlugin):
    key = "technical.willr"
    description = "Williams %R, -100 to 0."
    function, outputs = "WILLR", ("willr",)
    inputs = ("high", "low", "close")
    Params = PeriodParams


@feature_plugins.register
class Cci(TalibPlugin):
    key = "technical.cci"
    description = "Commodity Channel Index."
    function, outputs = "CCI", ("cci",)
    inputs = ("high", "low", "close")
    Params = PeriodParams


@feature_plugins.register
class Mfi(TalibPlugin):
    key = "technical.mfi"
    description = "Money Flow Index (volume-weighted RSI), 0 to 100."
    function, outputs = "MFI", ("mfi",)
    inputs = ("high", "low", "close", "volume")
    Params = PeriodParams
