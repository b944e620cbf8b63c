"""Bars: fingerprint encoding, the quality gate, weekly aggregation, symbols."""

from __future__ import annotations

import hashlib
import struct
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alphaforge.errors import InvalidInput
from alphaforge.ingestion.bars import parse_bars_upload
from alphaforge.marketdata.bars import aggregate_weekly, canonical, fingerprint, normalize_symbol, present_fields
from alphaforge.marketdata.times import to_utc
from alphaforge.ingestion.bundled import sample_bars


def _frame(rows: list[tuple]) -> pd.DataFrame:
    index = pd.DatetimeIndex([r[0] for r in rows], tz="UTC", name="timestamp")
    return pd.DataFrame([r[1:] for r in rows], index=index, columns=["open", "high", "low", "close", "volume"])


def _reference_fingerprint(rows: list[tuple]) -> str:
    """The documented encoding, written independently with struct (no numpy, no pandas)."""
    digest = hashlib.sha256(b"alphaforge.bars/1\n")
    digest.update(struct.pack("<q", len(rows)))
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    for row in rows:
        ts = datetime.fromisoformat(row[0]).replace(tzinfo=timezone.utc)
        digest.update(struct.pack("<q", (ts - epoch) // timedelta(microseconds=1) * 1000))
    for column in range(1, 6):
        for row in rows:
            digest.update(struct.pack("<d", float(row[column])))
    return digest.hexdigest()


ROWS = [
    ("2020-01-02T00:00:00", 10.0, 11.0, 9.5, 10.5, 1000.0),
    ("2020-01-03T00:00:00", 10.5, 10.8, 10.1, 10.2, 800.0),
    ("2020-01-06T14:30:00", 10.2, 10.9, 10.0, 10.7, 0.0),
]


def test_fingerprint_is_the_documented_encoding() -> None:
    assert fingerprint(_frame(ROWS)) == _reference_fingerprint(ROWS)


def test_fingerprint_ignores_pandas_representation() -> None:
    frame = _frame(ROWS)
    as_us = frame.copy()
    as_us.index = as_us.index.as_unit("us")
    as_int_volume = frame.astype({"volume": "int64"})
    other_zone = frame.tz_convert("America/New_York")
    assert fingerprint(frame) == fingerprint(as_us) == fingerprint(as_int_volume) == fingerprint(other_zone)


@given(row=st.integers(0, 2), column=st.integers(0, 4), delta=st.floats(1e-9, 1e3))
def test_fingerprint_changes_with_any_value(row: int, column: int, delta: float) -> None:
    frame = _frame(ROWS)
    changed = frame.copy()
    changed.iloc[row, column] += delta
    assert fingerprint(changed) != fingerprint(frame)


def test_fingerprint_changes_with_a_timestamp_or_an_extra_bar() -> None:
    frame = _frame(ROWS)
    shifted = frame.copy()
    shifted.index = shifted.index + pd.Timedelta(seconds=1)
    assert fingerprint(shifted) != fingerprint(frame)
    assert fingerprint(frame.iloc[:2]) != fingerprint(frame)


def test_gate_accepts_the_bundled_data_and_reports_each_rule() -> None:
    frame, report = parse_bars_upload(sample_bars("GSPC"))
    assert report.ok and len(frame) == 5031
    raw = pd.DataFrame(
        {
            "Timestamp": ["2020-01-01", "2020-01-02", "2020-01-02", "garbage", "2020-01-05"],
            "OPEN": [1, 5, 1, 1, 1],
            "high": [2, 4, 2, 2, float("inf")],
            "low": [1, 1, 1, 1, 1],
            "close": [1.5, 2, 1.5, 1.5, 1.5],
            "volume": [1, 1, -5, 1, 1],
        }
    )
    _, report = parse_bars_upload(raw)
    problems = {b.row: b.problems for b in report.bad_rows}
    assert problems == {
        2: ["open > high", "duplicate timestamp"],
        3: ["volume < 0", "duplicate timestamp"],
        4: ["timestamp 'garbage' is not a date/time"],
        5: ["high is missing or not a finite number"],
    }
    error = report.error("X", limit=2)
    assert isinstance(error, InvalidInput) and "and 2 more" in error.message


def test_gate_requires_a_time_and_a_close() -> None:
    with pytest.raises(InvalidInput, match=r"need the columns timestamp, close \(optional: open, high, low, volume\); "
                                           "missing: timestamp, close"):
        parse_bars_upload(pd.DataFrame({"open": [1], "high": [1], "low": [1], "volume": [1]}))


def test_a_close_only_upload_keeps_the_other_fields_absent() -> None:
    frame, report = parse_bars_upload(pd.DataFrame({"Date": ["2020-01-03", "2020-01-02"], "Close": [2.0, 1.0]}))
    assert report.ok
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame["close"].tolist() == [1.0, 2.0]  # sorted by time
    assert frame[["open", "high", "low", "volume"]].isna().all().all()  # never made up
    assert present_fields(frame) == ("close",)


def test_a_present_field_must_hold_a_number_in_every_row() -> None:
    _, report = parse_bars_upload(pd.DataFrame({"timestamp": ["2020-01-02", "2020-01-03"], "close": [1.0, 2.0],
                                                "volume": [100.0, None]}))
    assert not report.ok and [b.row for b in report.bad_rows] == [2]
    assert report.bad_rows[0].problems == ["volume is missing or not a finite number"]


def test_ohlc_rules_apply_between_the_fields_an_upload_has() -> None:
    _, report = parse_bars_upload(pd.DataFrame({"timestamp": ["2020-01-02", "2020-01-03"], "close": [5.0, 2.0],
                                                "high": [4.0, 3.0]}))
    assert [(b.row, b.problems) for b in report.bad_rows] == [(1, ["close > high"])]


def test_weekly_bars_of_a_close_only_series_have_no_volume() -> None:
    days = pd.date_range("2020-01-06", periods=10, freq="B", tz="UTC")
    daily, report = parse_bars_upload(pd.DataFrame({"timestamp": days, "close": np.arange(1.0, 11.0)}))
    assert report.ok
    weekly = aggregate_weekly(daily)
    assert weekly["close"].tolist() == [5.0, 10.0]  # each week's last close
    assert weekly[["open", "high", "low", "volume"]].isna().all().all()  # not a volume of 0


def test_canonical_sorts_and_converts_to_utc_nanoseconds() -> None:
    frame = _frame(ROWS).iloc[::-1].tz_convert("Asia/Tokyo")
    out = canonical(frame)
    assert out.index.is_monotonic_increasing and str(out.index.tz) == "UTC" and out.index.unit == "ns"
    assert list(out.dtypes) == [np.float64] * 5


def test_weekly_bars_only_use_days_up_to_their_timestamp() -> None:
    daily, _ = parse_bars_upload(sample_bars("GSPC"))
    weekly = aggregate_weekly(daily)
    for stamp, week in weekly.sample(40, random_state=1).iterrows():
        days = daily[(daily.index <= stamp) & (daily.index > stamp - pd.Timedelta(days=7))]
        days = days[days.index.isocalendar().week == stamp.isocalendar().week]
        assert week["close"] == days["close"].iloc[-1] and week["open"] == days["open"].iloc[0]
        assert week["high"] == days["high"].max() and week["low"] == days["low"].min()
        assert week["volume"] == pytest.approx(days["volume"].sum())
    assert weekly.index.is_monotonic_increasing and len(weekly) == 1044


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}", fullmatch=True))
def test_valid_symbols_are_upper_cased(symbol: str) -> None:
    assert normalize_symbol(symbol) == symbol.upper()


@given(st.text(min_size=1, max_size=30))
def test_accepted_symbols_are_safe_path_segments(symbol: str) -> None:
    try:
        normalized = normalize_symbol(symbol)
    except InvalidInput:
        return
    assert "/" not in normalized and "\\" not in normalized and normalized not in (".", "..")
    assert normalized == normalized.strip() and len(normalized) <= 20


def test_naive_times_are_utc() -> None:
    assert to_utc(datetime(2020, 1, 1)) == datetime(2020, 1, 1, tzinfo=timezone.utc)
    eastern = datetime(2020, 1, 1, 9, tzinfo=timezone(timedelta(hours=-5)))
    assert to_utc(eastern) == datetime(2020, 1, 1, 14, tzinfo=timezone.utc)
