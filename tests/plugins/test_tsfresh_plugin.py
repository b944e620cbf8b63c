"""automated.tsfresh: a fixed column set, values checked against pandas, causal, chunk- and
run-independent, and definitions validated up front."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from alphaforge.errors import InvalidInput
from alphaforge.ingestion.bars import parse_bars_upload
from alphaforge.ingestion.bundled import sample_bars
from alphaforge.plugins.features import Bars, FeatureInputs, feature_plugins
from alphaforge.plugins.features import automated

Tsfresh = feature_plugins.get("automated.tsfresh")
N_BARS = 300
WINDOW = 20
CUSTOM = {"feature_set": "custom", "calculators": ["mean", "standard_deviation", "skewness", "autocorrelation"]}


@pytest.fixture(scope="module")
def gspc_frame() -> pd.DataFrame:
    frame, report = parse_bars_upload(sample_bars("GSPC"))
    assert report.ok
    return frame.iloc[:N_BARS]


@pytest.fixture(scope="module")
def gspc(gspc_frame: pd.DataFrame) -> Bars:
    return Bars.from_frame(gspc_frame)


def _constant_bars(n: int = N_BARS, price: float = 100.0) -> Bars:
    flat = np.full(n, price)
    timestamps = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC").asi8
    return Bars(timestamps=timestamps, open=flat, high=flat, low=flat, close=flat.copy(), volume=np.full(n, 1e6))


def _run(params: dict[str, Any], bars: Bars) -> dict[str, np.ndarray]:
    return Tsfresh.from_parameters(params).compute(FeatureInputs(bars))


def _assert_bitwise_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].tobytes() == b[name].tobytes(), name


@pytest.mark.parametrize("params", [{"window": WINDOW}, {"window": WINDOW, **CUSTOM}], ids=["minimal", "custom"])
def test_columns_are_fixed_by_the_definition_not_by_the_data(params: dict[str, Any], gspc: Bars) -> None:
    plugin = Tsfresh.from_parameters(params)
    on_gspc = plugin.compute(FeatureInputs(gspc))
    on_flat = plugin.compute(FeatureInputs(_constant_bars()))
    on_too_few = plugin.compute(FeatureInputs(_constant_bars(n=WINDOW - 1)))
    assert list(on_gspc) == list(on_flat) == list(on_too_few) == plugin.output_columns
    assert all(np.isnan(v).all() for v in on_too_few.values())
    for values in (on_gspc, on_flat):
        for name, array in values.items():
            assert array.dtype == np.float64 and array.shape == (N_BARS,), name


def test_an_undefined_feature_is_a_nan_column_not_a_dropped_one(gspc: Bars) -> None:
    # A flat window has no autocorrelation: tsfresh gives NaN, the column stays.
    flat = _run({"window": WINDOW, **CUSTOM}, _constant_bars())
    assert np.isnan(flat["close__autocorrelation__lag_1"]).all()
    assert np.array_equal(flat["close__standard_deviation"][WINDOW - 1:], np.zeros(N_BARS - WINDOW + 1))
    assert not np.isnan(_run({"window": WINDOW, **CUSTOM}, gspc)["close__autocorrelation__lag_1"][WINDOW - 1:]).any()


def test_minimal_values_match_pandas_rolling(gspc: Bars) -> None:
    values = _run({"window": WINDOW}, gspc)
    rolling = pd.Series(gspc.close).rolling(WINDOW)
    expected = {
        "close__mean": rolling.mean(),
        "close__maximum": rolling.max(),
        "close__minimum": rolling.min(),
        "close__median": rolling.median(),
        "close__sum_values": rolling.sum(),
        # tsfresh's standard_deviation is np.std: the population std (ddof=0).
        "close__standard_deviation": rolling.std(ddof=0),
        "close__variance": rolling.var(ddof=0),
    }
    for name, series in expected.items():
        np.testing.assert_allclose(values[name], series.to_numpy(), rtol=1e-9, atol=1e-9, err_msg=name)
    assert np.array_equal(values["close__length"][WINDOW - 1:], np.full(N_BARS - WINDOW + 1, float(WINDOW)))


def test_returns_column_is_close_to_close(gspc: Bars) -> None:
    values = _run({"window": WINDOW, "column": "returns"}, gspc)
    returns = pd.Series(gspc.close).pct_change()
    np.testing.assert_allclose(values["returns__mean"], returns.rolling(WINDOW).mean().to_numpy(), rtol=1e-9, atol=1e-12)
    log_values = _run({"window": WINDOW, "column": "log_returns"}, gspc)
    log_returns = np.log(pd.Series(gspc.close)).diff()
    np.testing.assert_allclose(
        log_values["log_returns__maximum"], log_returns.rolling(WINDOW).max().to_numpy(), rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("params", [{"window": WINDOW, "column": "returns"}, {"window": 11, **CUSTOM}], ids=["minimal", "custom"])
def test_chunk_size_does_not_change_values(params: dict[str, Any], gspc: Bars, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _run(params, gspc)  # one chunk: fewer windows than CHUNK_WINDOWS
    monkeypatch.setattr(automated, "CHUNK_WINDOWS", 7)
    _assert_bitwise_equal(whole, _run(params, gspc))


@pytest.mark.parametrize("column", ["close", "log_returns"])
def test_values_up_to_t_ignore_every_bar_after_t(column: str, gspc_frame: pd.DataFrame) -> None:
    params = {"window": WINDOW, "column": column}
    before = _run(params, Bars.from_frame(gspc_frame))
    for t in np.random.default_rng(7).integers(WINDOW, N_BARS - 1, size=3):
        changed = gspc_frame.copy()
        changed.iloc[t + 1:, changed.columns.get_loc("close")] *= 1.5
        after = _run(params, Bars.from_frame(changed))
        for name in before:
            assert before[name][: t + 1].tobytes() == after[name][: t + 1].tobytes(), (name, t)
        assert not np.array_equal(before[f"{column}__maximum"], after[f"{column}__maximum"], equal_nan=True)


@pytest.mark.parametrize(("column", "lookback"), [("close", WINDOW - 1), ("returns", WINDOW), ("log_returns", WINDOW)])
def test_lookback_is_exactly_the_warm_up(column: str, lookback: int, gspc: Bars) -> None:
    plugin = Tsfresh.from_parameters({"window": WINDOW, "column": column})
    assert plugin.lookback == lookback
    matrix = np.column_stack(list(plugin.compute(FeatureInputs(gspc)).values()))
    assert np.isnan(matrix[:lookback]).all()
    assert not np.isnan(matrix[lookback]).any()


def test_a_window_with_a_gap_is_not_computed(gspc: Bars) -> None:
    close = gspc.close.copy()
    close[100] = np.nan
    holed = Bars(gspc.timestamps, gspc.open, gspc.high, gspc.low, close, gspc.volume)
    values = _run({"window": WINDOW}, holed)["close__mean"]
    assert np.isnan(values[100: 100 + WINDOW]).all()
    assert not np.isnan(values[WINDOW - 1: 100]).any() and not np.isnan(values[100 + WINDOW:]).any()


def test_custom_calculators_take_efficient_settings(gspc: Bars) -> None:
    plugin = Tsfresh.from_parameters({"window": WINDOW, **CUSTOM})
    columns = plugin.output_columns
    expected = ["close__mean", "close__standard_deviation", "close__skewness"] + [
        f"close__autocorrelation__lag_{lag}" for lag in range(10)
    ]
    assert columns == expected
    values = plugin.compute(FeatureInputs(gspc))
    minimal = _run({"window": WINDOW}, gspc)
    assert values["close__mean"].tobytes() == minimal["close__mean"].tobytes()
    np.testing.assert_allclose(
        values["close__skewness"], pd.Series(gspc.close).rolling(WINDOW).skew().to_numpy(), rtol=1e-6, atol=1e-8
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"feature_set": "custom", "calculators": ["mean", "no_such_calculator"]}, "no_such_calculator"),
        ({"feature_set": "custom", "calculators": ["sample_entropy"]}, "sample_entropy"),
        ({"feature_set": "custom", "calculators": ["linear_trend_timewise"]}, "linear_trend_timewise"),
        ({"feature_set": "custom", "calculators": ["mean", "mean"]}, "more than once"),
        ({"feature_set": "custom"}, "needs calculators"),
        ({"feature_set": "custom", "calculators": []}, "calculators"),
        ({"calculators": ["mean"]}, "only allowed with feature_set 'custom'"),
        ({"feature_set": "everything"}, "feature_set"),
        ({"window": 9}, "window"),
        ({"window": 501}, "window"),
        ({"column": "vwap"}, "column"),
        ({"lag": 3}, "unknown parameter 'lag'"),
    ],
)
def test_bad_definitions_are_rejected(params: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        Tsfresh.from_parameters(params)
    if "no_such_calculator" in message:
        assert "standard_deviation" in caught.value.message  # lists valid names


def test_same_bars_same_values(gspc: Bars, gspc_frame: pd.DataFrame) -> None:
    _assert_bitwise_equal(_run({"window": WINDOW}, gspc), _run({"window": WINDOW}, Bars.from_frame(gspc_frame.copy())))
