"""Close-only series: the bundled SP20 stocks (adjusted closes, no open/high/low/volume).

A feature reads only the bar fields it declares; asking for one the series lacks is a 422
naming the missing fields, never a value computed from NaN or made-up highs and lows. The
expected values come from skfolio's own loader and TA-Lib called directly."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import talib
from fastapi.testclient import TestClient

from alphaforge.features.generation import read_frame

SP20 = ["AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO", "LLY", "MRK", "MSFT", "PEP", "PFE",
        "PG", "RRC", "UNH", "WMT", "XOM"]
AAPL_2020 = {"symbol": "AAPL", "timeframe": "1d", "start_date": "2020-01-01", "end_date": "2021-01-01"}


def test_the_sp20_series_are_bundled_close_only(client: TestClient, closes: pd.DataFrame) -> None:
    listed = {s["symbol"]: s for s in client.get("/api/v1/market-data/symbols").json()["symbols"]}
    assert set(SP20) <= set(listed) and list(closes.columns) == SP20
    daily = next(t for t in listed["AAPL"]["timeframes"] if t["timeframe"] == "1d")
    assert daily["n_bars"] == len(closes) == 8313
    assert daily["first_bar"] == "1990-01-02T00:00:00Z" and daily["last_bar"] == "2022-12-28T00:00:00Z"

    bars = client.get("/api/v1/market-data/AAPL/bars", params={"start": "2022-12-01", "end": "2023-01-01"}).json()["bars"]
    expected = closes.loc["2022-12-01":, "AAPL"]
    assert [b["close"] for b in bars] == expected.tolist()
    assert all(b["open"] is None and b["high"] is None and b["low"] is None and b["volume"] is None for b in bars)


def test_a_close_feature_computes_on_a_close_only_series(client: TestClient, create_feature, closes: pd.DataFrame) -> None:  # noqa: ANN001
    feature = create_feature(client, "technical.rsi", {"period": 14})
    response = client.post(f"/api/v1/features/{feature['id']}/generate", json=AAPL_2020)
    assert response.status_code == 200, response.text
    stored = read_frame(client.app.state.ctx, response.json()["dataset"]["storage_uri"])
    close = closes["AAPL"]
    expected = pd.Series(talib.RSI(close.to_numpy(), timeperiod=14), index=close.index).loc["2020-01-01":"2020-12-31"]
    assert len(stored) == len(expected) == 253
    np.testing.assert_allclose(stored["rsi"].to_numpy(), expected.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    ("plugin_key", "parameters", "missing"),
    [
        ("technical.atr", {"period": 14}, "high, low"),
        ("technical.mfi", {"period": 14}, "high, low, volume"),
        ("technical.obv", {}, "volume"),
        ("statistical.z_score", {"column": "volume"}, "volume"),
    ],
)
def test_a_feature_reading_absent_fields_is_a_422_naming_them(
    client: TestClient, create_feature, plugin_key: str, parameters: dict, missing: str  # noqa: ANN001
) -> None:
    feature = create_feature(client, plugin_key, parameters)
    response = client.post(f"/api/v1/features/{feature['id']}/generate", json=AAPL_2020)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert f"the 1d bars of AAPL lack {missing} (they hold close only)" in detail
    assert response.json()["missing_fields"] == missing.split(", ")
    assert not client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": "AAPL"}).json()


def _csv(frame: pd.DataFrame) -> dict:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return {"file": ("bars.csv", buffer.getvalue(), "text/csv")}


def test_a_series_keeps_one_set_of_fields(fresh_client: TestClient) -> None:
    days = pd.date_range("2021-01-04", periods=5, freq="B", tz="UTC")
    close_only = pd.DataFrame({"timestamp": days, "close": [10.0, 11, 12, 13, 14]})
    stored = fresh_client.post("/api/v1/market-data/CLOSEONLY/bars", files=_csv(close_only))
    assert stored.status_code == 200, stored.text
    full = close_only.assign(open=9.0, high=20.0, low=5.0, volume=1000.0)
    mixed = fresh_client.post("/api/v1/market-data/CLOSEONLY/bars", files=_csv(full))
    assert mixed.status_code == 422, mixed.text
    assert "have close only; this upload has open, high, low, close, volume" in mixed.json()["detail"]
    onto_full = fresh_client.post("/api/v1/market-data/GSPC/bars", files=_csv(close_only))
    assert onto_full.status_code == 422 and "this upload has close only" in onto_full.json()["detail"]
    bars = fresh_client.get("/api/v1/market-data/CLOSEONLY/bars").json()["bars"]
    assert [b["close"] for b in bars] == [10.0, 11, 12, 13, 14]  # the refused upload stored nothing


def test_the_sp20_universe_is_created_at_first_start(client: TestClient, closes: pd.DataFrame) -> None:
    (sp20,) = [u for u in client.get("/api/v1/universes").json() if u["name"] == "SP20"]
    assert [m["symbol"] for m in sp20["members"]] == sorted(closes.columns)
    assert {(m["from"], m["to"]) for m in sp20["members"]} == {("1990-01-02T00:00:00Z", None)}
    members = client.get(f"/api/v1/universes/{sp20['id']}/members", params={"at": "2005-06-01"}).json()
    assert sorted(members["symbols"]) == sorted(closes.columns)
    before = client.get(f"/api/v1/universes/{sp20['id']}/members", params={"at": "1989-12-29"}).json()
    assert before["symbols"] == []
