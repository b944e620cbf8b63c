"""Several features over one universe in one request (``POST /api/v1/features/panels``), on
both backends: each answered with the panel its own request would give (the same stored
panel, the same values: TA-Lib on skfolio's own SP20 closes, and a per-date rank computed
here), built by one task with one batch of members per worker."""

from __future__ import annotations

import uuid

import pandas as pd
from fastapi.testclient import TestClient
from test_cross_section_features import per_date, talib_panel
from test_panels import parquet, post_panel
from test_tasks import wait_for

SYMBOLS = ["AAPL", "KO", "PG", "XOM", "JNJ"]
SHORT = {"start_date": "2016-01-01", "end_date": "2018-01-01"}


def _three(client: TestClient, create_feature) -> list[dict]:
    """RSI(14), 20-day momentum and the cross-sectional rank of that momentum."""
    rsi = create_feature(client, "technical.rsi", {"period": 14})
    momentum = create_feature(client, "technical.roc", {"period": 20})
    ranked = create_feature(client, "cross_sectional.rank", {"feature_id": momentum["id"]})
    return [rsi, momentum, ranked]


def _post(client: TestClient, feature_ids: list[str], **body: object) -> dict:
    response = client.post("/api/v1/features/panels", json={"feature_ids": feature_ids, "symbols": SYMBOLS, **SHORT, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_three_features_in_one_request_are_the_panels_their_own_requests_give(
    client: TestClient, create_feature, closes: pd.DataFrame
) -> None:
    features = _three(client, create_feature)
    ids = [f["id"] for f in features]
    answer = _post(client, ids)
    assert [p["panel"]["feature_id"] for p in answer["panels"]] == ids
    assert [p["cached"] for p in answer["panels"]] == [False, False, False]
    rsi, momentum, ranked = (parquet(client, fid, p["panel"]["id"]) for fid, p in zip(ids, answer["panels"]))
    expected_rsi = talib_panel(closes, SYMBOLS, SHORT["start_date"], SHORT["end_date"], "rsi", "RSI", 14)
    expected_momentum = talib_panel(closes, SYMBOLS, SHORT["start_date"], SHORT["end_date"], "roc", "ROC", 20)
    pd.testing.assert_series_equal(rsi["rsi"], expected_rsi, check_index_type=False)
    pd.testing.assert_series_equal(momentum["roc"], expected_momentum,
                                   check_index_type=False)
    got_rank = ranked.iloc[:, 0]
    pd.testing.assert_series_equal(got_rank, per_date(expected_momentum, "rank"), check_index_type=False,
                                   check_names=False)
    for fid, one in zip(ids, answer["panels"]):  # each feature's own request finds the same stored panel
        alone = post_panel(client, fid, symbols=SYMBOLS, **SHORT)
        assert alone["cached"] is True and alone["panel"]["id"] == one["panel"]["id"]


def test_a_second_request_is_all_hits_and_a_new_feature_only_computes_its_own_pieces(
    client: TestClient, create_feature
) -> None:
    features = _three(client, create_feature)
    ids = [f["id"] for f in features]
    first = _post(client, ids)
    again = _post(client, ids)
    assert [p["cached"] for p in again["panels"]] == [True, True, True]
    assert [p["panel"]["id"] for p in again["panels"]] == [p["panel"]["id"] for p in first["panels"]]
    sma = create_feature(client, "technical.sma", {"period": 5})
    mixed = _post(client, [sma["id"], *ids])
    assert [p["cached"] for p in mixed["panels"]] == [False, True, True, True]
    assert sorted(p["symbol"] for p in mixed["panels"][0]["pieces"] if not p["cached"]) == sorted(SYMBOLS)


def test_the_async_request_is_one_task_with_one_batch_per_worker(client: TestClient, create_feature) -> None:
    features = _three(client, create_feature)
    ids = [f["id"] for f in features]
    response = client.post("/api/v1/features/panels/async", json={"feature_ids": ids, "symbols": SYMBOLS, **SHORT})
    assert response.status_code == 202, response.text
    task = wait_for(client, response.json()["task_id"])
    assert task["status"] == "SUCCESS", task
    # Two task workers: two batches of members, each computing both features' pieces (the
    # rank's pieces are the momentum's), not a task per feature.
    assert task["kind"] == "generate_panels" and task["children_total"] == 2
    assert [p["panel"]["feature_id"] for p in task["result"]["panels"]] == ids
    sync = _post(client, ids)
    assert [p["cached"] for p in sync["panels"]] == [True, True, True]
    assert [p["panel"]["id"] for p in sync["panels"]] == [p["panel"]["id"] for p in task["result"]["panels"]]


def test_refusals_name_what_to_change(client: TestClient, create_feature) -> None:
    rsi = create_feature(client, "technical.rsi", {"period": 14})
    atr = create_feature(client, "technical.atr", {"period": 14})
    submitted = len(client.get("/api/v1/tasks", params={"kind": "generate_panels", "limit": 1000}).json())
    repeated = client.post("/api/v1/features/panels", json={"feature_ids": [rsi["id"], rsi["id"]], "symbols": SYMBOLS, **SHORT})
    assert repeated.status_code == 422 and "feature_ids must be unique" in repeated.text
    unknown = str(uuid.uuid4())
    missing = client.post("/api/v1/features/panels", json={"feature_ids": [rsi["id"], unknown], "symbols": SYMBOLS, **SHORT})
    assert missing.status_code == 404 and unknown in missing.json()["detail"]
    close_only = client.post("/api/v1/features/panels", json={"feature_ids": [rsi["id"], atr["id"]], "universe": "SP20", **SHORT})
    assert close_only.status_code == 422, close_only.text
    assert "technical.atr" in close_only.json()["detail"] and "high" in close_only.json()["detail"]
    listed = client.get("/api/v1/tasks", params={"kind": "generate_panels", "limit": 1000}).json()
    assert len(listed) == submitted  # nothing was submitted
