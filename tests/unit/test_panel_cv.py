"""Panel splitter: date-level leakage invariants on random panels (property tests), equality
with ``make_folds`` on one-symbol panels, hand-computed folds, spans, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from alphaforge.errors import InvalidInput
from alphaforge.evaluation.cv import Fold, make_folds
from alphaforge.evaluation.panel import PanelFold, panel_calendar, panel_fold_spans, panel_folds

SYMBOLS = np.array(["AAA", "BBB", "CCC", "DDD", "EEE"], dtype=object)
START = pd.Timestamp("2021-03-01", tz="UTC")


def build_panel(memberships: list[int], gaps_hours: list[int]) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """Rows sorted by (timestamp, symbol); date ``d`` holds the symbols whose bit is set in
    ``memberships[d]``. Returns timestamps, symbols and each row's date index (by construction)."""
    stamps = START + pd.to_timedelta(np.cumsum(gaps_hours), unit="h")
    row_stamps, row_symbols, row_dates = [], [], []
    for d, mask in enumerate(memberships):
        for s, symbol in enumerate(SYMBOLS):
            if mask >> s & 1:
                row_stamps.append(stamps[d])
                row_symbols.append(symbol)
                row_dates.append(d)
    return pd.DatetimeIndex(row_stamps), np.array(row_symbols, dtype=object), np.array(row_dates)


def violations(
    folds: list[PanelFold], *, row_dates: np.ndarray, n_splits: int, horizon: int, purge: int, embargo: int
) -> list[str]:
    """Every broken invariant, described. ``row_dates`` is each row's date index as the panel
    was built; nothing here reads the splitter's code."""
    found: list[str] = []
    if len(folds) != n_splits:
        found.append(f"{len(folds)} folds, expected {n_splits}")
    if purge < horizon:
        found.append(f"purge {purge} < horizon {horizon}")
    seen_test_rows: set[int] = set()
    for k, fold in enumerate(folds):
        train, test = np.asarray(fold.train), np.asarray(fold.test)
        if fold.index != k:
            found.append(f"fold {k} has index {fold.index}")
        if fold.purge != purge:
            found.append(f"fold {k}: purge {fold.purge}, expected {purge}")
        if len(test) == 0 or not np.array_equal(test, np.arange(test[0], test[0] + len(test))):
            found.append(f"fold {k}: test rows are not contiguous")
        if len(train) and np.any(np.diff(train) <= 0):
            found.append(f"fold {k}: train rows not sorted/unique")
        train_dates = set(row_dates[train].tolist())
        test_dates = set(row_dates[test].tolist())
        # the rows are exactly all rows of those dates
        if not np.array_equal(train, np.flatnonzero(np.isin(row_dates, list(train_dates)))):
            found.append(f"fold {k}: train rows are not all the rows of its dates")
        if not np.array_equal(test, np.flatnonzero(np.isin(row_dates, list(test_dates)))):
            found.append(f"fold {k}: test rows are not all the rows of its dates")
        if sorted(train_dates) != fold.train_dates.tolist() or sorted(test_dates) != fold.test_dates.tolist():
            found.append(f"fold {k}: date indices disagree with its rows")
        if train_dates & test_dates:
            found.append(f"fold {k}: dates {sorted(train_dates & test_dates)} on both sides")
        if test_dates and sorted(test_dates) != list(range(min(test_dates), max(test_dates) + 1)):
            found.append(f"fold {k}: test dates not contiguous")
        # a training label spans dates [d, d + horizon]; purge >= horizon keeps it out of the window
        if train_dates and test_dates and max(train_dates) > min(test_dates) - purge - 1:
            found.append(f"fold {k}: train date {max(train_dates)} within purge {purge} of test {min(test_dates)}")
        for earlier in folds[:k]:
            end = int(row_dates[np.asarray(earlier.test)].max())
            hit = sorted(d for d in train_dates if end < d <= end + embargo)
            if hit:
                found.append(f"fold {k}: dates {hit} in the embargo after fold {earlier.index}")
        rows = set(test.tolist())
        if rows & seen_test_rows:
            found.append(f"fold {k}: test rows shared with an earlier fold")
        seen_test_rows |= rows
    return found


@st.composite
def panels(draw: st.DrawFn) -> dict:
    n_dates = draw(st.integers(1, 300))
    return {
        # bit s set: symbol s trades that date (never no symbol: a date exists only through its rows)
        "memberships": draw(st.lists(st.integers(1, 31), min_size=n_dates, max_size=n_dates)),
        "gaps_hours": draw(st.lists(st.integers(1, 80), min_size=n_dates, max_size=n_dates)),
    }


@st.composite
def cv_configs(draw: st.DrawFn) -> dict:
    horizon = draw(st.integers(1, 8))
    return {
        "method": draw(st.sampled_from(["rolling", "expanding"])),
        "n_splits": draw(st.integers(1, 6)),
        "test_size": draw(st.integers(1, 200)) / 1000,
        "min_train_size": draw(st.integers(1, 400)) / 1000,
        "horizon": horizon,
        "purge": draw(st.none() | st.integers(horizon, horizon + 6)),
        "embargo": draw(st.integers(0, 8)),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(panels(), cv_configs())
def test_panel_folds_never_leak(panel: dict, cfg: dict) -> None:
    stamps, symbols, row_dates = build_panel(panel["memberships"], panel["gaps_hours"])
    n_dates = len(panel["memberships"])
    try:
        date_folds = make_folds(n_dates, **cfg)
    except InvalidInput as refused:
        event("config refused by make_folds")
        with pytest.raises(InvalidInput) as info:
            panel_folds(stamps, symbols=symbols, **cfg)
        assert info.value.context.get("field") == refused.context.get("field")
        assert f"its {n_dates} dates" in info.value.message
        return
    event("config accepted")
    folds = panel_folds(stamps, symbols=symbols, **cfg)
    purge = cfg["horizon"] if cfg["purge"] is None else cfg["purge"]
    found = violations(
        folds, row_dates=row_dates, n_splits=cfg["n_splits"], horizon=cfg["horizon"], purge=purge,
        embargo=cfg["embargo"],
    )
    note(f"{n_dates} dates, {len(stamps)} rows")
    assert not found, found
    # the date folds are make_folds' own, not a second splitter's
    for fold, expected in zip(folds, date_folds, strict=True):
        assert np.array_equal(fold.train_dates, expected.train)
        assert np.array_equal(fold.test_dates, expected.test)


@settings(max_examples=60, deadline=None)
@given(st.integers(5, 400), cv_configs())
def test_one_symbol_per_date_equals_make_folds(n: int, cfg: dict) -> None:
    stamps = pd.date_range("2020-01-01", periods=n, freq="D")
    try:
        expected = make_folds(n, **cfg)
    except InvalidInput:
        with pytest.raises(InvalidInput):
            panel_folds(stamps, **cfg)
        return
    folds = panel_folds(stamps, **cfg)
    assert [(f.index, f.train.tolist(), f.test.tolist(), f.purge) for f in folds] == [
        (f.index, f.train.tolist(), f.test.tolist(), f.purge) for f in expected
    ]


def test_property_checker_catches_leakage() -> None:
    """The invariant checker is not vacuous: split dates, missing rows, purge and embargo breaches fail it."""
    stamps, symbols, row_dates = build_panel(COUNT_MASKS, [24] * len(COUNT_MASKS))
    args = dict(row_dates=row_dates, n_splits=3, horizon=1, purge=1, embargo=1)
    good = panel_folds(stamps, symbols=symbols, **HAND)
    assert not violations(good, **args)

    def tampered(k: int, train: np.ndarray) -> list[PanelFold]:
        fold = good[k]
        changed = PanelFold(index=k, train=np.asarray(train, dtype=np.int64), test=fold.test, dates=fold.dates)
        return good[:k] + [changed] + good[k + 1 :]

    # one row of the first test date (date 6, rows 11..) slipped into training: a date split across sides
    assert any("both sides" in v for v in violations(tampered(0, np.append(good[0].train, 11)), **args))
    # one row of a training date dropped: rows no longer all the rows of its dates
    assert any("all the rows" in v for v in violations(tampered(0, good[0].train[1:]), **args))
    # date 5 (rows 9, 10) is inside fold 0's purge
    assert any("within purge" in v for v in violations(tampered(0, np.append(good[0].train, [9, 10])), **args))
    # date 8 (rows 15, 16) is in the embargo after fold 0
    assert any("embargo" in v for v in violations(tampered(2, np.append(good[2].train, [15, 16])), **args))
    assert any("purge 0 < horizon 1" in v for v in violations(good, **{**args, "purge": 0, "horizon": 1}))


# Hand-computed panel: 12 daily dates holding 2,1,3,1,2,2,1,3,2,1,2,1 symbols (21 rows), so
# date d's rows start at 0,2,3,6,7,9,11,12,15,17,18,20 (end 21). test_size 0.17 of 12 dates
# -> 2 test dates, 3 folds -> test dates [6,7], [8,9], [10,11]; horizon 1, purge 1 -> train
# dates before 5 / 7 / 9; embargo 1 removes date 8 (after fold 0's window) from fold 2.
COUNT_MASKS = [0b11, 0b1, 0b111, 0b10, 0b101, 0b11000, 0b100, 0b10101, 0b11, 0b1000, 0b110, 0b1]
HAND = dict(method="expanding", n_splits=3, test_size=0.17, min_train_size=0.25, horizon=1, embargo=1)


def test_expanding_hand_computed() -> None:
    stamps, symbols, _ = build_panel(COUNT_MASKS, [24] * 12)
    assert len(stamps) == 21
    folds = panel_folds(stamps, symbols=symbols, **HAND)
    assert [f.test.tolist() for f in folds] == [list(range(11, 15)), list(range(15, 18)), list(range(18, 21))]
    assert [f.train.tolist() for f in folds] == [list(range(0, 9)), list(range(0, 12)), list(range(0, 15))]
    assert [f.train_dates.tolist() for f in folds] == [list(range(5)), list(range(7)), list(range(8))]
    assert [f.test_dates.tolist() for f in folds] == [[6, 7], [8, 9], [10, 11]]
    assert {f.purge for f in folds} == {1}


def test_rolling_hand_computed() -> None:
    stamps, symbols, _ = build_panel(COUNT_MASKS, [24] * 12)
    folds = panel_folds(stamps, symbols=symbols, **{**HAND, "method": "rolling"})
    # 5 training dates each: 0..4, then the last 5 of 0..6, then of 0..7 (date 8 embargoed)
    assert [f.train_dates.tolist() for f in folds] == [[0, 1, 2, 3, 4], [2, 3, 4, 5, 6], [3, 4, 5, 6, 7]]
    assert [f.train.tolist() for f in folds] == [list(range(0, 9)), list(range(3, 12)), list(range(6, 15))]


def test_panel_fold_spans() -> None:
    stamps, symbols, _ = build_panel(COUNT_MASKS, [24] * 12)
    folds = panel_folds(stamps, symbols=symbols, **HAND)
    day = pd.Timedelta(days=1)
    assert panel_fold_spans(folds[2], stamps) == {
        "train_start": START + day,  # the first gap is one day too
        "train_end": START + 8 * day,  # date 7
        "test_start": START + 11 * day,  # date 10
        "test_end": START + 12 * day,  # date 11
        "n_train": 15,
        "n_test": 3,
        "n_train_dates": 8,
        "n_test_dates": 2,
    }
    with pytest.raises(ValueError):
        panel_fold_spans(folds[2], stamps[:20])


def test_panel_calendar() -> None:
    stamps, symbols, row_dates = build_panel(COUNT_MASKS, [24] * 12)
    codes, calendar = panel_calendar(stamps, symbols=symbols)
    assert codes.tolist() == row_dates.tolist()
    assert list(calendar) == [START + pd.Timedelta(days=d) for d in range(1, 13)]
    assert str(calendar.tz) == "UTC"
    plain, _ = panel_calendar(np.array([3, 3, 7, 9, 9, 9]))
    assert plain.tolist() == [0, 0, 1, 2, 2, 2]


def _refusal(timestamps: object, **kwargs: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        panel_folds(timestamps, **{**HAND, **kwargs})  # type: ignore[arg-type]
    assert info.value.status_code == 422
    return info.value


def test_unsorted_panel_is_refused() -> None:
    stamps = pd.DatetimeIndex(["2024-01-02", "2024-01-01", "2024-01-03"] * 10)
    error = _refusal(stamps)
    assert error.context["field"] == "timestamps"
    assert "row 1" in error.message and "sort" in error.message


def test_symbols_out_of_order_or_repeated_are_refused() -> None:
    stamps, symbols, _ = build_panel(COUNT_MASKS, [24] * 12)
    swapped = symbols.copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    error = _refusal(stamps, symbols=swapped)
    assert error.context["field"] == "symbols" and "row 1" in error.message
    repeated = symbols.copy()
    repeated[1] = repeated[0]
    assert "repeats symbol 'AAA'" in _refusal(stamps, symbols=repeated).message
    assert _refusal(stamps, symbols=symbols[:-1]).context["field"] == "symbols"


def test_missing_timestamps_and_empty_panels_are_refused() -> None:
    with_nat = pd.DatetimeIndex(["2024-01-01", None, "2024-01-03"])
    assert _refusal(with_nat).context["field"] == "timestamps"
    assert "no rows" in _refusal(pd.DatetimeIndex([])).message


def test_impossible_configuration_counts_dates_not_rows() -> None:
    # 12 dates over 21 rows: 3 folds x 2 test dates and purge 1 leave 5 dates, min_train 0.5 needs 6
    stamps, symbols, _ = build_panel(COUNT_MASKS, [24] * 12)
    error = _refusal(stamps, min_train_size=0.5)
    assert error.context["field"] == "min_train_size"
    assert "n=12 rows" in error.message and "its 12 dates, which hold 21 rows" in error.message
    assert _refusal(stamps, purge=0, horizon=2).context["field"] == "purge"


def test_panel_fold_is_a_fold_over_dates() -> None:
    stamps, symbols, _ = build_panel(COUNT_MASKS, [24] * 12)
    fold = panel_folds(stamps, symbols=symbols, **HAND)[0]
    assert isinstance(fold.dates, Fold)
    assert fold.dates.index == fold.index == 0


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(panels(), cv_configs())
def test_known_targets_withhold_every_row_of_the_purge_dates_and_nothing_else(panel: dict, cfg: dict) -> None:
    """The per-date twin of ``Fold.known_targets``: labels of rows up to the test window's
    end, every row of the ``purge`` dates before it withheld, whichever way dates are given."""
    stamps, symbols, row_dates = build_panel(panel["memberships"], panel["gaps_hours"])
    try:
        folds = panel_folds(stamps, symbols=symbols, **cfg)
    except InvalidInput:
        return
    y = np.arange(len(stamps), dtype=np.float64) + 1.0
    for fold in folds:
        stop = int(fold.test[-1]) + 1
        first_test = int(row_dates[fold.test[0]])
        gap = (row_dates[:stop] >= first_test - fold.purge) & (row_dates[:stop] < first_test)
        expected = np.where(gap, np.nan, y[:stop])
        for dates in (row_dates, stamps, row_dates * 3 + 7):  # positions, timestamps, other codes
            np.testing.assert_array_equal(fold.known_targets(y, dates), expected)


def test_known_targets_of_one_symbol_per_date_are_the_single_series_ones() -> None:
    stamps = pd.date_range("2020-01-01", periods=60, freq="D")
    y = np.linspace(-1.0, 1.0, 60)
    cfg = {"method": "expanding", "n_splits": 3, "test_size": 0.1, "min_train_size": 0.2, "horizon": 2, "purge": 4}
    for fold, single in zip(panel_folds(stamps, **cfg), make_folds(60, **cfg), strict=True):
        np.testing.assert_array_equal(fold.known_targets(y, stamps), single.known_targets(y))
