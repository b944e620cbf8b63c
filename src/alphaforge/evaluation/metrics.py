"""Fold scores for forward-return regressors, their summary, and the naive baseline.

Every value is a plain Python ``float`` (or ``int``) or ``None``, never NaN, so results go
straight into JSON (``allow_nan=False``) and the database.

- ``mse``, ``mae``: the usual means; ``None`` on an empty fold.
- ``directional_accuracy``: the share of rows where ``sign(pred) == sign(actual)``, counted
  only over rows whose **actual return is non-zero** — a zero return has no direction to
  call, so it neither helps nor hurts (upstream counted it as a miss unless the
  prediction was exactly 0). On a counted row a prediction of exactly 0 is a miss.
  ``None`` when no row has a non-zero actual return.
- ``ic``: Pearson correlation; ``rank_ic``: Spearman (scipy.stats). ``None`` when undefined:
  fewer than 2 rows or a constant input.

Non-finite inputs are refused (``InvalidInput``) rather than scored: a model that predicts
NaN has failed, and hiding that behind ``None`` metrics would make it look merely unlucky.

``summarize`` reports mean and **population** standard deviation (ddof=0) across folds,
ignoring ``None``: the folds are the whole set being described, not a sample of one.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from alphaforge.errors import InvalidInput

SPREAD_METRICS = ("mse", "mae", "ic", "rank_ic")


def _as_vector(name: str, values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float).reshape(-1)
    bad = int((~np.isfinite(array)).sum())
    if bad:
        raise InvalidInput(f"{name} contains {bad} non-finite value(s) (NaN or inf); cannot score the fold")
    return array


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _correlation(kind: str, y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return None
    result = stats.pearsonr(y_true, y_pred) if kind == "pearson" else stats.spearmanr(y_true, y_pred)
    return _finite(result.statistic)


def fold_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    """mse, mae, directional_accuracy, ic, rank_ic for one test fold."""
    actual = _as_vector("y_true", y_true)
    predicted = _as_vector("y_pred", y_pred)
    if actual.shape != predicted.shape:
        raise ValueError(f"y_true has {actual.size} rows but y_pred has {predicted.size}")
    if actual.size == 0:
        return {"mse": None, "mae": None, "directional_accuracy": None, "ic": None, "rank_ic": None}
    error = predicted - actual
    moving = actual != 0
    direction = (
        float(np.mean(np.sign(predicted[moving]) == np.sign(actual[moving]))) if moving.any() else None
    )
    return {
        "mse": _finite(np.mean(error**2)),
        "mae": _finite(np.mean(np.abs(error))),
        "directional_accuracy": direction,
        "ic": _correlation("pearson", actual, predicted),
        "rank_ic": _correlation("spearman", actual, predicted),
    }


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    array = np.asarray(values, dtype=float)
    return _finite(array.mean()), _finite(array.std(ddof=0))


def summarize(folds: list[dict[str, float | None]]) -> dict[str, float | int | None]:
    """Mean and population std (ddof=0) of each metric across folds, ignoring ``None``."""

    def present(metric: str) -> list[float]:
        return [float(f[metric]) for f in folds if f.get(metric) is not None]

    summary: dict[str, float | int | None] = {}
    for metric in SPREAD_METRICS:
        summary[f"mean_{metric}"], summary[f"std_{metric}"] = _mean_std(present(metric))
    summary["directional_accuracy"], summary["std_directional_accuracy"] = _mean_std(
        present("directional_accuracy")
    )
    summary["n_folds"] = len(folds)
    return summary


def naive_baseline(y_train: np.ndarray, n_test: int) -> np.ndarray:
    """The training mean repeated ``n_test`` times: what a model has to beat."""
    train = _as_vector("y_train", y_train)
    if train.size == 0:
        raise ValueError("naive_baseline needs at least one training row")
    if n_test < 0:
        raise ValueError(f"n_test must be >= 0, got {n_test}")
    return np.full(int(n_test), float(train.mean()))
