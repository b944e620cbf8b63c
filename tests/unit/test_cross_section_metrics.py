"""Cross-sectional IC metrics against an independent per-date scipy loop: ties, NaNs, one-symbol
dates, constant inputs, shuffled rows; None cases; the panel fold and its summary."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from alphaforge.errors import InvalidInput
from alphaforge.evaluation.cross_section import (
    cross_section_metrics,
    ic_by_date,
    panel_fold_metrics,
    summarize_panel,
)
from alphaforge.evaluation.metrics import fold_metrics

CS_KEYS = {
    "cs_ic", "cs_ic_std", "cs_icir", "cs_ic_t_stat",
    "cs_rank_ic", "cs_rank_ic_std", "cs_rank_icir", "cs_rank_ic_t_stat", "cs_n_dates",
}
TOL = dict(rel=1e-12, abs=1e-12)


def reference_daily(timestamps: list, y_true: list[float], y_pred: list[float]) -> dict:
    """Per date: (pearson, spearman) over its finite pairs, by looping and calling scipy;
    dates with < 2 pairs or a constant side are left out."""
    daily = {}
    for date in sorted(set(timestamps)):
        pairs = [
            (a, p)
            for t, a, p in zip(timestamps, y_true, y_pred, strict=True)
            if t == date and math.isfinite(a) and math.isfinite(p)
        ]
        actual = np.array([a for a, _ in pairs])
        predicted = np.array([p for _, p in pairs])
        if len(pairs) < 2 or actual.max() == actual.min() or predicted.max() == predicted.min():
            continue
        daily[date] = (
            float(stats.pearsonr(actual, predicted).statistic),
            float(stats.spearmanr(actual, predicted).statistic),
        )
    return daily


def reference_summary(values: list[float]) -> dict:
    """mean, sample std, mean/std and mean/std*sqrt(n), by hand; None where undefined."""
    n = len(values)
    mean = math.fsum(values) / n if n else None
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n >= 2 else None
    ir = mean / std if std else None
    return {"mean": mean, "std": std, "ir": ir, "t": ir * math.sqrt(n) if ir is not None else None}


def assert_matches_reference(timestamps: list, y_true: list[float], y_pred: list[float]) -> dict:
    daily = reference_daily(timestamps, y_true, y_pred)
    got = cross_section_metrics(np.array(y_true), np.array(y_pred), timestamps=timestamps)
    assert set(got) == CS_KEYS
    assert got["cs_n_dates"] == len(daily)
    for column, prefix in ((0, "cs_ic"), (1, "cs_rank_ic")):
        want = reference_summary([v[column] for v in daily.values()])
        assert got[prefix] == (None if want["mean"] is None else pytest.approx(want["mean"], **TOL))
        assert got[f"{prefix}_std"] == (None if want["std"] is None else pytest.approx(want["std"], **TOL))
        if want["std"] is not None and want["std"] < 1e-9:
            # every daily IC equal (e.g. all +1): the ratio is rounding noise over rounding noise
            assert got[f"{prefix}ir"] is None or abs(got[f"{prefix}ir"]) > 1e6
            continue
        # the ratio's relative error is the std's: the ICs' rounding amplified by |mean| / std
        ratio_tol = dict(rel=1e-12 * max(1.0, abs(want["ir"] or 0.0)), abs=1e-12)
        for key, ref in ((f"{prefix}ir", want["ir"]), (f"{prefix}_t_stat", want["t"])):
            assert got[key] == (None if ref is None else pytest.approx(ref, **ratio_tol)), key
    series = ic_by_date(np.array(y_true), np.array(y_pred), timestamps=timestamps)
    rank_series = ic_by_date(np.array(y_true), np.array(y_pred), timestamps=timestamps, rank=True)
    assert list(series.index) == list(daily)
    assert series.to_numpy() == pytest.approx([v[0] for v in daily.values()], **TOL)
    assert rank_series.to_numpy() == pytest.approx([v[1] for v in daily.values()], **TOL)
    return got


D = [pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(days=i) for i in range(9)]
NAN, INF = float("nan"), float("inf")
# (date, y_true, y_pred), one tuple per row; what each date tests is said beside it
EDGE_ROWS = [
    *[(D[0], a, p) for a, p in [(0.1, 1), (0.1, 2), (0.3, 2), (-0.2, 0), (0.5, 3)]],  # ties on both sides
    *[(D[1], a, p) for a, p in [(0.2, NAN), (-0.1, 0.4), (0.3, 0.1), (NAN, 0.2), (0.05, -0.3)]],  # NaNs dropped
    (D[2], 0.4, 0.9),  # one symbol only: skipped
    *[(D[3], a, 0.25) for a in (0.1, -0.2, 0.3, 0.0)],  # constant predictions: skipped
    *[(D[4], a, p) for a, p in [(0.1, NAN), (NAN, 0.2), (0.3, 0.5)]],  # one finite pair left: skipped
    *[(D[5], 0.0, p) for p in (0.3, -0.1, 0.2)],  # constant actuals: skipped
    *[(D[6], a, p) for a, p in [(0.2, -1.0), (-0.4, 3.0)]],  # two symbols: IC -1
    *[(D[7], a, p) for a, p in [(0.1, INF), (0.2, 0.3), (-0.3, 0.1), (0.05, 0.05), (0.4, -INF)]],  # inf dropped
    *[(D[8], a, p) for a, p in [(1.0, 2.0), (2.0, 1.0), (3.0, 3.0), (3.0, 3.0)]],  # tied pairs
]


def test_edge_dates_against_scipy_loop() -> None:
    timestamps, y_true, y_pred = (list(column) for column in zip(*EDGE_ROWS, strict=True))
    got = assert_matches_reference(timestamps, y_true, y_pred)
    # dates 2, 3, 4, 5 have no IC by construction
    assert got["cs_n_dates"] == 5
    assert list(ic_by_date(y_true, y_pred, timestamps=timestamps).index) == [D[0], D[1], D[6], D[7], D[8]]
    assert ic_by_date(y_true, y_pred, timestamps=timestamps)[D[6]] == -1.0
    assert all(type(v) is float for k, v in got.items() if k != "cs_n_dates")
    json.dumps(got, allow_nan=False)


def test_tiny_and_huge_scales() -> None:
    """Correlation is scale-free: subnormal, tiny and huge values score like ordinary ones."""
    timestamps = [1, 1, 2, 2, 2, 3, 3, 3]
    y_true = [0.0, 0.25, 1e-200, 3e-200, 2e-200, 1e200, -2e200, 3e200]
    y_pred = [0.0, 5e-324, 1.0, 2.0, 3.0, 2e-150, 1e-150, 7e-150]
    got = assert_matches_reference(timestamps, y_true, y_pred)
    assert got["cs_n_dates"] == 3


def test_row_order_does_not_matter() -> None:
    rows = list(EDGE_ROWS)
    np.random.default_rng(7).shuffle(rows)
    timestamps, y_true, y_pred = (list(column) for column in zip(*rows, strict=True))
    assert_matches_reference(timestamps, y_true, y_pred)


@st.composite
def panels(draw: st.DrawFn) -> tuple[list, list[float], list[float]]:
    n_rows = draw(st.integers(0, 150))
    values = st.one_of(
        st.integers(-3, 3).map(lambda v: v / 4),  # coarse grid: many ties and constant dates
        st.floats(-1, 1, allow_nan=False),
        st.just(NAN),
    )
    dates = draw(st.lists(st.integers(0, 12), min_size=n_rows, max_size=n_rows))
    y_true = draw(st.lists(values, min_size=n_rows, max_size=n_rows))
    y_pred = draw(st.lists(values, min_size=n_rows, max_size=n_rows))
    stamps = [pd.Timestamp("2023-01-02") + pd.Timedelta(hours=6 * d) for d in dates]  # unsorted on purpose
    return stamps, y_true, y_pred


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(panels())
def test_random_panels_against_scipy_loop(panel: tuple[list, list[float], list[float]]) -> None:
    assert_matches_reference(*panel)


def test_more_dates_than_sixteen_bits() -> None:
    """70,000 two-symbol dates (a calendar beyond 16-bit date ids), rows shuffled: each date's
    IC and rank IC are the sign of (a1 - a0) * (p1 - p0), 0 meaning no IC."""
    rng = np.random.default_rng(3)
    n_dates = 70_000
    actual = rng.integers(0, 4, size=(n_dates, 2)).astype(float)
    predicted = rng.normal(size=(n_dates, 2))
    sign = np.sign((actual[:, 1] - actual[:, 0]) * (predicted[:, 1] - predicted[:, 0]))
    expected = reference_summary(sign[sign != 0].tolist())
    stamps = np.repeat(np.datetime64("1900-01-01") + np.arange(n_dates), 2)
    order = rng.permutation(2 * n_dates)
    got = cross_section_metrics(actual.reshape(-1)[order], predicted.reshape(-1)[order], timestamps=stamps[order])
    assert got["cs_n_dates"] == int((sign != 0).sum())
    for prefix in ("cs_ic", "cs_rank_ic"):
        assert got[prefix] == pytest.approx(expected["mean"], **TOL)
        assert got[f"{prefix}_std"] == pytest.approx(expected["std"], **TOL)
        assert got[f"{prefix}_t_stat"] == pytest.approx(expected["t"], rel=1e-10)


def test_no_scored_date_gives_none() -> None:
    got = cross_section_metrics([0.1, 0.2, 0.3], [1.0, 1.0, 2.0], timestamps=["a", "a", "b"])
    assert got == {key: None for key in CS_KEYS} | {"cs_n_dates": 0}
    assert ic_by_date([0.1, 0.2], [1.0, 1.0], timestamps=["a", "a"]).empty


def test_one_scored_date_has_no_spread() -> None:
    # actual (1, 2, 3) vs predicted (1, 3, 2): deviations (-1, 0, 1) and (-1, 1, 0) -> 1 / 2
    got = cross_section_metrics([1.0, 2.0, 3.0], [1.0, 3.0, 2.0], timestamps=[5, 5, 5])
    assert got["cs_ic"] == pytest.approx(0.5) and got["cs_rank_ic"] == pytest.approx(0.5)
    assert got["cs_n_dates"] == 1
    assert got["cs_ic_std"] is None and got["cs_icir"] is None and got["cs_ic_t_stat"] is None


def test_identical_daily_ics_have_zero_std_and_no_icir() -> None:
    got = cross_section_metrics([1.0, 2.0, 3.0] * 2, [1.0, 3.0, 2.0] * 2, timestamps=[1, 1, 1, 2, 2, 2])
    assert got["cs_ic_std"] == 0.0 and got["cs_rank_ic_std"] == 0.0
    assert got["cs_icir"] is None and got["cs_ic_t_stat"] is None and got["cs_rank_icir"] is None


def test_hand_computed_icir() -> None:
    # daily ICs +1 (date 1), -1 (date 2), +1 (date 3): mean 1/3, std sqrt(4/3)
    got = cross_section_metrics(
        [1.0, 2.0, 1.0, 2.0, 1.0, 2.0], [1.0, 2.0, 2.0, 1.0, 0.0, 5.0], timestamps=[1, 1, 2, 2, 3, 3]
    )
    assert got["cs_ic"] == pytest.approx(1 / 3) and got["cs_ic_std"] == pytest.approx(math.sqrt(4 / 3))
    assert got["cs_icir"] == pytest.approx((1 / 3) / math.sqrt(4 / 3))
    assert got["cs_ic_t_stat"] == pytest.approx((1 / 3) / math.sqrt(4 / 3) * math.sqrt(3))
    assert statistics.stdev([1, -1, 1]) == pytest.approx(got["cs_ic_std"])


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        cross_section_metrics([0.1, 0.2], [0.1, 0.2, 0.3], timestamps=[1, 1, 1])
    assert info.value.status_code == 422 and "2, 3 and 3" in info.value.message
    with pytest.raises(InvalidInput) as info:
        cross_section_metrics([0.1, 0.2], [0.3, 0.1], timestamps=pd.DatetimeIndex(["2024-01-01", None]))
    assert info.value.context["field"] == "timestamps"


def test_panel_fold_metrics_merges_pooled_and_cross_sectional() -> None:
    timestamps = [1, 1, 1, 2, 2, 2, 3]
    y_true = np.array([0.1, -0.2, 0.3, 0.05, 0.0, -0.1, 0.2])
    y_pred = np.array([0.2, -0.1, 0.1, 0.3, -0.2, 0.0, 0.1])
    got = panel_fold_metrics(y_true, y_pred, timestamps=timestamps)
    pooled = fold_metrics(y_true, y_pred)
    assert set(got) == set(pooled) | CS_KEYS
    assert {k: got[k] for k in pooled} == pooled
    assert got["cs_n_dates"] == 2  # date 3 holds one symbol
    # date 1: ranks (2,1,3) vs (3,1,2) -> 1 - 6*2/(3*8) = 0.5; date 2: (3,2,1) vs (3,1,2) -> 0.5
    assert got["cs_rank_ic"] == pytest.approx(0.5)
    json.dumps(got, allow_nan=False)
    with pytest.raises(InvalidInput):  # unlike cross_section_metrics, a fold refuses NaN
        panel_fold_metrics(np.append(y_true, NAN), np.append(y_pred, 0.1), timestamps=timestamps + [3])


def test_summarize_panel() -> None:
    folds = [
        {"mse": 1.0, "mae": 0.5, "directional_accuracy": 0.5, "ic": 0.1, "rank_ic": 0.2,
         "cs_ic": 0.04, "cs_ic_std": 0.2, "cs_icir": 0.2, "cs_ic_t_stat": 2.0,
         "cs_rank_ic": 0.06, "cs_rank_ic_std": 0.3, "cs_rank_icir": 0.2, "cs_rank_ic_t_stat": 2.0, "cs_n_dates": 100},
        {"mse": 3.0, "mae": 1.5, "directional_accuracy": None, "ic": None, "rank_ic": 0.4,
         "cs_ic": 0.02, "cs_ic_std": None, "cs_icir": None, "cs_ic_t_stat": None,
         "cs_rank_ic": 0.0, "cs_rank_ic_std": 0.1, "cs_rank_icir": 0.0, "cs_rank_ic_t_stat": 0.0, "cs_n_dates": 1},
    ]
    summary = summarize_panel(folds)
    # pooled scores, as metrics.summarize reports them
    assert summary["mean_mse"] == pytest.approx(2.0) and summary["std_mse"] == pytest.approx(1.0)
    assert summary["mean_ic"] == pytest.approx(0.1) and summary["std_ic"] == 0.0
    assert summary["n_folds"] == 2
    # cross-sectional: mean and population std over the folds that have a value
    assert summary["mean_cs_ic"] == pytest.approx(0.03) and summary["std_cs_ic"] == pytest.approx(0.01)
    assert summary["mean_cs_icir"] == pytest.approx(0.2) and summary["std_cs_icir"] == 0.0
    assert summary["mean_cs_rank_ic_t_stat"] == pytest.approx(1.0)
    assert summary["std_cs_rank_ic_t_stat"] == pytest.approx(1.0)
    assert summary["cs_n_dates"] == 101
    json.dumps(summary, allow_nan=False)
    empty = summarize_panel([])
    assert empty["mean_cs_ic"] is None and empty["cs_n_dates"] == 0 and empty["n_folds"] == 0
