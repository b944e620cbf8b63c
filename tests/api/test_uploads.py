"""Large uploads through the API on both backends: a 422 that describes the first 20 bad rows
and counts all of them (for bars, macro, fundamentals, news), a CSV spanning many read
blocks stored exactly as the same rows sent as JSON, and the bounds on multipart parsing.

Expected rows, counts and fingerprints are computed here from the generated uploads (the
fingerprint with the documented encoding, see ``alphaforge.marketdata.bars.fingerprint``).
Memory and latency are the benchmark's (bench/upload_memory.py), not asserted here."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

N_BAD = 200_000
HOUR_NS = 3_600 * 10**9
T0_NS = pd.Timestamp("2000-01-01", tz="UTC").value


def _post_csv(client: TestClient, url: str, csv: bytes, **params: str) -> dict:
    response = client.post(url, params=params, files={"file": ("upload.csv", csv, "text/csv")})
    return {"status": response.status_code, **response.json()}


def _iso_z(ns: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(ns.astype("M8[ns]"), unit="s"), "Z")


def _bars_csv(ts: np.ndarray, o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, v: np.ndarray) -> bytes:
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{t},{a!r},{b!r},{d!r},{e!r},{f!r}" for t, a, b, d, e, f in
              zip(ts.tolist(), o.tolist(), h.tolist(), low.tolist(), c.tolist(), v.tolist(), strict=True)]
    return ("\n".join(lines) + "\n").encode()


def _fingerprint(ns: np.ndarray, columns: list[np.ndarray]) -> str:
    """The documented encoding: header, count, sorted UTC ns, then each column (little-endian)."""
    order = np.argsort(ns)
    digest = hashlib.sha256(b"alphaforge.bars/1\n")
    digest.update(np.int64(len(ns)).astype("<i8").tobytes())
    digest.update(ns[order].astype("<i8").tobytes())
    for column in columns:
        digest.update(np.asarray(column, dtype="<f8")[order].tobytes())
    return digest.hexdigest()


# -- bars ------------------------------------------------------------------------------
def test_200k_bad_bars_give_20_details_and_the_total(client: TestClient) -> None:
    ns = T0_NS + np.arange(N_BAD, dtype=np.int64) * HOUR_NS
    ones = np.ones(N_BAD)
    csv = _bars_csv(_iso_z(ns), 10 * ones, 9 * ones, 8 * ones, 8.5 * ones, 100 * ones)  # open > high, only
    body = _post_csv(client, "/api/v1/market-data/BADMANY/bars", csv, timeframe="1h")
    assert body["status"] == 422
    assert body["n_bad_rows"] == N_BAD
    assert [b["row"] for b in body["bad_rows"]] == list(range(1, 21))
    assert all(b["problems"] == ["open > high"] for b in body["bad_rows"])
    assert body["bad_rows"][0]["timestamp"] == "2000-01-01T00:00:00+00:00"
    assert f"{N_BAD} bar(s) for BADMANY failed" in body["detail"] and f"and {N_BAD - 20} more" in body["detail"]
    assert "row 20 (2000-01-01T19:00:00+00:00): open > high" in body["detail"]
    assert client.get("/api/v1/market-data/BADMANY/bars", params={"timeframe": "1h"}).status_code == 404


def test_bad_rows_are_counted_across_blocks_with_a_far_duplicate(client: TestClient) -> None:
    n = 100_000
    ns = T0_NS + np.arange(n, dtype=np.int64) * HOUR_NS
    ts = _iso_z(ns).astype(object)
    ts[-1] = "1999-12-31T19:00:00-05:00"  # the first row's time, in another zone, blocks later
    o = np.full(n, 10.0)
    h = np.where(np.arange(1, n + 1) % 7 == 0, 9.0, 11.0)  # every 7th row: open > high, close > high
    csv = _bars_csv(ts, o, h, np.full(n, 9.5), np.full(n, 10.5), np.full(n, 100.0))
    body = _post_csv(client, "/api/v1/market-data/BADFAR/bars", csv, timeframe="1h")
    sevenths = list(range(7, n + 1, 7))
    expected_rows = sorted({1, n, *sevenths})
    assert body["status"] == 422 and body["n_bad_rows"] == len(expected_rows)
    assert [b["row"] for b in body["bad_rows"]] == expected_rows[:20]
    assert body["bad_rows"][0]["problems"] == ["duplicate timestamp"]
    assert body["bad_rows"][1]["problems"] == ["open > high", "close > high"]


def test_csv_over_many_blocks_stores_what_the_same_json_stores(client: TestClient) -> None:
    n = 40_000  # about 2.5 MB of CSV: several 1 MiB read blocks
    rng = np.random.default_rng(7)
    ns = T0_NS + rng.permutation(n).astype(np.int64) * HOUR_NS  # shuffled hours
    close = np.round(100 * np.exp(rng.normal(0, 0.01, n).cumsum()), 4)
    open_ = np.round(close * np.exp(rng.normal(0, 0.002, n)), 4)
    high = np.round(np.maximum(open_, close) + rng.uniform(0, 1, n), 4)
    low = np.round(np.minimum(open_, close) - rng.uniform(0, 1, n), 4)
    volume = rng.integers(0, 10**6, n).astype(float)
    stamps = pd.DatetimeIndex(ns, tz="UTC")
    ts = np.asarray(_iso_z(ns), dtype=object)  # a mix of formats and zones, as uploads come
    third, fifth = np.arange(n) % 3 == 1, np.arange(n) % 5 == 2
    ts[third] = stamps[third].tz_convert("America/New_York").strftime("%Y-%m-%dT%H:%M:%S%z")
    ts[fifth] = stamps[fifth].strftime("%Y-%m-%d %H:%M:%S")
    csv = _bars_csv(ts, open_, high, low, close, volume)
    assert len(csv) > 2 * 2**20
    from_csv = _post_csv(client, "/api/v1/market-data/CSVBIG/bars", csv, timeframe="1h")
    rows = [{"timestamp": t, "open": a, "high": b, "low": d, "close": e, "volume": f}
            for t, a, b, d, e, f in zip(ts.tolist(), open_.tolist(), high.tolist(), low.tolist(), close.tolist(),
                                        volume.tolist(), strict=True)]
    from_json = client.post("/api/v1/market-data/JSONBIG/bars", params={"timeframe": "1h"}, json={"bars": rows})
    assert from_csv["status"] == 200, from_csv
    assert from_json.status_code == 200, from_json.text
    expected = _fingerprint(ns, [open_, high, low, close, volume])
    assert from_csv["fingerprint"] == from_json.json()["fingerprint"] == expected
    assert from_csv["received"] == from_csv["n_bars"] == n
    first = pd.Timestamp(int(ns.min()), tz="UTC").isoformat().replace("+00:00", "Z")
    assert from_csv["first_bar"] == from_json.json()["first_bar"] == first
    window = {"timeframe": "1h", "start": "2000-03-01", "end": "2000-03-03"}
    csv_bars = client.get("/api/v1/market-data/CSVBIG/bars", params=window).json()["bars"]
    json_bars = client.get("/api/v1/market-data/JSONBIG/bars", params=window).json()["bars"]
    assert len(csv_bars) == 48 and csv_bars == json_bars


# -- macro, fundamentals, news -----------------------------------------------------------
def _dates(n: int) -> list[str]:
    return pd.date_range("1990-01-01", periods=n, freq="h", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ").tolist()


def test_many_bad_macro_records_give_20_details(client: TestClient) -> None:
    n = 100_000
    obs = _dates(n)
    csv = "observation_date,available_at,value\n" + "".join(f"{t},1980-01-01,1.5\n" for t in obs)
    body = _post_csv(client, "/api/v1/market-data/macro/BADMACRO", csv.encode())
    assert body["status"] == 422 and body["n_bad_rows"] == n
    assert [b["row"] for b in body["bad_rows"]] == list(range(1, 21))
    assert body["bad_rows"][3] == {"row": 4, "observation_date": "1990-01-01T03:00:00+00:00",
                                   "available_at": "1980-01-01T00:00:00+00:00",
                                   "problems": ["available_at is before observation_date"]}
    assert f"and {n - 20} more" in body["detail"]


def test_many_bad_fundamentals_give_20_details(client: TestClient) -> None:
    n = 60_000
    fields = ["eps" if i % 2 else "Bad Field!" for i in range(n)]  # rows 1, 3, 5, ... are bad
    csv = "period_end,available_at,field,value\n" + "".join(
        f"{t},2030-01-01,{f},{i}\n" for i, (t, f) in enumerate(zip(_dates(n), fields, strict=True)))
    body = _post_csv(client, "/api/v1/market-data/BADFUND/fundamentals", csv.encode())
    assert body["status"] == 422 and body["n_bad_rows"] == n // 2
    assert [b["row"] for b in body["bad_rows"]] == list(range(1, 40, 2))
    assert body["bad_rows"][0]["field"] is None
    assert body["bad_rows"][0]["problems"] == ["field 'Bad Field!' is not a field name (lower-case, e.g. eps)"]


def test_many_bad_news_articles_give_20_details(client: TestClient) -> None:
    n = 30_000
    naive = pd.date_range("2018-01-01", periods=n, freq="min").strftime("%Y-%m-%dT%H:%M:%S").tolist()
    csv = "published_at,headline\n" + "".join(f"{t},Story {i}\n" for i, t in enumerate(naive))
    body = _post_csv(client, "/api/v1/market-data/BADNEWS/news", csv.encode())
    assert body["status"] == 422 and body["n_bad_rows"] == n
    assert [b["row"] for b in body["bad_rows"]] == list(range(1, 21))
    assert body["bad_rows"][19]["headline"] == "Story 19"
    assert "has no time zone" in body["bad_rows"][0]["problems"][0]
    assert client.get("/api/v1/market-data/BADNEWS/news").status_code == 404


# -- multipart bounds ------------------------------------------------------------------------
GOOD_CSV = b"timestamp,open,high,low,close,volume\n2020-01-02,10,11,9.5,10.5,1000\n"


@pytest.mark.parametrize(
    ("symbol", "kwargs", "expected"),
    [
        ("FORMA", {"files": [("file", ("a.csv", GOOD_CSV, "text/csv")), ("file", ("b.csv", GOOD_CSV, "text/csv"))]},
         "Too many files"),
        ("FORMB", {"files": {"file": ("a.csv", GOOD_CSV, "text/csv")}, "data": {f"f{i}": "x" for i in range(9)}},
         "Too many fields"),
        ("FORMC", {"files": {"file": ("a.csv", GOOD_CSV, "text/csv")}, "data": {"note": "x" * (65 * 1024)}},
         "exceeded maximum size"),
    ],
    ids=["two files", "many fields", "large field"],
)
def test_multipart_parsing_is_bounded(client: TestClient, symbol: str, kwargs: dict, expected: str) -> None:
    response = client.post(f"/api/v1/market-data/{symbol}/bars", **kwargs)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert expected in detail and "one CSV file in the field 'file'" in detail
    assert client.get(f"/api/v1/market-data/{symbol}/bars").status_code == 404


def test_a_small_text_field_beside_the_file_is_accepted(client: TestClient) -> None:
    response = client.post("/api/v1/market-data/FORMOK/bars", files={"file": ("a.csv", GOOD_CSV, "text/csv")},
                           data={"note": "from the vendor"})
    assert response.status_code == 200, response.text
    assert response.json()["received"] == 1
