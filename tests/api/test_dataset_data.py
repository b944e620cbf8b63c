"""GET /api/v1/features/{id}/datasets/{dataset_id}/data: a per-symbol dataset read whole, as
Parquet or bounded JSON records (the generate response holds only a 10-row preview)."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import talib
from arch.data import sp500
from fastapi.testclient import TestClient

from conftest import CreateFeature, bearer

RANGE = {"symbol": "GSPC", "start_date": "2010-01-01", "end_date": "2019-01-01"}


def _generated(client: TestClient, create_feature: CreateFeature, period: int = 14) -> tuple[dict, dict]:
    feature = create_feature(client, "technical.rsi", {"period": period})
    response = client.post(f"/api/v1/features/{feature['id']}/generate", json=RANGE)
    assert response.status_code == 200, response.text
    return feature, response.json()["dataset"]


def _url(feature_id: object, dataset_id: object) -> str:
    return f"/api/v1/features/{feature_id}/datasets/{dataset_id}/data"


def test_parquet_holds_every_row_equal_to_talib_on_the_raw_series(client: TestClient, create_feature: CreateFeature) -> None:
    feature, dataset = _generated(client, create_feature)
    response = client.get(_url(feature["id"], dataset["id"]), params={"format": "parquet"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    frame = pq.read_table(io.BytesIO(response.content)).to_pandas()

    raw = sp500.load()  # the bundled bars straight from the arch package, not through alphaforge
    rsi = pd.Series(talib.RSI(raw["Close"].to_numpy(), timeperiod=14), index=pd.DatetimeIndex(raw.index).tz_localize("UTC"))
    expected = rsi[(rsi.index >= "2010-01-01") & (rsi.index < "2019-01-01")]
    assert len(frame) == dataset["row_count"] == len(expected) == 2264
    assert list(frame.columns) == ["rsi"]
    assert (frame.index == expected.index).all()
    np.testing.assert_allclose(frame["rsi"].to_numpy(), expected.to_numpy(), rtol=1e-12)


def test_json_records_agree_with_the_parquet(client: TestClient, create_feature: CreateFeature) -> None:
    feature, dataset = _generated(client, create_feature, period=9)
    records = client.get(_url(feature["id"], dataset["id"]))
    assert records.status_code == 200 and records.headers["content-type"] == "application/json"
    as_json = pd.DataFrame(records.json()).set_index("timestamp")
    as_json.index = pd.to_datetime(as_json.index, utc=True)
    stored = pq.read_table(io.BytesIO(client.get(_url(feature["id"], dataset["id"]), params={"format": "parquet"}).content)).to_pandas()
    assert len(as_json) == dataset["row_count"] and list(as_json.columns) == ["rsi"]
    assert (as_json.index == stored.index).all()
    np.testing.assert_array_equal(as_json["rsi"].to_numpy(dtype=float), stored["rsi"].to_numpy())


def test_each_version_is_served_by_its_own_id(client: TestClient, create_feature: CreateFeature) -> None:
    feature = create_feature(client, "technical.rsi", {"period": 5})
    short = client.post(f"/api/v1/features/{feature['id']}/generate", json={**RANGE, "start_date": "2018-01-01"}).json()["dataset"]
    long = client.post(f"/api/v1/features/{feature['id']}/generate", json=RANGE).json()["dataset"]
    lengths = []
    for dataset in (short, long):
        body = client.get(_url(feature["id"], dataset["id"]), params={"format": "parquet"}).content
        lengths.append(pq.read_table(io.BytesIO(body)).num_rows)
    assert lengths == [short["row_count"], long["row_count"]] and short["row_count"] < long["row_count"]


def test_unknown_ids_are_404_and_bad_input_422(client: TestClient, create_feature: CreateFeature) -> None:
    feature, dataset = _generated(client, create_feature, period=7)
    other = create_feature(client, "technical.rsi", {"period": 8})
    cases = {
        _url(uuid.uuid4(), dataset["id"]): "Feature not found",
        _url(feature["id"], uuid.uuid4()): "Dataset not found",
        _url(other["id"], dataset["id"]): "Dataset not found",  # a dataset of another feature
    }
    for url, detail in cases.items():
        response = client.get(url, params={"format": "parquet"})
        assert response.status_code == 404 and response.json()["detail"] == detail, response.text
        assert response.json()["error"] == "not_found"
    bad_id = client.get(_url(feature["id"], "not-a-uuid"))
    assert bad_id.status_code == 422 and "dataset_id" in bad_id.json()["detail"]
    bad_format = client.get(_url(feature["id"], dataset["id"]), params={"format": "csv"})
    assert bad_format.status_code == 422 and "format" in bad_format.json()["detail"]


def test_json_over_the_row_cap_is_refused(client: TestClient, create_feature: CreateFeature, monkeypatch: pytest.MonkeyPatch) -> None:
    from alphaforge.features import generation

    feature, dataset = _generated(client, create_feature, period=11)
    monkeypatch.setattr(generation, "JSON_MAX_ROWS", dataset["row_count"] - 1)
    refused = client.get(_url(feature["id"], dataset["id"]))
    assert refused.status_code == 422 and "ask for format=parquet" in refused.json()["detail"]
    assert client.get(_url(feature["id"], dataset["id"]), params={"format": "parquet"}).status_code == 200


def test_a_read_key_reads_it_and_no_key_is_401(client: TestClient, create_feature: CreateFeature, keys: dict[str, str]) -> None:
    feature, dataset = _generated(client, create_feature, period=12)
    url = _url(feature["id"], dataset["id"])
    assert client.get(url, params={"format": "parquet"}, headers=bearer(keys["read"])).status_code == 200
    assert client.get(url, headers={"Authorization": ""}).status_code == 401


def test_a_lost_object_is_404_saying_how_to_make_it_again(client: TestClient, create_feature: CreateFeature) -> None:
    feature, dataset = _generated(client, create_feature, period=13)
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    ctx.objects.delete(ctx.objects.key_of(dataset["storage_uri"]))
    response = client.get(_url(feature["id"], dataset["id"]), params={"format": "parquet"})
    assert response.status_code == 404
    assert "stored object is gone" in response.json()["detail"] and "/regenerate" in response.json()["detail"]
