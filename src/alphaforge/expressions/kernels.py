"""The numeric implementation of every operator, over a panel's flat row layout.

Each kernel takes the panel and its arguments (a float64 array with one value per row or a
float for a series; an int or float for a constant parameter) and returns a new array
(never a view of an input). NaN rules: element-wise operators propagate NaN (a comparison
with NaN is NaN, not false); a window that holds a NaN, or is not yet full (fewer than
``n`` bars of its symbol), gives NaN: we never compute a statistic over part of a window.

Isolation between symbols: a rolling pandas kernel gets windows clipped at each symbol's
first bar (a ``BaseIndexer``), so pandas restarts its running sums there and nothing,
not even rounding, carries from one symbol into the next; the other time-series kernels
compute each window from its own values only and blank windows that are not full.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer

from alphaforge.expressions.panel import PanelData

Value = np.ndarray | float
Kernel = Callable[..., Value]


# -- helpers ---------------------------------------------------------------------------


def _array(panel: PanelData, x: Value) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else np.full(panel.n_rows, float(x))


def _plain(result: Any) -> Value:
    """A 0-d result (every input was a constant) as a float, so constants fold."""
    result = np.asarray(result, dtype=np.float64)
    return float(result) if result.ndim == 0 else result


class _SymbolWindows(BaseIndexer):
    """Windows of ``n`` rows ending at each row, clipped at the row's symbol's first bar."""

    def __init__(self, starts: np.ndarray) -> None:
        super().__init__()
        self.starts = starts

    def get_window_bounds(
        self, num_values: int = 0, min_periods: int | None = None, center: bool | None = None,
        closed: str | None = None, step: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.starts, np.arange(1, num_values + 1, dtype=np.int64)


def _rolling(panel: PanelData, x: Value, n: int) -> Any:
    """pandas' rolling object over full windows of ``n`` bars of each symbol."""
    return pd.Series(_array(panel, x), copy=False).rolling(_SymbolWindows(panel.window_starts(n)), min_periods=n)


def _not_full(panel: PanelData, n: int) -> np.ndarray:
    """Rows whose window of ``n`` bars would reach before their symbol's first bar."""
    return panel.bar_numbers < n - 1


def _nan_in_window(x: np.ndarray, n: int) -> np.ndarray:
    """Rows whose window of ``n`` rows ending there holds a NaN (integer counts: exact)."""
    counts = np.concatenate([[0], np.cumsum(np.isnan(x), dtype=np.int64)])
    ends = np.arange(1, len(x) + 1)
    return counts[ends] - counts[np.maximum(ends - n, 0)] > 0


def _window_dot(panel: PanelData, x: Value, weights: np.ndarray) -> np.ndarray:
    """``sum(weights[k] * x[t - n + 1 + k])`` for each row ``t`` with a full window."""
    values, n = _array(panel, x), len(weights)
    out = np.full(panel.n_rows, np.nan)
    if panel.n_rows >= n:
        out[n - 1:] = np.correlate(values, weights, "valid")
    out[_not_full(panel, n)] = np.nan
    return out


# -- element-wise ----------------------------------------------------------------------


def _compare(ufunc: np.ufunc) -> Kernel:
    def kernel(panel: PanelData, x: Value, y: Value) -> Value:
        return _plain(np.where(np.isnan(x) | np.isnan(y), np.nan, ufunc(x, y)))

    return kernel


def _and(panel: PanelData, x: Value, y: Value) -> Value:
    return _plain(np.where(np.isnan(x) | np.isnan(y), np.nan, (np.asarray(x) != 0) & (np.asarray(y) != 0)))


def _or(panel: PanelData, x: Value, y: Value) -> Value:
    return _plain(np.where(np.isnan(x) | np.isnan(y), np.nan, (np.asarray(x) != 0) | (np.asarray(y) != 0)))


def _not(panel: PanelData, x: Value) -> Value:
    return _plain(np.where(np.isnan(x), np.nan, np.asarray(x) == 0))


def _if(panel: PanelData, cond: Value, a: Value, b: Value) -> Value:
    return _plain(np.where(np.isnan(cond), np.nan, np.where(np.asarray(cond) != 0, a, b)))


def _ufunc(ufunc: np.ufunc) -> Kernel:
    def kernel(panel: PanelData, *args: Value) -> Value:
        return _plain(ufunc(*args))

    return kernel


# -- time series -----------------------------------------------------------------------


def _ref(panel: PanelData, x: Value, n: int) -> np.ndarray:
    values = _array(panel, x)
    out = np.full(panel.n_rows, np.nan)
    if n < panel.n_rows:
        out[n:] = values[:-n]
    out[panel.bar_numbers < n] = np.nan
    return out


def _delta(panel: PanelData, x: Value, n: int) -> np.ndarray:
    return _array(panel, x) - _ref(panel, x, n)


def _pandas(statistic: str, **options: Any) -> Kernel:
    def kernel(panel: PanelData, x: Value, n: int) -> np.ndarray:
        return getattr(_rolling(panel, x, n), statistic)(**options).to_numpy(np.float64, copy=True)

    return kernel


def _quantile(panel: PanelData, x: Value, n: int, q: float) -> np.ndarray:
    return _rolling(panel, x, n).quantile(q, interpolation="linear").to_numpy(np.float64, copy=True)


def _first_argmax(values: np.ndarray, n: int) -> np.ndarray:
    """For each row ``t >= n - 1``, the offset in ``[0, n)`` of the first maximum of
    ``values[t - n + 1 : t + 1]`` (NaN-free input). Doubling: the best of every block of
    1, 2, 4... rows, then two overlapping blocks cover a window; O(rows x log n), each
    window from its own values only."""
    size, best_value, best_index = 1, values, np.arange(len(values))
    while size * 2 <= n:
        left_value, right_value = best_value[:-size], best_value[size:]
        take_left = left_value >= right_value  # ties: the earlier block, so the first maximum
        best_value = np.where(take_left, left_value, right_value)
        best_index = np.where(take_left, best_index[:-size], best_index[size:])
        size *= 2
    ends = np.arange(n - 1, len(values))
    a, b = ends - n + 1, ends - size + 1  # the window's first and last block of `size` rows
    take_a = best_value[a] >= best_value[b]
    return np.where(take_a, best_index[a], best_index[b]) - a


def _index_of(sign: float) -> Kernel:
    def kernel(panel: PanelData, x: Value, n: int) -> np.ndarray:
        values = _array(panel, x)
        out = np.full(panel.n_rows, np.nan)
        if panel.n_rows >= n:
            out[n - 1:] = _first_argmax(np.nan_to_num(sign * values, nan=-np.inf), n) + 1.0
        out[_nan_in_window(values, n) | _not_full(panel, n)] = np.nan
        return out

    return kernel


def _centred_positions(n: int) -> tuple[np.ndarray, float]:
    """Positions 1..n minus their mean, and the sum of their squares n(n^2 - 1)/12."""
    centred = np.arange(1, n + 1, dtype=np.float64) - (n + 1) / 2
    return centred, n * (n * n - 1) / 12


def _slope(panel: PanelData, x: Value, n: int) -> np.ndarray:
    centred, sxx = _centred_positions(n)
    return _window_dot(panel, x, centred / sxx)


def _resi(panel: PanelData, x: Value, n: int) -> np.ndarray:
    """last - (mean + slope * (n - mean position)): linear in the window, so one dot product."""
    centred, sxx = _centred_positions(n)
    weights = -1.0 / n - centred / sxx * centred[-1]
    weights[-1] += 1.0
    return _window_dot(panel, x, weights)


def _rsquare(panel: PanelData, x: Value, n: int) -> np.ndarray:
    """slope^2 * Sxx / ((n - 1) * var): the share of the window's variance the line explains."""
    _, sxx = _centred_positions(n)
    variance = _rolling(panel, x, n).var().to_numpy(np.float64, copy=True)
    r2 = np.minimum(_slope(panel, x, n) ** 2 * sxx / ((n - 1) * variance), 1.0)
    r2[~(variance > 0)] = np.nan
    return r2


def _pair(method: str) -> Kernel:
    def kernel(panel: PanelData, x: Value, y: Value, n: int) -> np.ndarray:
        other = pd.Series(_array(panel, y), copy=False)
        out = getattr(_rolling(panel, x, n), method)(other).to_numpy(np.float64, copy=True)
        out[~np.isfinite(out)] = np.nan  # a constant window: no correlation
        return out

    return kernel


def _ewm(panel: PanelData, x: Value, span: int) -> np.ndarray:
    """pandas' ewm mean (adjust=True) run on each symbol's rows separately (recursive: a
    single pass over the flat rows would carry one symbol's state into the next)."""
    values = _array(panel, x)
    out = np.empty(panel.n_rows)
    for start, end in zip(panel.offsets[:-1], panel.offsets[1:]):
        piece = pd.Series(values[start:end], copy=False)
        out[start:end] = piece.ewm(span=span, adjust=True, min_periods=span).mean().to_numpy(np.float64)
    out[np.isnan(values)] = np.nan
    return out


# -- cross-sectional -------------------------------------------------------------------


def _grid(panel: PanelData, x: Value) -> np.ndarray:
    """The rows scattered to a (timestamp x symbol) grid; non-finite values and absent
    (timestamp, symbol) cells are NaN and do not count."""
    codes, count = panel.timestamp_codes
    grid = np.full((count, len(panel.symbols)), np.nan)
    grid[codes, panel.symbol_codes] = _array(panel, x)
    grid[~np.isfinite(grid)] = np.nan
    return grid


def _gather(panel: PanelData, grid: np.ndarray) -> np.ndarray:
    return grid[panel.timestamp_codes[0], panel.symbol_codes]


def _row_moments(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per timestamp: the number of values, their mean, and their sample standard deviation."""
    count = np.sum(~np.isnan(grid), axis=1, keepdims=True).astype(np.float64)
    mean = np.nansum(grid, axis=1, keepdims=True) / count
    std = np.sqrt(np.nansum((grid - mean) ** 2, axis=1, keepdims=True) / (count - 1))
    return count, mean, std


def _cs_rank(panel: PanelData, x: Value) -> np.ndarray:
    grid = _grid(panel, x)
    rank = pd.DataFrame(grid).rank(axis=1, method="average", na_option="keep").to_numpy(np.float64)
    count = np.sum(~np.isnan(grid), axis=1, keepdims=True).astype(np.float64)
    pct = np.where(count == 1.0, np.where(np.isnan(rank), np.nan, 0.5), (rank - 1.0) / (count - 1.0))
    return _gather(panel, pct)


def _cs_zscore(panel: PanelData, x: Value) -> np.ndarray:
    grid = _grid(panel, x)
    _, mean, std = _row_moments(grid)
    z = (grid - mean) / std
    z[~(np.broadcast_to(std, z.shape) > 0)] = np.nan
    return _gather(panel, z)


def _cs_demean(panel: PanelData, x: Value) -> np.ndarray:
    grid = _grid(panel, x)
    return _gather(panel, grid - _row_moments(grid)[1])


#: The kernel of each operator, by name (``operators.OPERATORS`` has their signatures).
KERNELS: dict[str, Kernel] = {
    "add": _ufunc(np.add),
    "sub": _ufunc(np.subtract),
    "mul": _ufunc(np.multiply),
    "div": _ufunc(np.divide),
    "neg": _ufunc(np.negative),
    "lt": _compare(np.less),
    "le": _compare(np.less_equal),
    "gt": _compare(np.greater),
    "ge": _compare(np.greater_equal),
    "eq": _compare(np.equal),
    "ne": _compare(np.not_equal),
    "and": _and,
    "or": _or,
    "not": _not,
    "log": _ufunc(np.log),
    "abs": _ufunc(np.abs),
    "sign": _ufunc(np.sign),
    "greater": _ufunc(np.maximum),
    "less": _ufunc(np.minimum),
    "if": _if,
    "ref": _ref,
    "delta": _delta,
    "mean": _pandas("mean"),
    "sum": _pandas("sum"),
    "std": _pandas("std"),
    "min": _pandas("min"),
    "max": _pandas("max"),
    "rank": _pandas("rank", method="average", pct=True),
    "quantile": _quantile,
    "idxmax": _index_of(1.0),
    "idxmin": _index_of(-1.0),
    "slope": _slope,
    "rsquare": _rsquare,
    "resi": _resi,
    "corr": _pair("corr"),
    "cov": _pair("cov"),
    "ewm": _ewm,
    "cs_rank": _cs_rank,
    "cs_zscore": _cs_zscore,
    "cs_demean": _cs_demean,
}
