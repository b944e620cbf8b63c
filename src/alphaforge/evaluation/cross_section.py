"""Cross-sectional scores for panels: how well a model ranks symbols against each other.

A pooled IC over a panel's rows (``metrics.fold_metrics``' ``ic``) mixes ranking symbols
within a date with timing the market across dates: a model that only calls the market's
daily move scores a pooled IC and a cross-sectional IC of zero. So, per date:

- over the rows whose prediction and realised target are both finite, the Pearson IC and
  the Spearman rank IC (average ranks for ties). A date with fewer than 2 such pairs, or
  on which either side is constant, has no IC: it is skipped, not counted as 0;
- then, over the ``n_dates`` dates that have one: the mean, the sample std (ddof=1: the
  dates are a sample of those the model will face), ICIR = mean / std and the t-statistic
  mean / std * sqrt(n_dates). ``None`` when undefined: no date (mean), fewer than 2 (std),
  a zero std (ICIR, t).

Keys carry a ``cs_`` prefix and the mean daily IC is ``cs_ic`` (not ``mean_ic``): a panel
fold reports both pooled (``ic``) and cross-sectional scores, and :func:`summarize_panel`
names averages over folds ``mean_<metric>`` as ``metrics.summarize`` does, where
``mean_ic`` already means the pooled IC's average.

Non-finite values are dropped pair by pair here (a panel misses targets: delisted symbols,
the last ``h`` dates), but :func:`panel_fold_metrics` refuses them as ``fold_metrics`` does,
since a model that predicts NaN has failed. Values are plain ``float``/``int`` or ``None``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.errors import InvalidInput
from alphaforge.evaluation.metrics import fold_metrics, summarize

#: Per-fold cross-sectional metrics that :func:`summarize_panel` averages across folds.
CROSS_SECTION_SPREAD = (
    "cs_ic",
    "cs_ic_std",
    "cs_icir",
    "cs_ic_t_stat",
    "cs_rank_ic",
    "cs_rank_ic_std",
    "cs_rank_icir",
    "cs_rank_ic_t_stat",
)


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _vector(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=float).reshape(-1)


def _ranks_within(groups: np.ndarray, values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average ranks (1-based, ties share their mean rank) of ``values`` within each group
    ``0..k-1``, and each group's minimum and range. Two sorts, several times faster than a
    pandas groupby rank: by value, then stably by group (radix when groups fit 16 bits)."""
    by_value = np.argsort(values)
    keys = groups[by_value]
    order = by_value[np.argsort(keys.astype(np.uint16) if k <= 1 << 16 else keys, kind="stable")]
    sorted_groups, sorted_values = groups[order], values[order]
    group_start = np.searchsorted(sorted_groups, np.arange(k + 1))
    new_block = np.ones(len(order), dtype=bool)  # a run of equal values within one group
    new_block[1:] = (sorted_groups[1:] != sorted_groups[:-1]) | (sorted_values[1:] != sorted_values[:-1])
    block_start = np.flatnonzero(new_block)
    block_stop = np.append(block_start[1:], len(order))
    mean_rank = (block_start + block_stop + 1) / 2.0 - group_start[sorted_groups[block_start]]
    ranks = np.empty(len(order))
    ranks[order] = mean_rank[np.cumsum(new_block) - 1]
    low = sorted_values[group_start[:-1]]
    return ranks, low, sorted_values[group_start[1:] - 1] - low


def _unit_interval(groups: np.ndarray, values: np.ndarray, low: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """``values`` mapped onto [0, 1] within each group (correlation is unchanged), so that
    their means and squared deviations neither underflow nor overflow; a zero spread gives NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (values - low[groups]) / spread[groups]


def _grouped_pearson(groups: np.ndarray, x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Pearson correlation of ``x`` and ``y`` within each group ``0..k-1``."""
    count = np.bincount(groups, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = x - (np.bincount(groups, x, k) / count)[groups]
        dy = y - (np.bincount(groups, y, k) / count)[groups]
        sxy = np.bincount(groups, dx * dy, k)
        r = sxy / np.sqrt(np.bincount(groups, dx * dx, k) * np.bincount(groups, dy * dy, k))
    return np.clip(r, -1.0, 1.0)


def _date_table(y_true: Any, y_pred: Any, timestamps: Any) -> pd.DataFrame:
    """Per date with an IC: ``ic``, ``rank_ic``, ``n_pairs``; indexed by timestamp, ascending."""
    actual, predicted = _vector(y_true), _vector(y_pred)
    dates = pd.Index(timestamps)
    if not len(actual) == len(predicted) == len(dates):
        raise InvalidInput(
            f"y_true, y_pred and timestamps have {len(actual)}, {len(predicted)} and {len(dates)} "
            f"entries: give one of each per panel row",
            field="y_pred",
        )
    if dates.isna().any():
        raise InvalidInput(
            f"timestamps has {int(dates.isna().sum())} missing value(s); every panel row needs one",
            field="timestamps",
        )
    paired = np.isfinite(actual) & np.isfinite(predicted)
    codes, calendar = pd.factorize(dates[paired], sort=True)
    groups, k = np.asarray(codes, dtype=np.int64), len(calendar)
    x, y = actual[paired], predicted[paired]
    x_rank, x_low, x_spread = _ranks_within(groups, x, k)
    y_rank, y_low, y_spread = _ranks_within(groups, y, k)
    n_pairs = np.bincount(groups, minlength=k)
    scored = (n_pairs >= 2) & (x_spread > 0) & (y_spread > 0)
    table = pd.DataFrame(
        {
            "ic": _grouped_pearson(
                groups, _unit_interval(groups, x, x_low, x_spread), _unit_interval(groups, y, y_low, y_spread), k
            ),
            "rank_ic": _grouped_pearson(groups, x_rank, y_rank, k),  # ranks lie in [1, n_pairs] already
            "n_pairs": n_pairs,
        },
        index=pd.Index(calendar, name=dates.name or "timestamp"),
    )
    return table[scored]


def ic_by_date(y_true: Any, y_pred: Any, *, timestamps: Any, rank: bool = False) -> pd.Series:
    """The per-date IC (``rank=True``: Spearman rank IC), indexed by timestamp, ascending;
    dates without an IC (see the module docstring) are absent, not NaN."""
    column = "rank_ic" if rank else "ic"
    return _date_table(y_true, y_pred, timestamps)[column].rename(column)


def _ic_summary(prefix: str, values: np.ndarray) -> dict[str, float | None]:
    """Mean, sample std, ICIR and t-statistic of one per-date IC series."""
    n = len(values)
    mean = _finite_or_none(values.mean()) if n else None
    std = _finite_or_none(values.std(ddof=1)) if n >= 2 else None
    ir = mean / std if mean is not None and std else None
    return {
        prefix: mean,
        f"{prefix}_std": std,
        f"{prefix}ir": ir,
        f"{prefix}_t_stat": ir * math.sqrt(n) if ir is not None else None,
    }


def cross_section_metrics(y_true: Any, y_pred: Any, *, timestamps: Any) -> dict[str, float | int | None]:
    """``cs_ic``, ``cs_ic_std``, ``cs_icir``, ``cs_ic_t_stat``, the same for ``cs_rank_ic``,
    and ``cs_n_dates`` (dates with an IC) for one panel fold's test rows."""
    table = _date_table(y_true, y_pred, timestamps)
    return {
        **_ic_summary("cs_ic", table["ic"].to_numpy()),
        **_ic_summary("cs_rank_ic", table["rank_ic"].to_numpy()),
        "cs_n_dates": int(len(table)),
    }


def panel_fold_metrics(y_true: Any, y_pred: Any, *, timestamps: Any) -> dict[str, float | int | None]:
    """A pooled model's fold: ``fold_metrics`` over all its rows plus the cross-sectional scores.
    Non-finite values are refused (``InvalidInput``), as ``fold_metrics`` refuses them."""
    return {**fold_metrics(y_true, y_pred), **cross_section_metrics(y_true, y_pred, timestamps=timestamps)}


def summarize_panel(folds: list[dict[str, Any]]) -> dict[str, float | int | None]:
    """``metrics.summarize`` of the pooled scores, plus ``mean_<m>``/``std_<m>`` (population
    std, ignoring ``None``) of each cross-sectional metric and ``cs_n_dates`` summed over folds."""
    summary: dict[str, float | int | None] = dict(summarize(folds))
    for metric in CROSS_SECTION_SPREAD:
        present = np.asarray([float(f[metric]) for f in folds if f.get(metric) is not None], dtype=float)
        summary[f"mean_{metric}"] = _finite_or_none(present.mean()) if len(present) else None
        summary[f"std_{metric}"] = _finite_or_none(present.std(ddof=0)) if len(present) else None
    summary["cs_n_dates"] = int(sum(int(f.get("cs_n_dates") or 0) for f in folds))
    return summary
