"""Leakage-safe walk-forward splitter for forward-return targets.

Why not the splitter of the system alphaforge replaces: its test windows can
overlap (averaged metrics double-count bars) and it trains right up to the test window,
so the last ``h`` training labels use closes inside the test window. Here:

- test windows are back-anchored and disjoint: with ``t = max(1, floor(n*test_size))``,
  fold ``i`` (oldest first) tests rows ``[n-(k-i)*t, n-(k-1-i)*t)`` for ``k`` folds;
- row ``i``'s label spans closes ``[i, i+h]``, so the ``purge`` (default ``h``, never less)
  rows before each test window are dropped from its training set;
- training rows only come from before the test window, and the ``embargo`` rows right
  after every *earlier* test window are removed from later folds' training sets;
- ``expanding`` trains on every remaining row; ``rolling`` on the most recent ``L`` of them,
  ``L`` being the first fold's training length, so every fold trains on as much data;
- every fold needs ``max(1, floor(n*min_train_size))`` training rows. Anything impossible
  is an :class:`InvalidInput` (422) saying what was asked, what it leaves, what to change.

Fractions are floored with a 1e-9 tolerance, so ``0.35 * 180`` gives 63 rows, not 62.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from alphaforge.errors import InvalidInput

Method = Literal["rolling", "expanding"]


@dataclass(frozen=True)
class Fold:
    index: int
    train: np.ndarray  # sorted int row indices (may have holes: embargoed rows)
    test: np.ndarray  # contiguous sorted int row indices
    purge: int = 0  # rows right before the test window whose labels the fold never reads

    def known_targets(self, y: np.ndarray) -> np.ndarray:
        """The labels of rows up to the end of the test window, the purge gap's withheld
        (NaN): what the test rows' forecasts may read (each only those realised by its row)."""
        start, stop = int(self.test[0]), int(self.test[-1]) + 1
        known = np.array(y[:stop], dtype=np.float64)
        known[max(start - self.purge, 0) : start] = np.nan
        return known


def _rows(n: int, fraction: float) -> int:
    """``floor(n * fraction)``, tolerant of binary rounding (0.35*180 = 62.999...)."""
    return math.floor(n * fraction + 1e-9)


def _require_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInput(f"{name} must be an integer, got {value!r}", field=name)
    if value < minimum:
        raise InvalidInput(f"{name} must be at least {minimum}, got {value}", field=name)
    return int(value)


def effective_purge(purge: int | None, horizon: int) -> int:
    """The purge a request asks for: the horizon when unset; shorter than it is refused."""
    if purge is None:
        return horizon
    purge = _require_int("purge", purge, 0)
    if purge < horizon:
        raise InvalidInput(
            f"purge={purge} is shorter than the target horizon {horizon}: the last "
            f"{horizon - purge} training rows' labels (close[i+{horizon}]) would use closes inside "
            f"the test window, leaking it into training. Use purge >= {horizon} (or leave it unset).",
            field="purge",
        )
    return purge


def make_folds(
    n_rows: int,
    *,
    method: Method,
    n_splits: int,
    test_size: float,
    min_train_size: float,
    horizon: int,
    purge: int | None = None,
    embargo: int = 0,
) -> list[Fold]:
    """Walk-forward folds over rows ``0..n_rows-1`` (time order); see the module docstring."""
    n = _require_int("n_rows", n_rows, 1)
    n_splits = _require_int("n_splits", n_splits, 1)
    horizon = _require_int("horizon", horizon, 1)
    embargo = _require_int("embargo", embargo, 0)
    if method not in ("rolling", "expanding"):
        raise InvalidInput(f"method must be 'rolling' or 'expanding', got {method!r}", field="method")
    if not 0 < test_size < 1:
        raise InvalidInput(
            f"test_size must be a fraction of the rows strictly between 0 and 1, got {test_size}",
            field="test_size",
        )
    if not 0 < min_train_size < 1:
        raise InvalidInput(
            f"min_train_size must be a fraction of the rows strictly between 0 and 1, got {min_train_size}",
            field="min_train_size",
        )
    purge = effective_purge(purge, horizon)

    test_len = max(1, _rows(n, test_size))
    min_rows = max(1, _rows(n, min_train_size))
    if n_splits * test_len >= n:
        raise InvalidInput(
            f"n={n} rows, {n_splits} folds × {test_len} test rows need {n_splits * test_len} test rows, "
            f"leaving none to train on: lower n_splits or test_size, or use a longer range",
            field="n_splits",
        )
    first_start = n - n_splits * test_len
    first_train = first_start - purge
    if first_train < min_rows:
        raise InvalidInput(
            f"n={n} rows, {n_splits} folds × {test_len} test rows and purge {purge} leave "
            f"{max(first_train, 0)} training rows for the first fold; min_train_size={min_train_size} "
            f"needs {min_rows}: lower n_splits or test_size, or use a longer range",
            field="min_train_size",
        )

    folds: list[Fold] = []
    embargoed = np.zeros(n, dtype=bool)
    for i in range(n_splits):
        start = n - (n_splits - i) * test_len
        stop = start + test_len
        candidates = np.flatnonzero(~embargoed[: start - purge])
        # rolling: candidates always hold >= first_train rows (rows 0..first_start-purge-1
        # are never embargoed), so every fold keeps exactly first_train rows.
        train = candidates[-first_train:] if method == "rolling" else candidates
        folds.append(
            Fold(index=i, train=train.astype(np.int64), test=np.arange(start, stop, dtype=np.int64), purge=purge)
        )
        embargoed[stop : stop + embargo] = True
    return folds


def fold_spans(fold: Fold, timestamps: Any) -> dict[str, Any]:
    """First/last timestamp (inclusive) of the fold's train and test rows, and their counts."""
    index = pd.Index(timestamps)
    used = [a for a in (fold.train, fold.test) if len(a)]
    if used and max(int(a[-1]) for a in used) >= len(index):
        raise ValueError(f"fold {fold.index} uses rows beyond the {len(index)} timestamps given")

    def at(rows: np.ndarray, position: int) -> Any:
        return index[int(rows[position])] if len(rows) else None

    return {
        "train_start": at(fold.train, 0),
        "train_end": at(fold.train, -1),
        "test_start": at(fold.test, 0),
        "test_end": at(fold.test, -1),
        "n_train": int(len(fold.train)),
        "n_test": int(len(fold.test)),
    }
