"""Statistical transforms of prices and returns over trailing windows (pandas rolling
kernels, so every value at t uses bars up to t only)."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.features.base import FeatureInputs, FeaturePlugin, PriceColumn, feature_plugins
from alphaforge.plugins.features.transforms import log_returns, simple_returns, zscore


def _annualized_volatility(close: np.ndarray, window: int, annualization: int) -> np.ndarray:
    """sqrt(annualization) * rolling sample std (ddof 1) of one-bar log returns over
    ``window`` returns: the one volatility convention of this module."""
    r = pd.Series(log_returns(close))
    return r.rolling(window).std().to_numpy() * np.sqrt(annualization)


class StatisticalPlugin(FeaturePlugin):
    category = "statistical"
    libraries = ("numpy", "pandas")

    def bar_fields(self) -> tuple[str, ...]:
        """Close (to close), or the bar column the definition names."""
        return (getattr(self.params, "column", "close"),)


class PeriodParams(PluginParams):
    period: int = Field(1, ge=1, le=1000, description="Bars between the two closes")


@feature_plugins.register
class Returns(StatisticalPlugin):
    key = "statistical.returns"
    description = "Simple return over `period` bars: close[t] / close[t - period] - 1."
    outputs = ("returns",)
    Params = PeriodParams

    @property
    def lookback(self) -> int:
        return self.params.period

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        return {"returns": simple_returns(inputs.bars.close, self.params.period)}


@feature_plugins.register
class LogReturns(StatisticalPlugin):
    key = "statistical.log_returns"
    description = "Log return over `period` bars: log(close[t] / close[t - period])."
    outputs = ("log_returns",)
    Params = PeriodParams

    @property
    def lookback(self) -> int:
        return self.params.period

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        return {"log_returns": log_returns(inputs.bars.close, self.params.period)}


class MomentumParams(PluginParams):
    window: int = Field(20, ge=1, le=2000, description="Bars back to the reference close")
    skip: int = Field(0, ge=0, le=1000, description="Most recent bars left out (e.g. 12-1 momentum)")

    @model_validator(mode="after")
    def _skip_inside_window(self) -> MomentumParams:
        if self.skip >= self.window:
            raise ValueError("skip must be smaller than window")
        return self


@feature_plugins.register
class Momentum(StatisticalPlugin):
    key = "statistical.momentum"
    description = "Price momentum: close[t - skip] / close[t - window] - 1."
    outputs = ("momentum",)
    Params = MomentumParams

    @property
    def lookback(self) -> int:
        return self.params.window

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        close, w, s = inputs.bars.close, self.params.window, self.params.skip
        out = np.full(len(close), np.nan)
        if len(close) > w:
            out[w:] = close[w - s: len(close) - s] / close[: len(close) - w] - 1.0
        return {"momentum": out}


class WindowColumnParams(PluginParams):
    window: int = Field(20, ge=2, le=5000, description="Bars in the trailing window")
    column: PriceColumn = "close"


@feature_plugins.register
class ZScore(StatisticalPlugin):
    key = "statistical.z_score"
    description = "(x - rolling mean) / rolling sample std of a bar column; NaN on a flat window."
    outputs = ("z_score",)
    Params = WindowColumnParams

    @property
    def lookback(self) -> int:
        return self.params.window - 1

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        return {"z_score": zscore(inputs.bars.column(self.params.column), self.params.window)}


class WindowParams(PluginParams):
    window: int = Field(20, ge=2, le=5000, description="Bars in the trailing window")


@feature_plugins.register
class MeanReversion(StatisticalPlugin):
    key = "statistical.mean_reversion"
    description = "Distance of the close from its rolling mean in rolling standard deviations."
    outputs = ("mean_reversion",)
    Params = WindowParams

    @property
    def lookback(self) -> int:
        return self.params.window - 1

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        return {"mean_reversion": zscore(inputs.bars.close, self.params.window)}


#: Bars per year, the same meaning wherever a volatility is annualized. The default is 252
#: whatever the timeframe: set 52 for weekly bars, 252 x bars per session for hourly ones.
Annualization = Annotated[int, Field(ge=1, le=1_000_000, description="Bars per year (252 daily)")]


class VolatilityParams(PluginParams):
    window: int = Field(20, ge=2, le=5000, description="Returns in the trailing window")
    annualization: Annualization = 252


@feature_plugins.register
class RealizedVolatility(StatisticalPlugin):
    key = "statistical.realized_volatility"
    description = "Annualized rolling standard deviation of log returns."
    outputs = ("realized_volatility",)
    Params = VolatilityParams

    @property
    def lookback(self) -> int:
        return self.params.window

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        p = self.params
        return {"realized_volatility": _annualized_volatility(inputs.bars.close, p.window, p.annualization)}


class AutocorrParams(PluginParams):
    window: int = Field(60, ge=5, le=5000, description="Return pairs in the trailing window")
    lag: int = Field(1, ge=1, le=250, description="Lag in bars")

    @model_validator(mode="after")
    def _lag_fits(self) -> AutocorrParams:
        if self.lag > self.window - 3:
            raise ValueError("lag must be at most window - 3")
        return self


@feature_plugins.register
class Autocorr(StatisticalPlugin):
    key = "statistical.autocorr"
    description = "Rolling Pearson autocorrelation of simple returns at `lag`."
    outputs = ("autocorr",)
    Params = AutocorrParams

    @property
    def lookback(self) -> int:
        return self.params.window + self.params.lag

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        r = pd.Series(simple_returns(inputs.bars.close))
        corr = r.rolling(self.params.window).corr(r.shift(self.params.lag)).to_numpy()
        return {"autocorr": corr}


class MomentWindowParams(PluginParams):
    window: int = Field(60, ge=4, le=5000, description="Returns in the trailing window")


@feature_plugins.register
class Skew(StatisticalPlugin):
    key = "statistical.skew"
    description = "Rolling sample skewness of simple returns."
    outputs = ("skew",)
    Params = MomentWindowParams

    @property
    def lookback(self) -> int:
        return self.params.window

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        r = pd.Series(simple_returns(inputs.bars.close))
        return {"skew": r.rolling(self.params.window).skew().to_numpy()}


@feature_plugins.register
class Kurtosis(StatisticalPlugin):
    key = "statistical.kurtosis"
    description = "Rolling sample excess kurtosis of simple returns."
    outputs = ("kurtosis",)
    Params = MomentWindowParams

    @property
    def lookback(self) -> int:
        return self.params.window

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        r = pd.Series(simple_returns(inputs.bars.close))
        return {"kurtosis": r.rolling(self.params.window).kurt().to_numpy()}


class HurstParams(PluginParams):
    window: int = Field(100, ge=20, le=5000, description="Bars in the trailing window")
    min_lag: int = Field(2, ge=1, le=500)
    max_lag: int = Field(20, ge=2, le=1000)

    @model_validator(mode="after")
    def _lags_fit(self) -> HurstParams:
        if self.min_lag >= self.max_lag:
            raise ValueError("min_lag must be smaller than max_lag")
        if self.max_lag > self.window // 2:
            raise ValueError("max_lag must be at most window / 2")
        return self


@feature_plugins.register
class HurstExponent(StatisticalPlugin):
    key = "statistical.hurst_exponent"
    description = (
        "Rolling Hurst exponent: slope of log std(x[s] - x[s-L]) on log L for lags "
        "min_lag..max_lag, x = log close, over the trailing window (0.5 = random walk)."
    )
    outputs = ("hurst_exponent",)
    Params = HurstParams

    @property
    def lookback(self) -> int:
        return self.params.window - 1

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        p = self.params
        x = pd.Series(np.log(inputs.bars.close))
        lags = np.arange(p.min_lag, p.max_lag + 1)
        log_lags = np.log(lags)
        weights = (log_lags - log_lags.mean()) / ((log_lags - log_lags.mean()) ** 2).sum()
        hurst = np.zeros(len(x))
        for lag, weight in zip(lags, weights):
            # Differences inside the window ending at t: s in [t - window + 1 + lag, t].
            tau = x.diff(int(lag)).rolling(p.window - int(lag)).std().to_numpy()
            with np.errstate(divide="ignore"):
                hurst += weight * np.log(tau)
        hurst[~np.isfinite(hurst)] = np.nan
        return {"hurst_exponent": hurst}


class RegimeParams(PluginParams):
    window: int = Field(20, ge=2, le=1000, description="Returns in the volatility window")
    annualization: Annualization = 252
    rank_window: int = Field(252, ge=10, le=5000, description="Volatility values the percentile is taken over")
    low_threshold: float = Field(0.33, gt=0, lt=1, description="Percentile at or below which the regime is low (0)")
    high_threshold: float = Field(0.67, gt=0, lt=1, description="Percentile at or above which the regime is high (2)")

    @model_validator(mode="after")
    def _ordered(self) -> RegimeParams:
        if self.low_threshold >= self.high_threshold:
            raise ValueError("low_threshold must be smaller than high_threshold")
        return self


@feature_plugins.register
class VolatilityRegime(StatisticalPlugin):
    key = "statistical.volatility_regime"
    description = (
        "Annualized rolling volatility of log returns (as statistical.realized_volatility) and "
        "its regime from its percentile within a trailing window: 0 low, 1 normal, 2 high."
    )
    #: 2: log returns and the `annualization` parameter (1: simple returns, sqrt(252) always).
    version = "2"
    outputs = ("realized_vol", "volatility_regime")
    Params = RegimeParams

    @property
    def lookback(self) -> int:
        return self.params.window + self.params.rank_window - 1

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        p = self.params
        vol = _annualized_volatility(inputs.bars.close, p.window, p.annualization)
        # A percentile rank: a constant factor (the annualization) keeps the order and so the regime.
        pct = pd.Series(vol).rolling(p.rank_window).rank(pct=True).to_numpy()
        regime = np.where(pct <= p.low_threshold, 0.0, np.where(pct >= p.high_threshold, 2.0, 1.0))
        regime[np.isnan(pct)] = np.nan
        return {"realized_vol": vol, "volatility_regime": regime}
