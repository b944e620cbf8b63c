"""evaluation.signals against independent computations: alphalens-reloaded (quantile buckets,
quantile mean returns, factor-weighted long-short returns, per-date IC), empyrical-reloaded
(Sharpe, Sortino, annual return and volatility, max drawdown), and hand-written examples for
positions, turnover and costs (net = gross - cost_bps / 1e4 x turnover, period by period)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alphaforge.evaluation.signals import evaluate_signal_frame, evaluate_signals, quantile_buckets

alphalens_utils = pytest.importorskip("alphalens.utils")
alphalens_performance = pytest.importorskip("alphalens.performance")
empyrical = pytest.importorskip("empyrical")


def synthetic_panel(seed: int, n_dates: int = 30, n_symbols: int = 8, drop: int = 10) -> pd.DataFrame:
    """A long frame (timestamp, symbol, prediction, fwd_1..fwd_3) with ``drop`` rows removed
    (symbols missing on some dates); predictions are distinct and mildly informative."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=n_dates)
    frame = pd.DataFrame({
        "timestamp": np.repeat(dates, n_symbols),
        "symbol": np.tile([f"S{i}" for i in range(n_symbols)], n_dates),
    })
    n = len(frame)
    for h in (1, 2, 3):
        frame[f"fwd_{h}"] = rng.standard_t(4, n) * 0.01 * math.sqrt(h)
    frame["prediction"] = frame["fwd_3"] + rng.normal(0, 0.03, n)
    frame = frame.drop(index=rng.choice(n, drop, replace=False))
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # row order must not matter


def alphalens_factor_data(frame: pd.DataFrame, n_quantiles: int) -> pd.DataFrame:
    index = pd.MultiIndex.from_arrays([frame["timestamp"], frame["symbol"]], names=["date", "asset"])
    factor = pd.Series(frame["prediction"].to_numpy(), index=index)
    forward = pd.DataFrame({f"{h}D": frame[f"fwd_{h}"].to_numpy() for h in (1, 2, 3)}, index=index)
    return alphalens_utils.get_clean_factor(factor, forward.sort_index(), quantiles=n_quantiles, max_loss=0)


@pytest.mark.parametrize("n_quantiles", [2, 3, 5])
def test_quantile_buckets_are_alphalens_qcut_buckets(n_quantiles: int) -> None:
    frame = synthetic_panel(1)
    factor_data = alphalens_factor_data(frame, n_quantiles)
    matrix = frame.pivot(index="timestamp", columns="symbol", values="prediction")
    buckets = pd.DataFrame(quantile_buckets(matrix.to_numpy(), n_quantiles), index=matrix.index,
                           columns=matrix.columns).stack()
    buckets = buckets[buckets > 0]
    expected = factor_data["factor_quantile"].astype(int)
    assert buckets.to_numpy().tolist() == expected.reindex(buckets.index.rename(["date", "asset"])).tolist()
    assert len(buckets) == len(expected)


@pytest.mark.parametrize("horizon", [1, 3])
def test_equal_weighted_long_short_is_half_the_alphalens_quantile_spread(horizon: int) -> None:
    frame = synthetic_panel(2)
    factor_data = alphalens_factor_data(frame, 5)
    report = evaluate_signal_frame(frame, forward_return=f"fwd_{horizon}", horizon=horizon,
                                   ic_columns={1: "fwd_1", 2: "fwd_2", 3: "fwd_3"})
    means = alphalens_performance.mean_return_by_quantile(factor_data, by_date=True, demeaned=False)[0]
    by_quantile = means[f"{horizon}D"].unstack("factor_quantile")
    rebalance = sorted(frame["timestamp"].unique())[::horizon]
    expected_quantiles = by_quantile.loc[rebalance]
    assert report.n_periods == len(rebalance)
    np.testing.assert_allclose(report.quantile_returns.to_numpy(), expected_quantiles.to_numpy(), rtol=1e-12)
    spread = 0.5 * (expected_quantiles[5] - expected_quantiles[1])
    np.testing.assert_allclose(report.periods["gross"].to_numpy(), spread.to_numpy(), rtol=1e-12, atol=1e-15)
    # dollar neutral, gross exposure 1 on every date
    np.testing.assert_allclose(report.weights.sum(axis=1), 0.0, atol=1e-15)
    np.testing.assert_allclose(report.weights.abs().sum(axis=1), 1.0, rtol=1e-12)
    # IC decay: alphalens' per-date Spearman IC, averaged, for each horizon passed
    ic = alphalens_performance.factor_information_coefficient(factor_data).mean()
    assert report.ic_decay == pytest.approx({h: ic[f"{h}D"] for h in (1, 2, 3)}, rel=1e-12)


@pytest.mark.parametrize("horizon", [1, 2])
def test_prediction_weighted_long_short_is_alphalens_factor_returns_on_the_two_legs(horizon: int) -> None:
    frame = synthetic_panel(3)
    factor_data = alphalens_factor_data(frame, 5)
    legs = factor_data[factor_data["factor_quantile"].isin([1, 5])]
    expected = alphalens_performance.factor_returns(legs, demeaned=True, equal_weight=False)[f"{horizon}D"]
    report = evaluate_signal_frame(frame, forward_return=f"fwd_{horizon}", horizon=horizon, weighting="prediction")
    rebalance = sorted(frame["timestamp"].unique())[::horizon]
    np.testing.assert_allclose(report.periods["gross"].to_numpy(), expected.loc[rebalance].to_numpy(),
                               rtol=1e-12, atol=1e-15)
    weights = alphalens_performance.factor_weights(legs, demeaned=True, equal_weight=False)
    mine = report.weights.stack()
    mine = mine[mine != 0]
    assert mine.to_numpy() == pytest.approx(
        weights.reindex(mine.index.rename(["date", "asset"])).to_numpy(), rel=1e-12)


def test_statistics_are_empyricals() -> None:
    frame = synthetic_panel(4, n_dates=400, n_symbols=10, drop=0)
    for horizon in (1, 3):
        report = evaluate_signal_frame(frame, forward_return=f"fwd_{horizon}", horizon=horizon, cost_bps=7.5,
                                       bars_per_year=252)
        net = report.periods["net"]
        ppy = 252 / horizon
        assert report.periods_per_year == ppy
        assert report.sharpe == pytest.approx(empyrical.sharpe_ratio(net, annualization=ppy), rel=1e-10)
        assert report.sortino == pytest.approx(empyrical.sortino_ratio(net, annualization=ppy), rel=1e-10)
        assert report.annual_return == pytest.approx(empyrical.annual_return(net, annualization=ppy), rel=1e-10)
        assert report.annual_volatility == pytest.approx(empyrical.annual_volatility(net, annualization=ppy),
                                                         rel=1e-10)
        # empyrical's drawdown starts at the first period's value; ours at the starting capital 1
        assert report.max_drawdown == pytest.approx(empyrical.max_drawdown(pd.concat([pd.Series([0.0]), net])),
                                                    rel=1e-10)
        assert report.gross_sharpe == pytest.approx(
            empyrical.sharpe_ratio(report.periods["gross"], annualization=ppy), rel=1e-10)
        np.testing.assert_allclose(report.equity, empyrical.cum_returns(net, starting_value=1.0), rtol=1e-12)
        assert report.hit_rate == pytest.approx(float((net > 0).mean()))


def test_max_drawdown_counts_a_loss_in_the_first_period() -> None:
    stamps = pd.bdate_range("2022-01-03", periods=4)
    report = evaluate_signals([1.0, 1.0, 1.0, 1.0], [-0.1, 0.05, -0.02, 0.01], timestamps=stamps)
    equity = [0.9, 0.945, 0.9261, 0.935361]
    np.testing.assert_allclose(report.equity, equity, rtol=1e-12)
    assert report.max_drawdown == pytest.approx(-0.1)


def test_costs_turnover_and_non_overlapping_periods_by_hand() -> None:
    """3 symbols, 6 dates, horizon 2: rebalances on dates 0, 2 and 4 only; 3 quantiles, so one
    symbol long (+0.5) and one short (-0.5) each time. Dates 1, 3, 5 would give other positions
    and carry huge returns: they must be ignored."""
    dates = pd.bdate_range("2023-03-01", periods=6)
    preds = {  # date -> (A, B, C)
        0: (3.0, 2.0, 1.0),  # long A, short C
        1: (1.0, 2.0, 3.0),
        2: (2.0, 3.0, 1.0),  # long B, short C
        3: (3.0, 1.0, 2.0),
        4: (1.0, 2.0, 3.0),  # long C, short A
        5: (2.0, 1.0, 3.0),
    }
    fwd = {
        0: (0.02, 0.01, -0.01),
        1: (5.0, -5.0, 5.0),
        2: (0.00, 0.03, 0.01),
        3: (-5.0, 5.0, -5.0),
        4: (0.04, -0.02, 0.01),
        5: (5.0, 5.0, -5.0),
    }
    rows = [(dates[d], s, preds[d][i], fwd[d][i]) for d in range(6) for i, s in enumerate("ABC")]
    frame = pd.DataFrame(rows, columns=["timestamp", "symbol", "prediction", "forward_return"])
    report = evaluate_signal_frame(frame, horizon=2, n_quantiles=3, cost_bps=10.0)

    weights = [[0.5, 0.0, -0.5], [0.0, 0.5, -0.5], [-0.5, 0.0, 0.5]]
    turnover = [1.0, 0.5 + 0.5 + 0.0, 0.5 + 0.5 + 1.0]
    gross = [0.5 * 0.02 - 0.5 * -0.01, 0.5 * 0.03 - 0.5 * 0.01, 0.5 * 0.01 - 0.5 * 0.04]
    net = [g - 10.0 / 1e4 * t for g, t in zip(gross, turnover)]
    assert list(report.periods.index) == [dates[0], dates[2], dates[4]]
    np.testing.assert_allclose(report.weights.to_numpy(), weights)
    assert list(report.weights.columns) == ["A", "B", "C"]
    np.testing.assert_allclose(report.periods["turnover"], turnover)
    np.testing.assert_allclose(report.periods["gross"], gross, rtol=1e-12)
    np.testing.assert_allclose(report.periods["cost"], [0.001, 0.001, 0.002], rtol=1e-12)
    np.testing.assert_allclose(report.periods["net"], net, rtol=1e-12)
    np.testing.assert_allclose(report.equity, np.cumprod(1 + np.array(net)), rtol=1e-12)
    assert report.mean_turnover == pytest.approx(4 / 3)
    assert report.periods_per_year == 126.0
    mean, std = np.mean(net), np.std(net, ddof=1)
    assert report.sharpe == pytest.approx(mean / std * math.sqrt(126))
    assert report.hit_rate == pytest.approx(2 / 3)
    # quantile means per period: one symbol per quantile here
    np.testing.assert_allclose(report.quantile_returns.to_numpy(),
                               [[-0.01, 0.01, 0.02], [0.01, 0.00, 0.03], [0.04, -0.02, 0.01]])


def test_one_symbol_is_a_sign_strategy_by_hand() -> None:
    stamps = pd.bdate_range("2024-01-01", periods=7)
    preds = [0.3, 9.0, -0.2, 9.0, 0.0, 9.0, -0.4]
    fwd = [0.01, 1.0, -0.02, 1.0, 0.05, 1.0, 0.03]
    report = evaluate_signals(preds, fwd, timestamps=stamps, horizon=2, cost_bps=20.0, bars_per_year=250)
    assert report.mode == "sign" and report.quantile_returns is None
    position = [1.0, -1.0, 0.0, -1.0]
    turnover = [1.0, 2.0, 1.0, 1.0]
    gross = [0.01, 0.02, 0.0, -0.03]
    net = [g - 20.0 / 1e4 * t for g, t in zip(gross, turnover)]
    np.testing.assert_allclose(report.weights["position"], position)
    np.testing.assert_allclose(report.periods["turnover"], turnover)
    np.testing.assert_allclose(report.periods["net"], net, rtol=1e-12)
    assert report.periods_per_year == 125.0
    assert report.hit_rate == pytest.approx(2 / 3)  # periods with a position: 3, two with a positive net
    # no cross-section: the IC is the time-series Spearman correlation over every row
    ranks_p = pd.Series(preds).rank()
    ranks_r = pd.Series(fwd).rank()
    assert report.ic_decay[2] == pytest.approx(np.corrcoef(ranks_p, ranks_r)[0, 1])


def test_row_order_and_rows_without_a_forward_return() -> None:
    frame = synthetic_panel(5)
    a = evaluate_signal_frame(frame, forward_return="fwd_1", weighting="prediction", cost_bps=3)
    b = evaluate_signal_frame(frame.sample(frac=1.0, random_state=11), forward_return="fwd_1",
                              weighting="prediction", cost_bps=3)
    pd.testing.assert_frame_equal(a.periods, b.periods)
    assert a.summary() == b.summary()
    # the last bars have predictions but no forward return yet: dropped, not traded
    tail = frame[frame["timestamp"] == frame["timestamp"].max()].assign(
        timestamp=frame["timestamp"].max() + pd.offsets.BDay(1), fwd_1=np.nan)
    c = evaluate_signal_frame(pd.concat([frame, tail]), forward_return="fwd_1", weighting="prediction", cost_bps=3)
    pd.testing.assert_frame_equal(a.periods, c.periods)


def test_dates_without_a_cross_section_hold_nothing() -> None:
    dates = pd.bdate_range("2023-01-02", periods=3)
    frame = pd.DataFrame({
        "timestamp": [dates[0], dates[0], dates[0], dates[1], dates[1], dates[1], dates[2]],
        "symbol": ["A", "B", "C", "A", "B", "C", "A"],
        "prediction": [1.0, 2.0, 3.0, 5.0, 5.0, 5.0, 1.0],  # date 1: all equal; date 2: one symbol
        "forward_return": [0.01, 0.02, 0.03, 0.01, 0.02, 0.03, 0.5],
    })
    report = evaluate_signal_frame(frame, n_quantiles=3)
    np.testing.assert_allclose(report.weights.to_numpy(), [[-0.5, 0, 0.5], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(report.periods["gross"], [0.01, 0.0, 0.0])
    np.testing.assert_allclose(report.periods["turnover"], [1.0, 1.0, 0.0])
    assert report.hit_rate == 1.0


def test_summary_is_json_ready() -> None:
    import json

    report = evaluate_signal_frame(synthetic_panel(6), forward_return="fwd_2", horizon=2,
                                   ic_columns={1: "fwd_1", 2: "fwd_2", 3: "fwd_3"})
    text = json.dumps(report.summary(), allow_nan=False)
    assert set(json.loads(text)["ic_decay"]) == {"1", "2", "3"}
    empty = evaluate_signals([np.nan], [np.nan], timestamps=[1])
    assert empty.n_periods == 0 and empty.sharpe is None
    json.dumps(empty.summary(), allow_nan=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"predictions": [1.0, np.inf]}, "infinite"),
        ({"forward_returns": [0.1]}, "forward_returns has 1 entries"),
        ({"symbols": ["A", "A"], "timestamps": [1, 1]}, "share a"),
        ({"weighting": "rank"}, "weighting must be"),
        ({"n_quantiles": 1}, "n_quantiles must be"),
        ({"horizon": 0}, "horizon must be"),
        ({"cost_bps": -1.0}, "cost_bps"),
        ({"bars_per_year": 0}, "bars_per_year"),
    ],
)
def test_refusals(kwargs: dict, message: str) -> None:
    arguments = {"predictions": [1.0, 2.0], "forward_returns": [0.1, 0.2], "timestamps": [1, 2],
                 "symbols": ["A", "B"], **kwargs}
    with pytest.raises(ValueError, match=message):
        evaluate_signals(arguments.pop("predictions"), arguments.pop("forward_returns"), **arguments)
