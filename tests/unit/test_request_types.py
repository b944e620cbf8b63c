"""The shared request types: the time range, storable text, ASCII-only names."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from pydantic import TypeAdapter, ValidationError

from alphaforge.errors import InvalidInput
from alphaforge.ingestion.fundamentals import parse_fundamentals_upload
from alphaforge.marketdata.bars import normalize_symbol
from alphaforge.marketdata.fundamentals import normalize_field
from alphaforge.marketdata.times import MAX_TIME, MIN_TIME
from alphaforge.marketdata.macro import normalize_series
from alphaforge.schemas.models import DatasetSpec
from alphaforge.schemas.request import RequestText, RequestTime
from alphaforge.schemas.tuning import TuneRequest

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
US = timedelta(microseconds=1)
TIME = TypeAdapter(RequestTime)


def test_the_range_is_what_int64_nanoseconds_hold_to_the_microsecond() -> None:
    # int64 ns spans -(2**63 - 1) .. 2**63 - 1 (pandas keeps -2**63 for NaT); whole microseconds inside it:
    assert MIN_TIME == EPOCH + timedelta(microseconds=-((2**63 - 1) // 1000))
    assert MAX_TIME == EPOCH + timedelta(microseconds=(2**63 - 1) // 1000)
    for inside in (MIN_TIME, MAX_TIME):
        pd.Timestamp(inside).as_unit("ns")
    for outside in (MIN_TIME - US, MAX_TIME + US):
        with pytest.raises(pd.errors.OutOfBoundsDatetime):
            pd.Timestamp(outside).as_unit("ns")


@pytest.mark.parametrize(
    "inside",
    [
        MIN_TIME, MAX_TIME, MIN_TIME.replace(tzinfo=None), MAX_TIME.replace(tzinfo=None),
        MIN_TIME.astimezone(timezone(timedelta(hours=14))), MAX_TIME.astimezone(timezone(timedelta(hours=-12))),
    ],
)
def test_times_just_inside_pass_as_the_same_instant_in_utc(inside: datetime) -> None:
    parsed = TIME.validate_python(inside.isoformat())
    aware = inside if inside.tzinfo is not None else inside.replace(tzinfo=timezone.utc)  # naive is UTC
    assert parsed == aware and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "outside",
    [
        MIN_TIME - US, MAX_TIME + US, (MIN_TIME - US).replace(tzinfo=None), (MAX_TIME + US).replace(tzinfo=None),
        # in range as written, out of it in UTC
        MAX_TIME.replace(tzinfo=timezone(timedelta(hours=-1))), MIN_TIME.replace(tzinfo=timezone(timedelta(hours=1))),
        # Python's own extremes, with offsets that overflow a conversion to UTC
        datetime.min.replace(tzinfo=timezone(timedelta(hours=23, minutes=59))),
        datetime.max.replace(tzinfo=timezone(timedelta(hours=-23, minutes=-59))),
    ],
)
def test_times_outside_are_refused_by_name(outside: datetime) -> None:
    with pytest.raises(ValidationError) as refused:
        TIME.validate_python(outside.isoformat())
    assert refused.value.errors()[0]["type"] == "time_out_of_range"
    assert "1677-09-21T00:12:43.145225Z" in str(refused.value) and "2262-04-11T23:47:16.854775Z" in str(refused.value)


def _spec(**overrides: object) -> dict:
    return {"feature_ids": ["00000000-0000-0000-0000-000000000001"], "symbol": "GSPC",
            "start_date": "2015-01-01", "end_date": "2016-01-01", **overrides}


def test_text_is_walked_through_nested_dicts_lists_keys_and_plain_models() -> None:
    base = {"plugin_key": "ml.ridge", "dataset": _spec()}
    bad = [
        ({"fixed_params": {"a": [1, {"b": "x\x00"}]}}, ("fixed_params",), "fixed_params['a'][1]['b']"),
        ({"fixed_params": {"a\ud800": 1}}, ("fixed_params",), "a key of fixed_params"),
        # ParamSpec is a plain model nested in a request: its strings are walked too
        ({"param_space": {"alpha": {"type": "categorical", "choices": ["ok", "n\x00"]}}}, ("param_space",),
         "param_space['alpha'].choices[1]"),
        ({"dataset": _spec(symbol="GS\x00PC")}, ("dataset", "symbol"), "symbol contains a NUL"),
    ]
    for extra, loc, where in bad:
        with pytest.raises(ValidationError) as refused:
            TuneRequest.model_validate({**base, **extra})
        (error,) = refused.value.errors()
        assert (error["loc"], error["type"]) == (loc, "invalid_text") and where in error["msg"], error
        assert "\x00" not in error["msg"] and "\ud800" not in error["msg"]  # never echoed: unencodable
    assert TuneRequest.model_validate({**base, "fixed_params": {"a": ["x", {"b": "é ü 中"}]}})


def test_path_and_query_text() -> None:
    text = TypeAdapter(RequestText)
    assert text.validate_python("GSPC") == "GSPC"
    for bad in ("GS\x00PC", "GS\udfffPC"):
        with pytest.raises(ValidationError):
            text.validate_python(bad)


def test_dataset_spec_times_are_bounded_and_naive_values_read_as_utc() -> None:
    start = DatasetSpec.model_validate(_spec(start_date="1677-09-21T00:12:43.145225")).start_date
    assert start == datetime(1677, 9, 21, 0, 12, 43, 145225, tzinfo=timezone.utc)
    with pytest.raises(ValidationError) as refused:
        DatasetSpec.model_validate(_spec(end_date="2262-04-12"))
    assert refused.value.errors()[0]["loc"] == ("end_date",)


# -- names are ASCII before any case mapping ------------------------------------------------
def _folding_to_ascii() -> list[str]:
    """Every non-ASCII character whose upper or lower case holds an ASCII letter (found by
    scanning Unicode, not from a list), plus fullwidth 'A' whose case maps stay fullwidth."""
    found = [
        ch for ch in map(chr, range(0x80, sys.maxunicode + 1))
        if not 0xD800 <= ord(ch) <= 0xDFFF and any(c.isascii() and c.isalpha() for c in ch.upper() + ch.lower())
    ]
    return [*found, "\uff21"]


FOLDING = _folding_to_ascii()


def test_the_scan_finds_the_known_foldings() -> None:
    assert {"ı", "ß", "\u212a", "ſ", "ﬀ"} <= set(FOLDING)


@pytest.mark.parametrize("normalize", [normalize_symbol, normalize_series, normalize_field])
def test_names_that_case_map_to_ascii_are_refused_not_folded(normalize) -> None:
    for ch in FOLDING:
        for given in (ch, f"A{ch}", f"{ch}1"):
            with pytest.raises(InvalidInput, match="ASCII"):
                normalize(given)


def test_ascii_names_still_normalize() -> None:
    assert (normalize_symbol(" brk.b "), normalize_series("core_cpi"), normalize_field(" EPS ")) == ("BRK.B", "CORE_CPI", "eps")


def test_the_fundamentals_gate_refuses_a_kelvin_sign_field() -> None:
    records = pd.DataFrame(
        {"period_end": ["2020-01-01"] * 2, "available_at": ["2020-01-02"] * 2, "field": ["k", "\u212a"], "value": [1.0, 2.0]}
    )
    _, report = parse_fundamentals_upload(records)
    assert [(row.row, row.field) for row in report.bad_rows] == [(2, None)]


def test_a_deeply_nested_body_is_walked_without_exhausting_the_stack() -> None:
    deep: object = "x\x00"
    for _ in range(sys.getrecursionlimit() * 3):
        deep = {"a": deep}
    with pytest.raises(ValidationError) as refused:
        TuneRequest.model_validate({"plugin_key": "ml.ridge", "dataset": _spec(), "fixed_params": {"d": deep}})
    message = refused.value.errors()[0]["msg"]
    assert "contains a NUL" in message and len(message) < 400  # the path is cut short, not thousands of steps
