"""Market-data endpoints: bundled data, ingestion behind the quality gate, reads."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from alphaforge.marketdata.bars import fingerprint
from alphaforge.marketdata.local_store import _FrameCache

GOOD_ROWS = [
    {"timestamp": "2020-01-02T00:00:00Z", "open": 10.0, "high": 11.0, "low": 9.5, "close": 10.5, "volume": 1000},
    {"timestamp": "2020-01-03T00:00:00Z", "open": 10.5, "high": 10.8, "low": 10.1, "close": 10.2, "volume": 800},
    {"timestamp": "2020-01-06T00:00:00Z", "open": 10.2, "high": 10.9, "low": 10.0, "close": 10.7, "volume": 0},
]


def _csv(rows: list[dict]) -> bytes:
    return pd.DataFrame(rows).to_csv(index=False).encode()


def _series(client: TestClient, symbol: str) -> dict[str, dict]:
    symbols = client.get("/api/v1/market-data/symbols").json()["symbols"]
    match = [s for s in symbols if s["symbol"] == symbol]
    return {tf["timeframe"]: tf for tf in match[0]["timeframes"]} if match else {}


def test_bundled_sample_data_is_listed(client: TestClient) -> None:
    for symbol in ("GSPC", "IXIC"):
        series = _series(client, symbol)
        assert series["1d"] == {
            "timeframe": "1d", "first_bar": "1999-01-04T00:00:00Z", "last_bar": "2018-12-31T00:00:00Z", "n_bars": 5031,
        }
        assert series["1w"]["n_bars"] is None and series["1w"]["last_bar"] == "2018-12-31T00:00:00Z"


def test_bars_read_with_range_and_end_exclusive(client: TestClient) -> None:
    body = client.get("/api/v1/market-data/gspc/bars", params={"start": "2018-12-24", "end": "2018-12-31"}).json()
    assert body["symbol"] == "GSPC" and body["timeframe"] == "1d"
    assert [b["timestamp"][:10] for b in body["bars"]] == ["2018-12-24", "2018-12-26", "2018-12-27", "2018-12-28"]
    assert set(body["bars"][0]) == {"timestamp", "open", "high", "low", "close", "volume"}


def test_weekly_bars_are_aggregated_from_daily(client: TestClient) -> None:
    daily = client.get("/api/v1/market-data/GSPC/bars", params={"start": "2018-12-17", "end": "2018-12-22"}).json()["bars"]
    weekly = client.get("/api/v1/market-data/GSPC/bars", params={"timeframe": "1w", "start": "2018-12-17", "end": "2018-12-22"}).json()["bars"]
    assert len(weekly) == 1
    week = weekly[0]
    assert week["timestamp"] == daily[-1]["timestamp"]  # stamped with its last daily bar
    assert week["open"] == daily[0]["open"] and week["close"] == daily[-1]["close"]
    assert week["high"] == max(b["high"] for b in daily) and week["low"] == min(b["low"] for b in daily)
    assert week["volume"] == pytest.approx(sum(b["volume"] for b in daily))


def test_ingest_csv_then_json_restatement(client: TestClient) -> None:
    created = client.post("/api/v1/market-data/tst.a/bars", files={"file": ("bars.csv", _csv(GOOD_ROWS), "text/csv")})
    assert created.status_code == 200, created.text
    assert created.json() | {"fingerprint": None} == {
        "symbol": "TST.A", "timeframe": "1d", "received": 3, "inserted": 3, "replaced": 0, "n_bars": 3,
        "first_bar": "2020-01-02T00:00:00Z", "last_bar": "2020-01-06T00:00:00Z", "fingerprint": None,
    }
    restated = {**GOOD_ROWS[1], "close": 10.4}
    new_bar = {**GOOD_ROWS[2], "timestamp": "2020-01-07T00:00:00Z"}
    response = client.post("/api/v1/market-data/TST.A/bars", json={"bars": [restated, new_bar]})
    assert response.status_code == 200
    assert (response.json()["inserted"], response.json()["replaced"], response.json()["n_bars"]) == (1, 1, 4)
    bars = client.get("/api/v1/market-data/TST.A/bars").json()["bars"]
    assert [b["close"] for b in bars] == [10.5, 10.4, 10.7, 10.7]
    assert _series(client, "TST.A")["1d"]["n_bars"] == 4


def test_ingest_converts_time_zones_to_utc(client: TestClient) -> None:
    rows = [{**GOOD_ROWS[0], "timestamp": "2020-01-02T09:30:00-05:00"}]
    assert client.post("/api/v1/market-data/TZT/bars", params={"timeframe": "1h"}, json={"bars": rows}).status_code == 200
    bars = client.get("/api/v1/market-data/TZT/bars", params={"timeframe": "1h"}).json()["bars"]
    assert bars[0]["timestamp"] == "2020-01-02T14:30:00+00:00"


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"low": 10.6}, "low > open"),
        ({"high": 10.1}, "close > high"),
        ({"volume": -1}, "volume < 0"),
        ({"close": None}, "close is missing or not a finite number"),
        ({"open": "abc"}, "open is missing or not a finite number"),
        ({"timestamp": "not a date"}, "is not a date/time"),
    ],
)
def test_quality_gate_names_the_bad_row_and_stores_nothing(client: TestClient, row: dict, problem: str) -> None:
    symbol = "GATE"
    client.post(f"/api/v1/market-data/{symbol}/bars", json={"bars": GOOD_ROWS})
    before = client.get(f"/api/v1/market-data/{symbol}/bars").json()["bars"]
    upload = [{**GOOD_ROWS[0], "timestamp": "2020-02-03T00:00:00Z"}, {**GOOD_ROWS[1], "timestamp": "2020-02-04T00:00:00Z", **row}]
    response = client.post(f"/api/v1/market-data/{symbol}/bars", files={"file": ("b.csv", _csv(upload), "text/csv")})
    assert response.status_code == 422
    body = response.json()
    assert "row 2" in body["detail"] and problem in body["detail"] and "nothing was stored" in body["detail"]
    assert body["n_bad_rows"] == 1 and body["bad_rows"][0]["row"] == 2
    assert client.get(f"/api/v1/market-data/{symbol}/bars").json()["bars"] == before


def test_duplicate_timestamps_in_one_upload_are_rejected(client: TestClient) -> None:
    response = client.post("/api/v1/market-data/DUP/bars", json={"bars": [GOOD_ROWS[0], GOOD_ROWS[0]]})
    assert response.status_code == 422
    assert [b["row"] for b in response.json()["bad_rows"]] == [1, 2]
    assert "duplicate timestamp" in response.json()["detail"]
    assert client.get("/api/v1/market-data/DUP/bars").status_code == 404


@pytest.mark.parametrize(
    ("kwargs", "status", "expected"),
    [
        ({"json": {"bars": []}}, 422, "JSON upload must be"),
        ({"json": {"bars": [{"timestamp": "2020-01-02", "open": 1}]}}, 422, "columns timestamp, close (optional: open, high, low, volume); missing: close"),
        ({"content": b"x", "headers": {"content-type": "text/plain"}}, 415, "multipart/form-data"),
        ({"files": {"other": ("b.csv", b"a,b\n1,2\n", "text/csv")}}, 422, "field 'file'"),
    ],
)
def test_malformed_uploads(client: TestClient, kwargs: dict, status: int, expected: str) -> None:
    response = client.post("/api/v1/market-data/BAD/bars", **kwargs)
    assert response.status_code == status
    assert expected in response.json()["detail"]


def test_1w_cannot_be_ingested(client: TestClient) -> None:
    response = client.post("/api/v1/market-data/WK/bars", params={"timeframe": "1w"}, json={"bars": GOOD_ROWS})
    assert response.status_code == 422 and "aggregated from 1d" in response.json()["detail"]


@pytest.mark.parametrize("symbol", ["a/b", "..", "x" * 21, "-ABC", "A B"])
def test_invalid_symbols_never_reach_storage(client: TestClient, symbol: str) -> None:
    response = client.post(f"/api/v1/market-data/{symbol}/bars", json={"bars": GOOD_ROWS})
    assert response.status_code in (404, 422)  # a "/" never even routes to the endpoint
    if response.status_code == 422:
        assert "invalid symbol" in response.json()["detail"]


def test_unknown_symbol_and_missing_timeframe(client: TestClient) -> None:
    missing = client.get("/api/v1/market-data/ZZZZ/bars")
    assert missing.status_code == 404 and "no bars stored for symbol ZZZZ" in missing.json()["detail"]
    hourly = client.get("/api/v1/market-data/GSPC/bars", params={"timeframe": "1h"})
    assert hourly.status_code == 422 and "GSPC has no 1h bars" in hourly.json()["detail"]


def test_fingerprint_in_response_matches_the_stored_bars(client: TestClient) -> None:
    response = client.post("/api/v1/market-data/FPT/bars", json={"bars": GOOD_ROWS}).json()
    bars = client.get("/api/v1/market-data/FPT/bars").json()["bars"]
    frame = pd.DataFrame(bars).set_index(pd.DatetimeIndex([b["timestamp"] for b in bars]))
    assert fingerprint(frame) == response["fingerprint"]


def test_the_bar_frames_a_process_keeps_are_bounded_and_reads_stay_right(
    fresh_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for one series, reading two in turn keeps one frame in memory, and each
    read still answers that series' own bars (read again from the store)."""
    client = fresh_client
    for symbol, shift in (("AAA", 0.0), ("BBB", 100.0)):
        rows = [{**r, **{f: r[f] + shift for f in ("open", "high", "low", "close")}} for r in GOOD_ROWS]
        upload = client.post(f"/api/v1/market-data/{symbol}/bars", files={"file": ("b.csv", _csv(rows), "text/csv")})
        assert upload.status_code == 200, upload.text
    cache = _FrameCache(limit=1)
    monkeypatch.setattr(client.app.state.ctx.bars, "_cache", cache)
    for _ in range(2):
        for symbol, close in (("AAA", 10.5), ("BBB", 110.5)):
            bars = client.get(f"/api/v1/market-data/{symbol}/bars").json()["bars"]
            assert bars[0]["close"] == close and len(bars) == 3
            assert len(cache) == 1 and cache.get((symbol, "1d")) is not None


def test_weekly_bars_follow_a_restatement_of_their_daily_bars(fresh_client: TestClient) -> None:
    """Weekly bars are aggregated once per stored daily version: a restated day shows at once."""
    client = fresh_client
    upload = client.post("/api/v1/market-data/WKLY/bars", files={"file": ("b.csv", _csv(GOOD_ROWS), "text/csv")})
    assert upload.status_code == 200, upload.text
    first = client.get("/api/v1/market-data/WKLY/bars", params={"timeframe": "1w"}).json()["bars"]
    assert first == client.get("/api/v1/market-data/WKLY/bars", params={"timeframe": "1w"}).json()["bars"]
    # The week of 2020-01-02/03 closes on Friday the 3rd at 10.2; restated to 12.0 (high 12.5).
    assert [b["close"] for b in first] == [10.2, 10.7]
    restated = [{**GOOD_ROWS[1], "close": 12.0, "high": 12.5}]
    upload = client.post("/api/v1/market-data/WKLY/bars", files={"file": ("b.csv", _csv(restated), "text/csv")})
    assert upload.status_code == 200, upload.text
    after = client.get("/api/v1/market-data/WKLY/bars", params={"timeframe": "1w"}).json()["bars"]
    assert [b["close"] for b in after] == [12.0, 10.7] and after[0]["high"] == 12.5
