"""Fold metrics, their summary and the naive baseline: hand-computed values, None cases, JSON."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from alphaforge.errors import InvalidInput
from alphaforge.evaluation.metrics import fold_metrics, naive_baseline, summarize

KEYS = {"mse", "mae", "directional_accuracy", "ic", "rank_ic"}


def test_hand_computed_fold() -> None:
    y_true = np.array([1.0, -2.0, 0.0, 3.0])
    y_pred = np.array([2.0, 1.0, -1.0, 0.0])
    m = fold_metrics(y_true, y_pred)
    assert set(m) == KEYS
    # errors 1, 3, -1, -3
    assert m["mse"] == pytest.approx((1 + 9 + 1 + 9) / 4)
    assert m["mae"] == pytest.approx((1 + 3 + 1 + 3) / 4)
    # row 2 has a zero actual: excluded. Rows 0 (+/+) hit, 1 (-/+) miss, 3 (+/0) miss.
    assert m["directional_accuracy"] == pytest.approx(1 / 3)
    # deviations from the means (0.5, 0.5): (0.5,-2.5,-0.5,2.5) and (1.5,0.5,-1.5,-0.5)
    assert m["ic"] == pytest.approx(-1.0 / math.sqrt(13 * 5))
    # ranks (3,1,2,4) vs (4,3,1,2): d = (-1,-2,1,2), 1 - 6*10/(4*15) = 0
    assert m["rank_ic"] == pytest.approx(0.0, abs=1e-12)
    assert all(type(v) is float for v in m.values())


def test_rank_ic_with_ties_uses_average_ranks() -> None:
    # ranks (1.5,1.5,3,4) vs (1,2,3,4): cov 4.5, variances 4.5 and 5
    m = fold_metrics(np.array([1.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert m["rank_ic"] == pytest.approx(math.sqrt(0.9))


def test_perfect_and_inverted_predictions() -> None:
    y = np.array([0.01, -0.02, 0.03, -0.005])
    assert fold_metrics(y, y) == pytest.approx(
        {"mse": 0.0, "mae": 0.0, "directional_accuracy": 1.0, "ic": 1.0, "rank_ic": 1.0}
    )
    inverted = fold_metrics(y, -y)
    assert inverted["directional_accuracy"] == 0.0
    assert inverted["ic"] == pytest.approx(-1.0)


def test_zero_actual_returns_are_excluded_from_direction() -> None:
    y_true = np.array([0.0, 0.0, 0.02, -0.01])
    # zero-actual rows would be misses upstream whatever we predict; here they do not count
    assert fold_metrics(y_true, np.array([0.5, 0.0, 0.01, -0.3]))["directional_accuracy"] == 1.0
    # a zero prediction on a moving row is a miss
    assert fold_metrics(y_true, np.array([0.0, 0.0, 0.0, -0.3]))["directional_accuracy"] == 0.5
    # no moving row at all: no direction to score
    assert fold_metrics(np.zeros(3), np.array([0.1, -0.1, 0.0]))["directional_accuracy"] is None


def test_undefined_correlations_are_none_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        constant_pred = fold_metrics(np.array([0.01, -0.02, 0.03]), np.full(3, 0.001))
        constant_true = fold_metrics(np.full(3, 0.02), np.array([0.01, -0.02, 0.03]))
        single = fold_metrics(np.array([0.01]), np.array([0.02]))
    for m in (constant_pred, constant_true, single):
        assert m["ic"] is None and m["rank_ic"] is None
    assert constant_pred["mse"] is not None and single["mae"] == pytest.approx(0.01)
    assert fold_metrics(np.array([]), np.array([])) == dict.fromkeys(KEYS)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidInput, match="y_pred contains 1 non-finite"):
        fold_metrics(np.array([0.1, 0.2]), np.array([0.1, np.nan]))
    with pytest.raises(InvalidInput, match="y_true"):
        fold_metrics(np.array([np.inf, 0.2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="rows"):
        fold_metrics(np.array([0.1, 0.2]), np.array([0.1]))


def test_summarize_ignores_none_and_uses_population_std() -> None:
    folds = [
        {"mse": 1.0, "mae": 1.0, "directional_accuracy": 0.5, "ic": None, "rank_ic": 0.2},
        {"mse": 3.0, "mae": 2.0, "directional_accuracy": None, "ic": None, "rank_ic": 0.4},
        {"mse": 5.0, "mae": 3.0, "directional_accuracy": None, "ic": None, "rank_ic": None},
    ]
    s = summarize(folds)
    assert s == pytest.approx(
        {
            "mean_mse": 3.0,
            "std_mse": math.sqrt((4 + 0 + 4) / 3),  # ddof=0
            "mean_mae": 2.0,
            "std_mae": math.sqrt((1 + 0 + 1) / 3),
            "mean_ic": None,
            "std_ic": None,
            "mean_rank_ic": 0.3,
            "std_rank_ic": 0.1,
            "directional_accuracy": 0.5,
            "std_directional_accuracy": 0.0,
            "n_folds": 3,
        }
    )
    assert type(s["n_folds"]) is int and type(s["mean_mse"]) is float


def test_summarize_no_folds() -> None:
    s = summarize([])
    assert s["n_folds"] == 0
    assert all(v is None for k, v in s.items() if k != "n_folds")


def test_results_are_json_safe() -> None:
    rng = np.random.default_rng(7)
    folds = [
        fold_metrics(rng.normal(size=50), rng.normal(size=50)),
        fold_metrics(np.zeros(5), np.full(5, 0.1)),  # None direction, ic, rank_ic
        fold_metrics(np.array([0.1]), np.array([0.1])),
    ]
    text = json.dumps({"folds": folds, "summary": summarize(folds)}, allow_nan=False)
    assert json.loads(text)["summary"]["n_folds"] == 3


def test_naive_baseline() -> None:
    baseline = naive_baseline(np.array([1.0, 2.0, 3.0, 6.0]), 3)
    assert baseline.tolist() == [3.0, 3.0, 3.0]
    assert naive_baseline(np.array([0.5]), 0).shape == (0,)
    with pytest.raises(ValueError):
        naive_baseline(np.array([]), 3)
