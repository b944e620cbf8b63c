"""Cross-sectional operators: combine the symbols of a universe on the same date.

The rule: the value at (t, s) is computed from the values at date t of the symbols present
at t (and, "within groups", of the same group) — nothing else. No other date enters, so
the operators are causal by construction: a panel extended with later dates, or with
symbols that only appear later, leaves every earlier output bit for bit unchanged.

Input is a long panel: one row per (``timestamp``, ``symbol``), tz-aware datetimes, one or
more float value columns and optionally a group column (a sector label; NaN/None = no
group). A "date" is one exact timestamp. Only finite values count: NaN and ±inf stay NaN
in the output and take no part in the statistics of their date, exactly as if the row
were absent. Output: the value columns transformed, same index and row order as the input.

Rows are sorted internally by (timestamp, symbol) before the per-date reductions, so the
floating-point summation order within a date depends only on which symbols are there:
the result is bit-identical whatever the input row order and whatever the other dates hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import pandas as pd
from pandas.api.typing import SeriesGroupBy

from alphaforge.errors import InvalidInput

CrossSectionOperator = Literal["rank", "zscore", "demean"]
CROSS_SECTION_OPERATORS: tuple[str, ...] = get_args(CrossSectionOperator)

TIMESTAMP = "timestamp"
SYMBOL = "symbol"


@dataclass(frozen=True)
class _Layout:
    """How rows are reordered and grouped: ``order`` sorts the input by (timestamp,
    symbol); ``keys[i]`` is the (date[, group]) of sorted row i, -1 where it has no group."""

    order: np.ndarray
    keys: np.ndarray


def apply_cross_section(
    frame: pd.DataFrame,
    operator: CrossSectionOperator,
    columns: str | Sequence[str],
    group_column: str | None = None,
) -> pd.DataFrame:
    """Apply ``operator`` ("rank", "zscore" or "demean") to each of ``columns`` per date,
    or per (date, group) when ``group_column`` is given. Returns the transformed columns
    (float64) with ``frame``'s index; raises ``InvalidInput`` on a malformed panel."""
    if operator not in _OPERATORS:
        raise InvalidInput(
            f"unknown cross-sectional operator {operator!r}; use one of {', '.join(CROSS_SECTION_OPERATORS)}",
            field="operator",
        )
    names = _validate(frame, columns, group_column)
    layout = _layout(frame, group_column)
    transform = _OPERATORS[operator]
    out = {name: _apply_column(frame[name], layout, transform) for name in names}
    return pd.DataFrame(out, index=frame.index, columns=names)


def cs_rank(frame: pd.DataFrame, columns: str | Sequence[str], group_column: str | None = None) -> pd.DataFrame:
    """Per date, the percentile rank of each finite value among that date's finite values:
    ``(rank - 1) / (n - 1)`` with average ranks for ties, so the lowest is 0, the highest 1
    and the scale is the same whatever ``n`` (unlike ``rank / n``, which never reaches 0 and
    drifts with the universe size). A date with one finite value gives 0.5: alone, it is
    neither high nor low, and the midpoint is the neutral score a long-short signal ignores."""
    return apply_cross_section(frame, "rank", columns, group_column)


def cs_zscore(frame: pd.DataFrame, columns: str | Sequence[str], group_column: str | None = None) -> pd.DataFrame:
    """Per date, ``(x - mean) / std`` across symbols (sample std, ddof 1); NaN where fewer
    than 2 finite values or the values are all equal (no spread, no z-score)."""
    return apply_cross_section(frame, "zscore", columns, group_column)


def cs_demean(frame: pd.DataFrame, columns: str | Sequence[str], group_column: str | None = None) -> pd.DataFrame:
    """Per date, ``x - mean`` across symbols (a lone value gives 0): removes the market
    (or sector) component shared by every symbol that date."""
    return apply_cross_section(frame, "demean", columns, group_column)


# -- per-group kernels (pandas groupby, no loop over dates) --------------------------------


def _rank(values: np.ndarray, grouped: SeriesGroupBy) -> np.ndarray:
    rank = grouped.rank(method="average", na_option="keep").to_numpy(dtype="float64")
    count = grouped.transform("count").to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = (rank - 1.0) / (count - 1.0)
    return np.where(count == 1.0, np.where(np.isnan(rank), np.nan, 0.5), pct)


def _zscore(values: np.ndarray, grouped: SeriesGroupBy) -> np.ndarray:
    mean = grouped.transform("mean").to_numpy(dtype="float64")
    std = grouped.transform("std").to_numpy(dtype="float64")  # ddof 1; NaN below 2 values
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (values - mean) / std
    z[~(std > 0)] = np.nan
    return z


def _demean(values: np.ndarray, grouped: SeriesGroupBy) -> np.ndarray:
    return values - grouped.transform("mean").to_numpy(dtype="float64")


#: A kernel gets the sorted values (NaN where they do not count) and them grouped by key.
_Kernel = Callable[[np.ndarray, SeriesGroupBy], np.ndarray]

_OPERATORS: dict[str, _Kernel] = {
    "rank": _rank,
    "zscore": _zscore,
    "demean": _demean,
}


def _apply_column(column: pd.Series, layout: _Layout, transform: _Kernel) -> np.ndarray:
    """Sort, blank what does not count (non-finite, no group), reduce per key, unsort."""
    values = column.to_numpy(dtype="float64", na_value=np.nan)[layout.order]
    values[~np.isfinite(values) | (layout.keys < 0)] = np.nan
    grouped = pd.Series(values).groupby(layout.keys, sort=False)
    result = np.empty(len(values))
    result[layout.order] = transform(values, grouped)
    return result


def _layout(frame: pd.DataFrame, group_column: str | None) -> _Layout:
    """Sort order and (date[, group]) keys; refuses duplicate (timestamp, symbol) rows."""
    dates, _ = pd.factorize(frame[TIMESTAMP], sort=True)
    try:
        symbols, _ = pd.factorize(frame[SYMBOL], sort=True)
    except TypeError:
        raise InvalidInput("symbol must hold strings (one type of label)", field=SYMBOL) from None
    order = np.lexsort((symbols, dates))
    dates, symbols = dates[order], symbols[order]
    duplicate = (dates[1:] == dates[:-1]) & (symbols[1:] == symbols[:-1])
    if duplicate.any():
        first = order[1:][duplicate][0]
        raise InvalidInput(
            f"{int(duplicate.sum())} duplicate (timestamp, symbol) row(s), e.g. "
            f"{frame[SYMBOL].iloc[first]!r} at {frame[TIMESTAMP].iloc[first]}; keep one row per symbol and date",
            field=SYMBOL,
        )
    keys = dates.astype(np.int64)
    if group_column is not None:
        groups, labels = pd.factorize(frame[group_column], use_na_sentinel=True)
        groups = groups[order]
        keys = np.where(groups >= 0, keys * max(len(labels), 1) + groups, -1)
    return _Layout(order=order, keys=keys)


# -- validation -----------------------------------------------------------------------------


def _validate(frame: pd.DataFrame, columns: str | Sequence[str], group_column: str | None) -> list[str]:
    """The value column names, once the panel is known to be well-formed."""
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput(f"expected a pandas DataFrame panel, got {type(frame).__name__}", field="frame")
    names = [columns] if isinstance(columns, str) else list(columns)
    _check_names(frame, names, group_column)
    _check_keys(frame)
    for name in names:
        dtype = frame[name].dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise InvalidInput(f"value column {name!r} must be numeric (float), got {dtype}", field=name)
    return names


def _check_names(frame: pd.DataFrame, names: list[str], group_column: str | None) -> None:
    if not names:
        raise InvalidInput("name at least one value column to transform", field="columns")
    if len(set(names)) != len(names):
        raise InvalidInput(f"value columns are repeated in {names}; name each once", field="columns")
    reserved = {TIMESTAMP, SYMBOL, group_column} & set(names)
    if reserved:
        raise InvalidInput(f"{sorted(map(str, reserved))} cannot be value columns: they are keys", field="columns")
    if frame.columns.duplicated().any():
        raise InvalidInput("the panel has repeated column names; make them unique", field="frame")
    required = [TIMESTAMP, SYMBOL, *names] + ([group_column] if group_column is not None else [])
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"the panel lacks column(s) {missing}; it needs 'timestamp', 'symbol', the value columns"
            " and the group column if one is named",
            field="group_column" if missing == [group_column] else "columns",
        )


def _check_keys(frame: pd.DataFrame) -> None:
    if not isinstance(frame[TIMESTAMP].dtype, pd.DatetimeTZDtype):
        raise InvalidInput(
            f"timestamp must be tz-aware UTC datetimes (pd.to_datetime(..., utc=True)), got {frame[TIMESTAMP].dtype}",
            field=TIMESTAMP,
        )
    if frame[TIMESTAMP].isna().any():
        raise InvalidInput("timestamp has missing values (NaT); drop those rows or give them a date", field=TIMESTAMP)
    if frame[SYMBOL].isna().any():
        raise InvalidInput("symbol has missing values; every row needs a symbol", field=SYMBOL)
