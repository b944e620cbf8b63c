"""statistical.realized_volatility and statistical.volatility_regime: one convention.

Both annualize the rolling sample standard deviation of one-bar log returns with
sqrt(annualization). The expected values are computed here by hand (numpy windows over
the real GSPC closes, daily and aggregated to weeks), not with the plugins' helper.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from alphaforge.ingestion.bars import parse_bars_upload
from alphaforge.marketdata.bars import aggregate_weekly
from alphaforge.ingestion.bundled import sample_bars
from alphaforge.plugins.features import Bars, FeatureInputs, feature_plugins

REGIME = "statistical.volatility_regime"
REALIZED = "statistical.realized_volatility"


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    frame, report = parse_bars_upload(sample_bars("GSPC"))
    assert report.ok
    return frame


@pytest.fixture(scope="module")
def weekly(daily: pd.DataFrame) -> pd.DataFrame:
    return aggregate_weekly(daily)


def _compute(key: str, frame: pd.DataFrame, timeframe: str, **parameters: object) -> dict[str, np.ndarray]:
    plugin = feature_plugins.get(key).from_parameters(parameters)
    return plugin.compute(FeatureInputs(Bars.from_frame(frame), timeframe=timeframe))


def _by_hand(close: np.ndarray, window: int, annualization: int) -> np.ndarray:
    """sqrt(annualization) x sample std (ddof=1) of the last `window` log returns; NaN
    until `window` returns exist (bar `window`)."""
    log_returns = np.log(close[1:]) - np.log(close[:-1])
    out = np.full(len(close), np.nan)
    out[window:] = np.sqrt(annualization) * sliding_window_view(log_returns, window).std(axis=1, ddof=1)
    return out


CASES = [("1d", 20, 252), ("1d", 60, 252), ("1w", 13, 52), ("1w", 26, 52)]


@pytest.mark.parametrize(("timeframe", "window", "annualization"), CASES)
def test_realized_vol_is_annualized_std_of_log_returns(
    daily: pd.DataFrame, weekly: pd.DataFrame, timeframe: str, window: int, annualization: int
) -> None:
    frame = daily if timeframe == "1d" else weekly
    expected = _by_hand(frame["close"].to_numpy(), window, annualization)
    regime = _compute(REGIME, frame, timeframe, window=window, annualization=annualization, rank_window=52)
    realized = _compute(REALIZED, frame, timeframe, window=window, annualization=annualization)
    for got in (regime["realized_vol"], realized["realized_volatility"]):
        assert np.array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize(("timeframe", "window", "annualization"), [*CASES, ("1d", 20, 1638), ("1w", 2, 1)])
def test_regime_realized_vol_equals_realized_volatility_exactly(
    daily: pd.DataFrame, weekly: pd.DataFrame, timeframe: str, window: int, annualization: int
) -> None:
    frame = daily if timeframe == "1d" else weekly
    regime = _compute(REGIME, frame, timeframe, window=window, annualization=annualization)
    realized = _compute(REALIZED, frame, timeframe, window=window, annualization=annualization)
    assert np.array_equal(regime["realized_vol"], realized["realized_volatility"], equal_nan=True)


def test_defaults_are_the_same_and_the_old_convention_is_gone(daily: pd.DataFrame) -> None:
    regime_cls, realized_cls = feature_plugins.get(REGIME), feature_plugins.get(REALIZED)
    assert regime_cls.version == "2"  # 1 used simple returns and sqrt(252) whatever the bars
    regime_schema = regime_cls.Params.model_json_schema()["properties"]["annualization"]
    assert regime_schema == realized_cls.Params.model_json_schema()["properties"]["annualization"]
    assert regime_schema["default"] == 252
    assert regime_cls.from_parameters({}).resolved_parameters()["annualization"] == 252
    # Defaults against defaults: equal, and not the simple-return volatility of version 1.
    got = _compute(REGIME, daily, "1d")["realized_vol"]
    assert np.array_equal(got, _compute(REALIZED, daily, "1d")["realized_volatility"], equal_nan=True)
    close = daily["close"]
    simple = (close.pct_change().rolling(20).std() * np.sqrt(252)).to_numpy()
    assert np.nanmax(np.abs(got / simple - 1)) > 1e-3


def test_weekly_bars_need_their_own_annualization(daily: pd.DataFrame, weekly: pd.DataFrame) -> None:
    """With 52 a year, weekly volatility is on the daily scale; with the daily 252 it is
    sqrt(252 / 52) ~ 2.2 times too large (what version 1 always did)."""
    day = np.nanmedian(_compute(REGIME, daily, "1d", window=60)["realized_vol"])
    week = np.nanmedian(_compute(REGIME, weekly, "1w", window=13, annualization=52)["realized_vol"])
    week_252 = np.nanmedian(_compute(REGIME, weekly, "1w", window=13)["realized_vol"])
    assert 0.8 < week / day < 1.25
    assert week_252 / week == pytest.approx(np.sqrt(252 / 52), rel=1e-12)


def _regime_by_hand(vol: np.ndarray, rank_window: int, low: float, high: float) -> np.ndarray:
    """Percentile (average rank / n) of each value among the last `rank_window` values,
    itself included; 0 at or below `low`, 2 at or above `high`, else 1."""
    out = np.full(len(vol), np.nan)
    for t in range(len(vol)):
        window = vol[t - rank_window + 1: t + 1] if t + 1 >= rank_window else np.array([np.nan])
        if np.isnan(window).any():
            continue
        v = vol[t]
        pct = ((window < v).sum() + ((window == v).sum() + 1) / 2) / rank_window
        out[t] = 0.0 if pct <= low else 2.0 if pct >= high else 1.0
    return out


@pytest.mark.parametrize(("timeframe", "window", "annualization", "rank_window"), [("1d", 20, 252, 252), ("1w", 13, 52, 104)])
def test_regime_is_the_percentile_of_the_volatility_in_its_trailing_window(
    daily: pd.DataFrame, weekly: pd.DataFrame, timeframe: str, window: int, annualization: int, rank_window: int
) -> None:
    frame = daily if timeframe == "1d" else weekly
    got = _compute(REGIME, frame, timeframe, window=window, annualization=annualization, rank_window=rank_window)
    # Ranked from the plugin's own realized_vol (checked against the by-hand values above):
    # two rounding paths could order two equal volatilities differently.
    expected = _regime_by_hand(got["realized_vol"], rank_window, 0.33, 0.67)
    assert np.array_equal(np.isnan(got["volatility_regime"]), np.isnan(expected))
    mismatch = np.flatnonzero(~np.isnan(expected) & (got["volatility_regime"] != expected))
    assert len(mismatch) == 0, f"regime differs at {len(mismatch)} bars, first {mismatch[:5]}"
    assert set(np.unique(expected[~np.isnan(expected)])) == {0.0, 1.0, 2.0}


def test_the_regime_does_not_depend_on_the_annualization(daily: pd.DataFrame) -> None:
    a = _compute(REGIME, daily, "1d", annualization=252)
    b = _compute(REGIME, daily, "1d", annualization=52)
    assert np.array_equal(a["volatility_regime"], b["volatility_regime"], equal_nan=True)
    np.testing.assert_allclose(a["realized_vol"], b["realized_vol"] * np.sqrt(252 / 52), rtol=1e-12)
