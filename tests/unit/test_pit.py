"""PitSeries: as-of values by hand and against a brute force, and its fingerprint."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.marketdata.pit import PitSeries

DAY = 86_400 * 10**9


def _ns(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value


def _pit(records: list[tuple[str, str, float]]) -> PitSeries:
    return PitSeries(
        observation=np.array([_ns(o) for o, _, _ in records], dtype="int64"),
        available=np.array([_ns(a) for _, a, _ in records], dtype="int64"),
        value=np.array([v for _, _, v in records], dtype="float64"),
    )


# Monthly CPI-like series, published mid next month; January restated in April.
CPI = [
    ("2020-01-01", "2020-02-15", 100.0),
    ("2020-02-01", "2020-03-15", 101.0),
    ("2020-01-01", "2020-04-10", 100.5),  # restatement of January
    ("2020-03-01", "2020-04-15", 102.0),
]


def _times(*texts: str) -> np.ndarray:
    return np.array([_ns(t) for t in texts], dtype="int64")


def test_as_of_respects_the_publication_lag_and_is_nan_before_first_availability() -> None:
    pit = _pit(CPI)
    times = _times("2020-01-31", "2020-02-14", "2020-02-15", "2020-03-14", "2020-03-15", "2020-04-16")
    out = pit.as_of(times)
    assert np.isnan(out[0]) and np.isnan(out[1])  # January is not published until Feb 15
    assert out[2] == 100.0  # usable at exactly its available_at
    assert out[3] == 100.0  # February not yet out
    assert out[4] == 101.0
    assert out[5] == 102.0


def test_as_of_with_lag_sees_the_restatement_only_after_it_is_published() -> None:
    pit = _pit(CPI)
    times = _times("2020-03-15", "2020-04-09", "2020-04-10", "2020-04-15")
    # lag=1: the observation before the latest one known.
    out = pit.as_of(times, lag=1)
    assert out[0] == 100.0  # Jan (first vintage), Feb is latest
    assert out[1] == 100.0  # restatement not yet available
    assert out[2] == 100.5  # Jan restated, Feb still latest
    assert out[3] == 101.0  # March out: lag 1 is now Feb
    assert np.isnan(pit.as_of(_times("2020-03-14"), lag=1)[0])  # only one observation known


def test_as_of_on_empty_inputs() -> None:
    assert len(PitSeries.empty().as_of(_times("2020-01-01"))) == 1
    assert np.isnan(PitSeries.empty().as_of(_times("2020-01-01"))[0])
    assert len(_pit(CPI).as_of(np.empty(0, "int64"))) == 0


def test_fingerprint_is_independent_of_record_order_and_changes_with_content() -> None:
    pit = _pit(CPI)
    shuffled = _pit([CPI[i] for i in (3, 1, 0, 2)])
    assert pit.fingerprint() == shuffled.fingerprint()
    assert pit.fingerprint() != _pit(CPI[:3]).fingerprint()
    assert pit.fingerprint() != _pit([*CPI[:3], ("2020-03-01", "2020-04-15", 102.5)]).fingerprint()
    assert pit.fingerprint() != _pit([*CPI[:3], ("2020-03-01", "2020-04-16", 102.0)]).fingerprint()
    assert PitSeries.empty().fingerprint() == PitSeries.empty().fingerprint()


records_strategy = st.lists(
    st.tuples(
        st.integers(0, 30),  # observation day
        st.integers(0, 10),  # publication lag in days
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    ),
    max_size=25,
    unique_by=lambda r: (r[0], r[1]),
)


def _brute_force(records: list[tuple[int, int, float]], t: int, lag: int) -> float:
    usable = [(o, o + d, v) for o, d, v in records if (o + d) * DAY <= t]
    dates = sorted({o for o, _, _ in usable})
    if len(dates) <= lag:
        return float("nan")
    obs = dates[-1 - lag]
    return max((a, v) for o, a, v in usable if o == obs)[1]


@settings(max_examples=200, deadline=None)
@given(
    records=records_strategy,
    times=st.lists(st.integers(-DAY, 45 * DAY), max_size=20).map(sorted),
    lag=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_as_of_equals_a_brute_force_recomputation(
    records: list[tuple[int, int, float]], times: list[int], lag: int, seed: int
) -> None:
    pit = PitSeries(
        observation=np.array([o * DAY for o, _, _ in records], dtype="int64"),
        available=np.array([(o + d) * DAY for o, d, _ in records], dtype="int64"),
        value=np.array([v for _, _, v in records], dtype="float64"),
    )
    out = pit.as_of(np.array(times, dtype="int64"), lag=lag)
    expected = np.array([_brute_force(records, t, lag) for t in times], dtype="float64")
    np.testing.assert_array_equal(out, expected)
    # Order of records never matters, to as_of or to the fingerprint.
    perm = np.random.default_rng(seed).permutation(len(records))
    shuffled = PitSeries(pit.observation[perm], pit.available[perm], pit.value[perm])
    np.testing.assert_array_equal(shuffled.as_of(np.array(times, dtype="int64"), lag=lag), expected)
    assert shuffled.fingerprint() == pit.fingerprint()


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.sampled_from([0.0, -0.0, 1.0, -1.5]) | st.floats(allow_nan=False)), max_size=8),
       st.integers(0, 2**32 - 1))
def test_fingerprint_is_order_independent_even_with_duplicate_keys(records: list, seed: int) -> None:
    pit = PitSeries(
        np.array([r[0] for r in records], dtype="int64"),
        np.array([r[1] for r in records], dtype="int64"),
        np.array([r[2] for r in records], dtype="float64"),
    )
    perm = np.random.default_rng(seed).permutation(len(records))
    assert PitSeries(pit.observation[perm], pit.available[perm], pit.value[perm]).fingerprint() == pit.fingerprint()
