"""Fundamentals, point in time: ingestion behind the quality gate, restatements that add
records, history that cannot be rewritten, and fundamental features whose values appear
only from the bar at or after a figure's available_at (never from its period_end).

Expected values are computed here from the stored bars and the uploaded figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from alphaforge.marketdata.bars import Timeframe
from alphaforge.storage.parquet import from_parquet_bytes
from conftest import CreateFeature

BASE = "/api/v1/market-data/GSPC/fundamentals"
RANGE = {"symbol": "GSPC", "start_date": "2016-01-01", "end_date": "2017-01-01"}
# Q1 results announced after the close of Thursday 2016-04-28: usable from Friday's bar.
RECORDS = [
    {"period_end": "2016-03-31", "available_at": "2016-04-28T21:00:00Z", "field": "eps", "value": 23.0},
    {"period_end": "2016-06-30", "available_at": "2016-07-28", "field": "eps", "value": 25.0},
    {"period_end": "2016-09-30", "available_at": "2016-10-27", "field": "eps", "value": 26.0},
    {"period_end": "2016-03-31", "available_at": "2016-04-28T21:00:00Z", "field": "book_value_per_share",
     "value": 800.0},
    {"period_end": "2016-06-30", "available_at": "2016-07-28", "field": "book_value_per_share", "value": 820.0},
]


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _ingest(client: TestClient, records: list[dict]) -> dict:
    response = client.post(BASE, json={"records": records})
    assert response.status_code == 200, response.text
    return response.json()


def _generate(client: TestClient, feature_id: str) -> tuple[dict, pd.DataFrame]:
    response = client.post(f"/api/v1/features/{feature_id}/generate", json=RANGE)
    assert response.status_code == 200, response.text
    dataset = response.json()["dataset"]
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    return dataset, from_parquet_bytes(ctx.objects.get(ctx.objects.key_of(dataset["storage_uri"])))


def _closes(client: TestClient) -> pd.Series:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    bars = ctx.bars.get_bars("GSPC", Timeframe.DAY, _ts(RANGE["start_date"]).to_pydatetime(),
                             _ts(RANGE["end_date"]).to_pydatetime())
    return bars["close"]


@pytest.fixture(scope="module")
def ingested(client: TestClient) -> dict:
    return _ingest(client, RECORDS)


def test_ingest_reports_and_reads_back_with_a_vintage_view(client: TestClient, ingested: dict) -> None:
    assert ingested["symbol"] == "GSPC" and ingested["received"] == 5
    assert set(ingested["fingerprints"]) == {"eps", "book_value_per_share"}
    again = _ingest(client, RECORDS)  # identical records: no-ops
    assert again["inserted"] == 0 and again["unchanged"] == 5 and again["fingerprints"] == ingested["fingerprints"]
    body = client.get(BASE, params={"field": "eps", "as_of": "2016-07-28T00:00:00Z"}).json()
    assert [r["value"] for r in body["records"]] == [23.0, 25.0]
    assert {f["field"] for f in body["fields"]} == {"eps", "book_value_per_share"}
    assert client.get(BASE, params={"field": "nope"}).status_code == 404
    assert client.get("/api/v1/market-data/NOFUND/fundamentals").status_code == 404


def test_pe_ratio_appears_from_the_bar_at_or_after_available_at(
    client: TestClient, create_feature: CreateFeature, ingested: dict
) -> None:
    feature = create_feature(client, "fundamental.pe_ratio")
    dataset, frame = _generate(client, feature["id"])
    assert dataset["lineage"]["fundamental_fingerprints"]["eps"] == ingested["fingerprints"]["eps"]
    closes = _closes(client)
    pe = frame["pe_ratio"]
    # nothing before the first announcement, not at the period end, not on the announcement day's bar
    assert pe[pe.index < _ts("2016-04-29")].isna().all()
    assert np.isnan(pe[_ts("2016-03-31")]) and np.isnan(pe[_ts("2016-04-28")])
    assert pe[_ts("2016-04-29")] == pytest.approx(closes[_ts("2016-04-29")] / 23.0)
    # Q2 (period end 2016-06-30) is used from its announcement bar on, not from the period end
    assert pe[_ts("2016-06-30")] == pytest.approx(closes[_ts("2016-06-30")] / 23.0)
    assert pe[_ts("2016-07-27")] == pytest.approx(closes[_ts("2016-07-27")] / 23.0)
    assert pe[_ts("2016-07-28")] == pytest.approx(closes[_ts("2016-07-28")] / 25.0)
    assert pe[_ts("2016-10-27")] == pytest.approx(closes[_ts("2016-10-27")] / 26.0)
    assert pe[_ts("2016-12-30")] == pytest.approx(closes[_ts("2016-12-30")] / 26.0)


def test_pb_ratio_earnings_yield_and_value(client: TestClient, create_feature: CreateFeature, ingested: dict) -> None:
    closes = _closes(client)
    _, pb = _generate(client, create_feature(client, "fundamental.pb_ratio")["id"])
    _, ey = _generate(client, create_feature(client, "fundamental.earnings_yield")["id"])
    _, value = _generate(client, create_feature(client, "fundamental.value", {"field": "book_value_per_share"})["id"])
    day = _ts("2016-08-01")
    assert pb.loc[day, "pb_ratio"] == pytest.approx(closes[day] / 820.0)
    assert ey.loc[day, "earnings_yield"] == pytest.approx(25.0 / closes[day])
    assert value.loc[day, "value"] == 820.0 and np.isnan(value.loc[_ts("2016-04-28"), "value"])


def test_unknown_field_is_422_naming_the_symbols_fields(
    client: TestClient, create_feature: CreateFeature, ingested: dict
) -> None:
    feature = create_feature(client, "fundamental.earnings_surprise")
    response = client.post(f"/api/v1/features/{feature['id']}/generate", json=RANGE)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "'earnings_surprise'" in detail and "book_value_per_share" in detail and "eps" in detail


def test_gate_rejects_bad_rows_and_stores_nothing(client: TestClient, ingested: dict) -> None:
    bad = [
        {"period_end": "2017-03-31", "available_at": "2017-04-27", "field": "eps", "value": 27.0},
        {"period_end": "2017-06-30", "available_at": "2017-06-01", "field": "eps", "value": 28.0},
        {"period_end": "2017-09-30", "available_at": "2017-10-26", "field": "Bad Field!", "value": 1.0},
        {"period_end": "2017-12-31", "available_at": "2018-01-25", "field": "eps", "value": "nan"},
    ]
    response = client.post(BASE, json={"records": bad})
    assert response.status_code == 422
    body = response.json()
    assert [b["row"] for b in body["bad_rows"]] == [2, 3, 4] and "nothing was stored" in body["detail"]
    assert "available_at is before period_end" in body["detail"]
    duplicate = [RECORDS[0], {**RECORDS[0], "value": 1.0}]
    response = client.post(BASE, json={"records": duplicate})
    assert response.status_code == 422 and "duplicate (field, period_end, available_at)" in response.json()["detail"]
    records = client.get(BASE, params={"field": "eps"}).json()["records"]
    assert len(records) == 3


def test_rewriting_history_is_409(client: TestClient, ingested: dict) -> None:
    response = client.post(BASE, json={"records": [{**RECORDS[1], "value": 99.0}]})
    assert response.status_code == 409
    assert "rewrite history" in response.json()["detail"]
    assert [r["value"] for r in client.get(BASE, params={"field": "eps"}).json()["records"]] == [23.0, 25.0, 26.0]


def test_one_conflict_in_any_field_stores_nothing_of_the_upload(client: TestClient, ingested: dict) -> None:
    upload = [
        {"period_end": "2016-12-31", "available_at": "2017-01-26", "field": "revenue", "value": 1.0},  # new field
        {**RECORDS[4], "value": 1.0},  # book value: conflict, row 2
        {"period_end": "2016-12-31", "available_at": "2017-01-26", "field": "eps", "value": 27.0},  # new period
        {**RECORDS[0], "value": 2.0},  # eps: conflict, row 4
    ]
    response = client.post(BASE, json={"records": upload})
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert detail.index("row 2 (book_value_per_share") < detail.index("row 4 (eps"), "conflicts in upload order"
    fields = {f["field"] for f in client.get(BASE).json()["fields"]}
    assert "revenue" not in fields
    assert len(client.get(BASE, params={"field": "eps"}).json()["records"]) == 3


def test_csv_upload(client: TestClient) -> None:
    csv = pd.DataFrame([{"period_end": "2016-06-30", "available_at": "2016-08-01", "field": "revenue",
                         "value": 1.5e12}]).to_csv(index=False).encode()
    response = client.post("/api/v1/market-data/GSPC/fundamentals", files={"file": ("f.csv", csv, "text/csv")})
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == 1 and "revenue" in response.json()["fingerprints"]


def test_a_restatement_changes_values_only_from_its_available_at(
    fresh_client: TestClient, create_feature: CreateFeature
) -> None:
    client = fresh_client
    _ingest(client, RECORDS)
    feature = create_feature(client, "fundamental.pe_ratio")
    first, before = _generate(client, feature["id"])
    # Q2 EPS restated on 2016-09-15 (a new record; the original stays)
    restated = _ingest(client, [{"period_end": "2016-06-30", "available_at": "2016-09-15", "field": "eps",
                                 "value": 20.0}])
    assert restated["inserted"] == 1
    second, after = _generate(client, feature["id"])
    assert second["version_hash"] != first["version_hash"]
    closes = _closes(client)
    cut = _ts("2016-09-15")
    assert after["pe_ratio"][after.index < cut].equals(before["pe_ratio"][before.index < cut])
    assert after.loc[cut, "pe_ratio"] == pytest.approx(closes[cut] / 20.0)
    assert before.loc[cut, "pe_ratio"] == pytest.approx(closes[cut] / 25.0)
    later = _ts("2016-10-27")  # Q3 announced: the restatement of Q2 no longer the latest period
    assert after.loc[later, "pe_ratio"] == pytest.approx(closes[later] / 26.0)
    # a new record (a figure published before the end of the range) changes the version hash again
    _ingest(client, [{"period_end": "2016-12-15", "available_at": "2016-12-28", "field": "eps", "value": 30.0}])
    third, _ = _generate(client, feature["id"])
    assert third["version_hash"] != second["version_hash"]
    vintage = client.get(BASE, params={"field": "eps", "as_of": "2016-09-01", "latest_only": "true"}).json()
    assert [r["value"] for r in vintage["records"]] == [23.0, 25.0]
