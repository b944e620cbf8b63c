"""Walk-forward folds for panels (many symbols per timestamp), split by date.

A panel's rows are keyed ``(timestamp, symbol)`` and sorted by timestamp, then symbol. A
pooled cross-sectional model sees every symbol of a date at once, so splitting its rows as
if they were one series would put some symbols of a date in training and others of the
same date in test, and count purge and embargo in rows rather than in time. Here:

- the *calendar* is the panel's distinct timestamps in order; date ``d`` is the ``d``-th;
- folds are :func:`alphaforge.evaluation.cv.make_folds` run over the calendar, so every
  rule there holds with "row" read as "date": back-anchored disjoint test windows, the
  ``purge`` (default ``h``, never less) dates before each test window dropped from its
  training set, the ``embargo`` dates after every earlier test window removed,
  ``rolling``/``expanding``, and fractions (``test_size``, ``min_train_size``) of *dates*:
  a date with many symbols weighs no more than one with few;
- a fold's rows are exactly the rows of its dates: a date is never split between train and
  test. Test rows are contiguous (the rows are sorted by date);
- ``horizon`` is counted in calendar dates: the label of a row at date ``d`` spans dates
  ``[d, d+h]``. A target computed over a symbol's *own* bars spans more calendar dates when
  the symbol misses some, so pass the longest such span as the horizon.

Unsorted or duplicated rows, missing timestamps and an empty panel are an
:class:`InvalidInput` (422) saying how to fix the panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.errors import InvalidInput
from alphaforge.evaluation.cv import Fold, Method, fold_spans, make_folds


@dataclass(frozen=True)
class PanelFold:
    index: int
    train: np.ndarray  # sorted int row indices: every row of the training dates
    test: np.ndarray  # contiguous sorted int row indices: every row of the test dates
    dates: Fold  # the same fold over date indices (what make_folds returned)

    @property
    def train_dates(self) -> np.ndarray:
        """Sorted date indices trained on (may have holes: embargoed dates)."""
        return self.dates.train

    @property
    def test_dates(self) -> np.ndarray:
        """Contiguous date indices tested on."""
        return self.dates.test

    @property
    def purge(self) -> int:
        """Dates right before the test window whose rows the fold never trains on."""
        return self.dates.purge

    def known_targets(self, y: np.ndarray, row_dates: np.ndarray) -> np.ndarray:
        """:meth:`Fold.known_targets` by date: the labels of the rows up to the end of the
        test window, every row of the purge gap's dates withheld (NaN). ``row_dates`` holds
        each row's date (the timestamps the folds were made from, or their calendar codes);
        the test rows' forecasts each read only the labels realised by their own date."""
        start, stop = int(self.test[0]), int(self.test[-1]) + 1
        known = np.array(y[:stop], dtype=np.float64)
        # Date positions in the panel's calendar (any non-decreasing codes or timestamps will do).
        position = np.unique(np.asarray(row_dates[:stop]), return_inverse=True)[1].reshape(-1)
        known[:start][position[:start] >= position[start] - self.purge] = np.nan
        return known


def _first_disorder(timestamps: pd.Index) -> int:
    """The first row that comes before its predecessor in time (the index is not sorted)."""
    try:
        backwards = np.asarray(timestamps[1:] < timestamps[:-1], dtype=bool)
    except TypeError as exc:
        raise InvalidInput(
            f"timestamps must be mutually comparable (one type, one time zone): {exc}", field="timestamps"
        ) from exc
    return int(np.flatnonzero(backwards)[0]) + 1


def _check_symbol_order(row_dates: np.ndarray, symbols: Any) -> None:
    """Within a date, symbols must strictly increase: sorted, and one row per (date, symbol)."""
    names = pd.Index(symbols).to_numpy(dtype=object)
    if len(names) != len(row_dates):
        raise InvalidInput(
            f"symbols has {len(names)} entries but timestamps has {len(row_dates)}: give one per row",
            field="symbols",
        )
    same_date = row_dates[1:] == row_dates[:-1]
    try:
        ascending = np.asarray(names[:-1] < names[1:], dtype=bool)
    except TypeError as exc:
        raise InvalidInput(f"symbols must be mutually comparable (e.g. all strings): {exc}", field="symbols") from exc
    bad = np.flatnonzero(same_date & ~ascending)
    if len(bad):
        row = int(bad[0]) + 1
        problem = (
            f"repeats symbol {names[row]!r}"
            if names[row] == names[row - 1]
            else f"has symbol {names[row]!r} after {names[row - 1]!r}"
        )
        raise InvalidInput(
            f"row {row} {problem} on the same timestamp; a panel holds one row per (timestamp, symbol), "
            f"sorted by timestamp then symbol: deduplicate and sort it",
            field="symbols",
        )


def panel_calendar(timestamps: np.ndarray | pd.Index, *, symbols: Any = None) -> tuple[np.ndarray, pd.Index]:
    """Each row's date index (its timestamp's position in the calendar) and the calendar.

    Checks the panel's order, since folds map dates to rows by position: with ``symbols``,
    also that each ``(timestamp, symbol)`` appears once and symbols are sorted within a date.
    """
    index = pd.Index(timestamps)
    missing = int(index.isna().sum())
    if missing:
        raise InvalidInput(
            f"timestamps has {missing} missing value(s) (NaT/None); every panel row needs a timestamp: drop them",
            field="timestamps",
        )
    if not index.is_monotonic_increasing:
        row = _first_disorder(index)
        raise InvalidInput(
            f"panel rows must be sorted by timestamp, then symbol: row {row} ({index[row]}) is earlier than "
            f"row {row - 1} ({index[row - 1]}); sort the panel by (timestamp, symbol) first",
            field="timestamps",
        )
    codes, calendar = pd.factorize(index)  # sorted input: codes ascend 0, 0, 1, 2, 2, ...
    row_dates = np.asarray(codes, dtype=np.int64)
    if symbols is not None:
        _check_symbol_order(row_dates, symbols)
    return row_dates, pd.Index(calendar)


def _rows_of_dates(dates: np.ndarray, row_dates: np.ndarray, n_dates: int) -> np.ndarray:
    """Every row whose date is in ``dates``, ascending."""
    chosen = np.zeros(n_dates, dtype=bool)
    chosen[dates] = True
    return np.flatnonzero(chosen[row_dates]).astype(np.int64)


def panel_folds(
    timestamps: np.ndarray | pd.Index,
    *,
    method: Method,
    n_splits: int,
    test_size: float,
    min_train_size: float,
    horizon: int,
    purge: int | None = None,
    embargo: int = 0,
    symbols: Any = None,
) -> list[PanelFold]:
    """Walk-forward folds over a sorted panel's rows, split by date; see the module docstring.

    Arguments are those of :func:`make_folds`, counted in dates; ``symbols`` (optional, one per
    row) also checks that no ``(timestamp, symbol)`` repeats.
    """
    row_dates, calendar = panel_calendar(timestamps, symbols=symbols)
    n_dates = len(calendar)
    if n_dates == 0:
        raise InvalidInput("the panel has no rows: give it at least one timestamp", field="timestamps")
    try:
        date_folds = make_folds(
            n_dates,
            method=method,
            n_splits=n_splits,
            test_size=test_size,
            min_train_size=min_train_size,
            horizon=horizon,
            purge=purge,
            embargo=embargo,
        )
    except InvalidInput as exc:
        raise InvalidInput(
            f"{exc.message} (a panel is split by date: 'rows' here are its {n_dates} dates, "
            f"which hold {len(row_dates)} rows)",
            **exc.context,
        ) from exc
    # first row of each date, plus one past the end: date d's rows are starts[d]:starts[d+1]
    starts = np.searchsorted(row_dates, np.arange(n_dates + 1), side="left")
    return [
        PanelFold(
            index=fold.index,
            train=_rows_of_dates(fold.train, row_dates, n_dates),
            test=np.arange(starts[fold.test[0]], starts[fold.test[-1] + 1], dtype=np.int64),
            dates=fold,
        )
        for fold in date_folds
    ]


def panel_fold_spans(fold: PanelFold, timestamps: Any) -> dict[str, Any]:
    """First/last timestamp (inclusive) of the fold's train and test rows, their row counts
    (``n_train``, ``n_test``) and date counts (``n_train_dates``, ``n_test_dates``)."""
    rows = Fold(index=fold.index, train=fold.train, test=fold.test, purge=fold.purge)
    return {
        **fold_spans(rows, timestamps),
        "n_train_dates": int(len(fold.train_dates)),
        "n_test_dates": int(len(fold.test_dates)),
    }
