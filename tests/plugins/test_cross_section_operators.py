"""Cross-sectional operators (rank, zscore, demean over the symbols of one date).

Expected values come from an independent computation written here: an explicit loop over
dates (and groups) with scipy.stats.rankdata and numpy mean / std, never from the module's
own output. The properties (causality, membership, row order) are checked bit for bit on
Hypothesis-drawn panels with NaNs, infinities, ties, lone symbols and missing groups.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from alphaforge.errors import InvalidInput
from alphaforge.plugins.features.cross_section import apply_cross_section, cs_demean, cs_rank, cs_zscore

OPERATORS = ("rank", "zscore", "demean")
DATES = pd.date_range("2024-01-01", periods=64, freq="D", tz="UTC")
SECTORS = ("tech", "energy", "banks")
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the independent computation -----------------------------------------------------------


def _by_hand_values(operator: str, values: np.ndarray) -> np.ndarray:
    """The operator on one cross-section whose values are all finite."""
    n = len(values)
    if operator == "rank":
        return (rankdata(values, method="average") - 1.0) / (n - 1) if n > 1 else np.array([0.5])
    if operator == "demean":
        return values - np.mean(values)
    if n < 2 or np.all(values == values[0]):  # zscore: no spread, no z-score
        return np.full(n, np.nan)
    return (values - np.mean(values)) / np.std(values, ddof=1)


def by_hand(frame: pd.DataFrame, operator: str, column: str, group_column: str | None = None) -> np.ndarray:
    """Loop over dates (and groups); only finite values with a group take part."""
    out = np.full(len(frame), np.nan)
    values = frame[column].to_numpy(dtype=float)
    stamps = frame["timestamp"].to_numpy()
    groups = frame[group_column].to_numpy(dtype=object) if group_column else np.full(len(frame), "all", dtype=object)
    for stamp in np.unique(stamps):
        for group in {g for g in groups[stamps == stamp] if not pd.isna(g)}:
            rows = np.flatnonzero((stamps == stamp) & (groups == group) & np.isfinite(values))
            if len(rows):
                out[rows] = _by_hand_values(operator, values[rows])
    return out


# -- panels ----------------------------------------------------------------------------------


def make_panel(rows: list[tuple[int, str, float, str | None]], index: list[int] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex([DATES[d] for d, *_ in rows], tz="UTC") if rows else DATES[:0],
            "symbol": [s for _, s, *_ in rows],
            "x": np.array([x for *_, x, _ in rows], dtype=float),
            "sector": pd.Series([g for *_, g in rows], dtype=object),
        },
        index=index,
    )


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    """40 dates x 14 symbols, ~20% absent, NaNs, infs, ties, three sectors and no-sector
    rows, plus: a date with one symbol, a constant date, an all-NaN date, a date whose
    sector holds one symbol, and a date where one sector is constant."""
    rng = np.random.default_rng(20240613)
    symbols = [f"S{i:02d}" for i in range(14)]
    rows = []
    for d in range(40):
        for s in symbols:
            if rng.random() < 0.2:
                continue
            x = rng.choice([-1.0, 0.5, 2.0]) if rng.random() < 0.3 else rng.normal(0, 3)
            x = np.nan if rng.random() < 0.1 else (np.inf if rng.random() < 0.02 else x)
            rows.append((d, s, x, None if rng.random() < 0.1 else str(rng.choice(SECTORS))))
    frame = make_panel(rows)
    frame["y"] = rng.lognormal(size=len(frame))
    frame = frame[frame["timestamp"] != DATES[0]]
    special = make_panel(
        [(0, "S03", 1.5, "tech")]
        + [(1, s, 3.3, SECTORS[i % 3]) for i, s in enumerate(symbols)]
        + [(2, s, np.nan, "tech") for s in symbols[:5]]
    )
    special["y"] = 1.0
    frame = pd.concat([frame[~frame["timestamp"].isin(DATES[:3])], special], ignore_index=True)
    frame.loc[(frame["timestamp"] == DATES[3]) & (frame["sector"] == "banks"), "sector"] = None
    frame.loc[(frame["timestamp"] == DATES[3]) & (frame["symbol"] == "S00"), ["x", "sector"]] = [1.0, "banks"]
    frame.loc[(frame["timestamp"] == DATES[4]) & (frame["sector"] == "energy"), "x"] = -7.0
    return frame.sample(frac=1.0, random_state=3)  # not in date order


def test_the_fixture_has_the_hard_cases(panel: pd.DataFrame) -> None:
    finite = panel[np.isfinite(panel["x"])]
    per_date = finite.groupby("timestamp")["x"]
    assert (per_date.count() == 1).any()
    assert ((per_date.nunique() == 1) & (per_date.count() > 1)).any()
    assert not panel.loc[panel["timestamp"] == DATES[2], "x"].notna().any()
    assert finite.duplicated(["timestamp", "x"]).any()  # ties
    assert panel["x"].isna().any() and np.isinf(panel["x"]).any() and panel["sector"].isna().any()
    per_sector = finite.groupby(["timestamp", "sector"])["x"]
    assert (per_sector.count() == 1).any() and ((per_sector.nunique() == 1) & (per_sector.count() > 1)).any()


# -- (a) values against the independent computation -------------------------------------------


@pytest.mark.parametrize("operator", OPERATORS)
@pytest.mark.parametrize("group_column", [None, "sector"])
def test_matches_a_loop_over_dates(panel: pd.DataFrame, operator: str, group_column: str | None) -> None:
    result = apply_cross_section(panel, operator, ["x", "y"], group_column=group_column)
    assert list(result.columns) == ["x", "y"] and result.index.equals(panel.index)
    assert (result.dtypes == "float64").all()
    for column in ("x", "y"):
        expected = by_hand(panel, operator, column, group_column)
        np.testing.assert_allclose(result[column].to_numpy(), expected, rtol=1e-10, atol=1e-12, equal_nan=True)
        assert result[column].notna().sum() > len(panel) // 2  # not vacuously NaN


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        # day 1: 3, 1, 2, 2 and a NaN; day 2: 5 alone, and an inf
        (cs_rank, [1.0, 0.0, 0.5, 0.5, np.nan, 0.5, np.nan]),
        (cs_zscore, [1.5**0.5, -(1.5**0.5), 0.0, 0.0, np.nan, np.nan, np.nan]),
        (cs_demean, [1.0, -1.0, 0.0, 0.0, np.nan, 0.0, np.nan]),
    ],
)
def test_small_panel_by_hand(function, expected: list[float]) -> None:  # type: ignore[no-untyped-def]
    frame = make_panel(
        [(0, "A", 3.0, "t"), (0, "B", 1.0, "t"), (0, "C", 2.0, "t"), (0, "D", 2.0, "t"), (0, "E", np.nan, "t"),
         (1, "A", 5.0, "t"), (1, "B", np.inf, "t")]
    )
    np.testing.assert_allclose(function(frame, "x")["x"].to_numpy(), expected, rtol=1e-12, equal_nan=True)


def test_groups_are_separate_cross_sections_and_no_group_is_nan() -> None:
    frame = make_panel(
        [(0, "A", 1.0, "tech"), (0, "B", 3.0, "tech"), (0, "C", 10.0, "banks"), (0, "D", 20.0, "banks"),
         (0, "E", 30.0, "banks"), (0, "F", 99.0, None), (0, "G", 5.0, np.nan)]
    )
    rank = cs_rank(frame, "x", group_column="sector")["x"].to_numpy()
    demean = cs_demean(frame, "x", group_column="sector")["x"].to_numpy()
    np.testing.assert_allclose(rank, [0.0, 1.0, 0.0, 0.5, 1.0, np.nan, np.nan], equal_nan=True)
    np.testing.assert_allclose(demean, [-1.0, 1.0, -10.0, 0.0, 10.0, np.nan, np.nan], equal_nan=True)


def test_constant_date_zscore_is_nan_and_demean_zero() -> None:
    frame = make_panel([(0, s, 0.1, "t") for s in "ABCDEFG"])
    assert cs_zscore(frame, "x")["x"].isna().all()
    np.testing.assert_allclose(cs_demean(frame, "x")["x"], 0.0, atol=1e-15)
    np.testing.assert_array_equal(cs_rank(frame, "x")["x"], 0.5)


# -- (b) causality ------------------------------------------------------------------------------

VALUES = st.one_of(
    st.sampled_from([-1.0, 0.0, 2.5]),  # ties
    st.floats(-1e6, 1e6, allow_nan=False),
    st.just(np.nan),
    st.just(np.inf),
)
GROUPS = st.sampled_from([*SECTORS[:2], None])


@st.composite
def panel_rows(draw: st.DrawFn, first_date: int, n_dates: int, symbols: list[str]) -> list[tuple]:
    cells = draw(
        st.lists(
            st.tuples(st.integers(first_date, first_date + n_dates - 1), st.sampled_from(symbols)),
            unique=True, min_size=1, max_size=n_dates * len(symbols),
        )
    )
    return [(d, s, draw(VALUES), draw(GROUPS)) for d, s in cells]


@st.composite
def panels(draw: st.DrawFn) -> pd.DataFrame:
    n_dates = draw(st.integers(1, 6))
    symbols = [f"S{i}" for i in range(draw(st.integers(1, 5)))]
    return make_panel(draw(panel_rows(0, n_dates, symbols)))


def _bits(frame: pd.DataFrame) -> np.ndarray:
    return frame.to_numpy(dtype="float64").view(np.uint64)


@PROPERTY
@given(panel=panels(), operator=st.sampled_from(OPERATORS), group_column=st.sampled_from([None, "sector"]), data=st.data())
def test_later_dates_never_change_earlier_outputs(
    panel: pd.DataFrame, operator: str, group_column: str | None, data: st.DataObject
) -> None:
    dates = sorted(panel["timestamp"].unique())
    cutoff = dates[data.draw(st.integers(0, len(dates) - 1), label="t")]
    early = panel[panel["timestamp"] <= cutoff]
    before = apply_cross_section(panel, operator, "x", group_column)

    # every row after t replaced: new values, groups, dates beyond the panel, new symbols
    first_later = DATES.get_loc(cutoff) + 1
    symbols = sorted(set(panel["symbol"])) + ["NEW1", "NEW2"]
    later = make_panel(data.draw(panel_rows(first_later, 4, symbols), label="later"))
    later.index = later.index + len(panel) + 100
    parts = [early, later] if data.draw(st.booleans(), label="early first") else [later, early]
    after = apply_cross_section(pd.concat(parts), operator, "x", group_column)

    np.testing.assert_array_equal(_bits(after.loc[early.index]), _bits(before.loc[early.index]))


# -- (c) membership -----------------------------------------------------------------------------


@PROPERTY
@given(panel=panels(), operator=st.sampled_from(OPERATORS), group_column=st.sampled_from([None, "sector"]))
def test_a_date_is_computed_from_its_own_rows_only(panel: pd.DataFrame, operator: str, group_column: str | None) -> None:
    """Each date's outputs equal those of that date alone, and padding the panel with NaN
    rows for every absent (date, symbol) changes nothing: absent = NaN = not counted."""
    whole = apply_cross_section(panel, operator, "x", group_column)
    for stamp in panel["timestamp"].unique():
        alone = panel[panel["timestamp"] == stamp]
        np.testing.assert_array_equal(_bits(apply_cross_section(alone, operator, "x", group_column)), _bits(whole.loc[alone.index]))
    grid = pd.MultiIndex.from_product([panel["timestamp"].unique(), panel["symbol"].unique()], names=["timestamp", "symbol"])
    present = pd.MultiIndex.from_frame(panel[["timestamp", "symbol"]])
    absent = grid.difference(present).to_frame(index=False)
    absent["x"], absent["sector"] = np.nan, "tech"
    absent.index = absent.index + len(panel) + 100
    padded = apply_cross_section(pd.concat([panel, absent]), operator, "x", group_column)
    np.testing.assert_array_equal(_bits(padded.loc[panel.index]), _bits(whole))
    assert padded.loc[absent.index, "x"].isna().all()


@pytest.mark.parametrize("operator", OPERATORS)
def test_a_symbol_absent_on_a_date_does_not_count_there(operator: str) -> None:
    rows = [(d, s, x, "t") for d in (0, 1) for s, x in zip("ABCD", (1.0, 4.0, 2.0, 8.0))]
    with_z = make_panel(rows + [(0, "Z", 100.0, "t")])  # Z trades on day 0 only
    without_z = make_panel(rows)
    both_days = make_panel(rows + [(0, "Z", 100.0, "t"), (1, "Z", 100.0, "t")])
    day1 = without_z.index[without_z["timestamp"] == DATES[1]]  # A-D on day 1: same labels in all three
    reference = apply_cross_section(without_z, operator, "x").loc[day1]
    np.testing.assert_array_equal(_bits(apply_cross_section(with_z, operator, "x").loc[day1]), _bits(reference))
    np.testing.assert_allclose(reference["x"], by_hand(without_z.loc[day1], operator, "x"))
    # the check can fail: Z present on day 1 does move the others
    assert not np.allclose(apply_cross_section(both_days, operator, "x").loc[day1, "x"], reference["x"])


# -- (d) row order ------------------------------------------------------------------------------


@PROPERTY
@given(panel=panels(), operator=st.sampled_from(OPERATORS), group_column=st.sampled_from([None, "sector"]), data=st.data())
def test_row_order_does_not_matter(panel: pd.DataFrame, operator: str, group_column: str | None, data: st.DataObject) -> None:
    shuffled = panel.iloc[data.draw(st.permutations(range(len(panel))), label="order")]
    result = apply_cross_section(shuffled, operator, "x", group_column)
    assert result.index.equals(shuffled.index)
    np.testing.assert_array_equal(_bits(result.loc[panel.index]), _bits(apply_cross_section(panel, operator, "x", group_column)))


def test_keeps_a_non_default_index() -> None:
    frame = make_panel([(1, "B", 2.0, "t"), (0, "A", 1.0, "t"), (1, "A", 1.0, "t")], index=["r1", "r2", "r3"])
    result = cs_rank(frame, "x")
    assert list(result.index) == ["r1", "r2", "r3"]
    np.testing.assert_array_equal(result["x"], [1.0, 0.5, 0.0])


# -- (e) bad input --------------------------------------------------------------------------------


def _good() -> pd.DataFrame:
    return make_panel([(0, "A", 1.0, "t"), (0, "B", 2.0, "t"), (1, "A", 3.0, None)])


@pytest.mark.parametrize(
    ("change", "call", "field", "says"),
    [
        (None, dict(operator="rank_pct"), "operator", "rank, zscore, demean"),
        (None, dict(columns="z"), "columns", "'z'"),
        (None, dict(columns=[]), "columns", "at least one"),
        (None, dict(columns=["x", "x"]), "columns", "once"),
        (None, dict(columns=["symbol"]), "columns", "keys"),
        (None, dict(group_column="industry"), "group_column", "'industry'"),
        (lambda f: f.drop(columns="symbol"), {}, "columns", "'symbol'"),
        (lambda f: f.drop(columns="timestamp"), {}, "columns", "'timestamp'"),
        (lambda f: pd.concat([f, f.iloc[[1]]]), {}, "symbol", "duplicate (timestamp, symbol)"),
        (lambda f: f.assign(timestamp=f["timestamp"].dt.tz_localize(None)), {}, "timestamp", "tz-aware"),
        (lambda f: f.assign(timestamp=f["timestamp"].where(f.index != 1)), {}, "timestamp", "NaT"),
        (lambda f: f.assign(symbol=["A", None, "A"]), {}, "symbol", "missing"),
        (lambda f: f.assign(x=["1", "2", "3"]), {}, "x", "numeric"),
    ],
)
def test_bad_input_says_what_to_change(change, call: dict, field: str, says: str) -> None:  # type: ignore[no-untyped-def]
    frame = change(_good()) if change else _good()
    arguments = {"operator": "rank", "columns": "x", "group_column": None} | call
    with pytest.raises(InvalidInput) as raised:
        apply_cross_section(frame, **arguments)
    assert raised.value.context.get("field") == field
    assert says in raised.value.message


def test_good_input_passes() -> None:  # the bad-input cases differ from it by one change
    assert cs_zscore(_good(), "x", group_column="sector")["x"].isna().tolist() == [False, False, True]
