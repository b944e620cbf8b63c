"""Macro features end to end: bundled point-in-time series, generated for GSPC, used by a model.

Expected values are recomputed here from `arch.data` and the documented publication lags,
not read back from the code under test.
"""

from __future__ import annotations

import pandas as pd
import pytest
from arch.data import default, vix
from fastapi.testclient import TestClient

from alphaforge.storage.parquet import from_parquet_bytes
from conftest import CreateFeature

RANGE = {"symbol": "GSPC", "start_date": "2015-01-01", "end_date": "2019-01-01"}


def _dataset(client: TestClient, feature_id: str) -> pd.DataFrame:
    body = client.post(f"/api/v1/features/{feature_id}/generate", json=RANGE)
    assert body.status_code == 200, body.text
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    return from_parquet_bytes(ctx.objects.get(ctx.objects.key_of(body.json()["dataset"]["storage_uri"])))


def test_spread_uses_each_month_only_after_its_publication(client: TestClient, create_feature: CreateFeature) -> None:
    feature = create_feature(client, "macro.spread", {"series_a": "BAA", "series_b": "AAA"})
    frame = _dataset(client, feature["id"])
    monthly = default.load()
    spread = (monthly["BAA"] - monthly["AAA"]).dropna()
    # a monthly average is usable from the 2nd day of the following month
    available = pd.DatetimeIndex(spread.index).tz_localize("UTC") + pd.offsets.MonthBegin(1) + pd.Timedelta(days=1)
    for bar in ("2016-03-01", "2016-03-02", "2016-03-03", "2017-07-31", "2018-12-31"):
        t = pd.Timestamp(bar, tz="UTC")
        if t not in frame.index:
            continue
        expected = spread[available <= t].iloc[-1]
        assert frame.loc[t, "spread"] == pytest.approx(expected), bar


def test_level_of_vix_is_the_previous_close(client: TestClient, create_feature: CreateFeature) -> None:
    feature = create_feature(client, "macro.level", {"series": "VIX"})
    frame = _dataset(client, feature["id"])
    closes = vix.load()["vix"].dropna()
    closes.index = pd.DatetimeIndex(closes.index).tz_localize("UTC")
    for bar in frame.index[[5, 100, 500]]:
        expected = closes[closes.index < bar].iloc[-1]  # a daily close is usable from the next day on
        assert frame.loc[bar, "level"] == pytest.approx(expected)


def test_unknown_series_is_422_naming_the_known_ones(client: TestClient, create_feature: CreateFeature) -> None:
    feature = create_feature(client, "macro.level", {"series": "NOPE"})
    response = client.post(f"/api/v1/features/{feature['id']}/generate", json=RANGE)
    assert response.status_code == 422
    assert "macro series 'NOPE'" in response.json()["detail"] and "VIX" in response.json()["detail"]


def test_a_model_trains_on_macro_and_technical_features(client: TestClient, create_feature: CreateFeature) -> None:
    ids = [
        create_feature(client, "macro.spread")["id"],
        create_feature(client, "macro.level", {"series": "VIX"})["id"],
        create_feature(client, "macro.change", {"series": "CORE_CPI", "n": 12, "kind": "pct"})["id"],
        create_feature(client, "technical.rsi", {"period": 10})["id"],
    ]
    model = client.post("/api/v1/models", json={"name": "macro", "model_type": "lightgbm", "family": "machine_learning",
                                               "parameters": {"n_estimators": 50}}).json()
    body = {"dataset": {"feature_ids": ids, **RANGE}, "cv": {"n_splits": 3}}
    trained = client.post(f"/api/v1/models/{model['id']}/train", json=body)
    assert trained.status_code == 200, trained.text
    columns = trained.json()["feature_columns"]
    assert columns[0].startswith("macro.spread(") and columns[1] == 'macro.level(series="VIX").level'
    predicted = client.post(f"/api/v1/models/{model['id']}/predict", json={**RANGE, "start_date": "2018-06-01"})
    assert predicted.status_code == 200, predicted.text
    assert len(predicted.json()["predictions"]) > 100


def test_a_new_macro_record_changes_the_version_hash(fresh_client: TestClient, create_feature: CreateFeature) -> None:
    client = fresh_client
    feature = create_feature(client, "macro.level", {"series": "VIX"})
    first = client.post(f"/api/v1/features/{feature['id']}/generate", json=RANGE).json()["dataset"]
    # Friday 2016-06-10's close, restated over the weekend (the original was usable from Saturday)
    restated = {"records": [{"observation_date": "2016-06-10", "available_at": "2016-06-12T00:00:00Z", "value": 99.0}]}
    assert client.post("/api/v1/market-data/macro/VIX", json=restated).status_code == 200
    second = client.post(f"/api/v1/features/{feature['id']}/generate", json=RANGE).json()["dataset"]
    assert second["version_hash"] != first["version_hash"]
    frame = _dataset(client, feature["id"])
    assert frame.loc[pd.Timestamp("2016-06-13", tz="UTC"), "level"] == 99.0  # Monday: the restated value
    assert frame.loc[pd.Timestamp("2016-06-10", tz="UTC"), "level"] != 99.0  # Friday: Thursday's close
