from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from alphaforge.hashing import canonical_json, content_hash, utc_iso


def test_canonical_json_is_key_order_and_whitespace_free() -> None:
    a = {"b": [1, 2.5, "x"], "a": {"z": None, "y": True}}
    b = json.loads(json.dumps(a, indent=4))
    b = {"a": b["a"], "b": b["b"]}
    assert canonical_json(a) == canonical_json(b) == b'{"a":{"y":true,"z":null},"b":[1,2.5,"x"]}'
    assert content_hash(a) == content_hash(b) and len(content_hash(a)) == 64


def test_nan_is_refused() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_one_spelling_per_instant() -> None:
    utc = datetime(2020, 1, 1, tzinfo=timezone.utc)
    plus_one = datetime(2020, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert utc_iso(utc) == utc_iso(plus_one) == "2020-01-01T00:00:00Z"
    assert utc_iso(utc.replace(microsecond=5)) == "2020-01-01T00:00:00.000005Z"
    with pytest.raises(ValueError):
        utc_iso(datetime(2020, 1, 1))
