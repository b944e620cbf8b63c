"""Elementary transforms that several feature plugin modules share: returns over a period
and a trailing z-score. They live here, public, so that no plugin module imports another's
private helpers; each value at row t uses rows up to t only (NaN where the window is not
yet full). Changing any of them changes the values of every plugin that uses it: bump
those plugins' versions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def simple_returns(close: np.ndarray, period: int = 1) -> np.ndarray:
    """``close[t] / close[t - period] - 1``; the first ``period`` rows are NaN."""
    out = np.full(len(close), np.nan)
    if len(close) > period:
        out[period:] = close[period:] / close[:-period] - 1.0
    return out


def log_returns(close: np.ndarray, period: int = 1) -> np.ndarray:
    """``log(close[t] / close[t - period])``; the first ``period`` rows are NaN."""
    out = np.full(len(close), np.nan)
    if len(close) > period:
        out[period:] = np.log(close[period:] / close[:-period])
    return out


def zscore(values: np.ndarray, window: int) -> np.ndarray:
    """``(x[t] - mean) / std`` over the trailing ``window`` values (sample std, ddof 1);
    NaN until the window is full and where it is flat (a flat window has no z-score)."""
    series = pd.Series(values)
    rolling = series.rolling(window)
    std = rolling.std().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (values - rolling.mean().to_numpy()) / std
    z[~(std > 0)] = np.nan
    return z
