"""Out-of-fold predictions (issue 15): every training keeps its test-fold forecasts with the
target they were scored against, readable as JSON or Parquet, on both backends.

Checked independently: the targets against forward returns recomputed from the raw closes
(arch's GSPC, skfolio's SP20), each fold's rows against the fold's reported span, and each
fold's reported scores recomputed from the stored forecasts with numpy and scipy (so the
stored forecasts are the ones that were scored)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from arch.data import sp500
from fastapi.testclient import TestClient
from scipy import stats
from skfolio.datasets import load_sp500_dataset

from conftest import post_features

HORIZON = 5
CV = {"method": "expanding", "n_splits": 3, "test_size": 0.15}


def _model(client: TestClient) -> str:
    response = client.post("/api/v1/models", json={"name": "oof ridge", "model_type": "ridge",
                                                   "family": "machine_learning", "parameters": {"alpha": 3.0}})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _train(client: TestClient, model_id: str, feature_ids: list[str], **source: object) -> dict:
    dataset = {"feature_ids": feature_ids, "start_date": "2012-01-01", "end_date": "2019-01-01",
               "target_horizon": HORIZON, **source}
    response = client.post(f"/api/v1/models/{model_id}/train", json={"dataset": dataset, "cv": CV})
    assert response.status_code == 200, response.text
    return response.json()


def _parquet(client: TestClient, model_id: str) -> pd.DataFrame:
    response = client.get(f"/api/v1/models/{model_id}/out-of-fold", params={"format": "parquet"})
    assert response.status_code == 200, response.text
    return pd.read_parquet(io.BytesIO(response.content)).reset_index()


@pytest.fixture(scope="module")
def feature_ids(client: TestClient) -> list[str]:
    return post_features(client, [("technical.rsi", {"period": 14}), ("technical.roc", {"period": 20})])


def test_a_trainings_test_fold_forecasts_are_kept_and_are_the_ones_it_scored(
    client: TestClient, feature_ids: list[str]
) -> None:
    model_id = _model(client)
    missing = client.get(f"/api/v1/models/{model_id}/out-of-fold")
    assert missing.status_code == 404 and "train it" in missing.json()["detail"]

    trained = _train(client, model_id, feature_ids, symbol="GSPC")
    assert client.get(f"/api/v1/models/{model_id}").json()["out_of_fold_uri"] == trained["out_of_fold_uri"]
    stored = _parquet(client, model_id)
    assert list(stored.columns) == ["timestamp", "symbol", "fold", "prediction", "target", "forward_return"]
    assert (stored["forward_return"] == stored["target"]).all()  # a raw target is the forward return
    assert (stored["symbol"] == "GSPC").all()

    raw = sp500.load()["Close"]
    raw.index = pd.DatetimeIndex(raw.index).tz_localize("UTC")
    in_range = raw[(raw.index >= "2012-01-01") & (raw.index < "2019-01-01")]
    forward = in_range.shift(-HORIZON) / in_range - 1
    np.testing.assert_allclose(stored["target"], forward.reindex(pd.DatetimeIndex(stored["timestamp"])).to_numpy(), rtol=1e-12)

    for fold in trained["cv_metrics"]["folds"]:
        rows = stored[stored["fold"] == fold["fold"]]
        assert len(rows) == fold["n_test"]
        assert rows["timestamp"].min() == pd.Timestamp(fold["test_start"]) and rows["timestamp"].max() == pd.Timestamp(fold["test_end"])
        error = rows["prediction"] - rows["target"]
        assert fold["mse"] == pytest.approx(float(np.mean(error**2)), rel=1e-9)
        assert fold["ic"] == pytest.approx(stats.pearsonr(rows["prediction"], rows["target"])[0], rel=1e-9)

    as_json = pd.DataFrame(client.get(f"/api/v1/models/{model_id}/out-of-fold").json())
    assert len(as_json) == len(stored)
    np.testing.assert_allclose(as_json["prediction"].to_numpy(dtype=float), stored["prediction"].to_numpy(), rtol=0)


def test_a_panel_trainings_forecasts_hold_every_member_and_its_per_date_rank_ic(
    client: TestClient, feature_ids: list[str]
) -> None:
    model_id = _model(client)
    trained = _train(client, model_id, feature_ids, universe="SP20", target_transform="rank")
    stored = _parquet(client, model_id)
    closes = load_sp500_dataset()
    assert set(stored["symbol"]) == set(closes.columns)
    # the target is ranked per date; forward_return keeps the return itself, from skfolio's closes
    closes.index = pd.DatetimeIndex(closes.index).tz_localize("UTC")
    forward = (closes.shift(-HORIZON) / closes - 1).stack()
    expected = forward.reindex(pd.MultiIndex.from_arrays([stored["timestamp"], stored["symbol"]])).to_numpy()
    np.testing.assert_allclose(stored["forward_return"].to_numpy(), expected, rtol=1e-12)
    assert stored["target"].between(0, 1).all() and not np.allclose(stored["target"], stored["forward_return"])
    assert len(stored) == sum(f["n_test"] for f in trained["cv_metrics"]["folds"])
    rank_ics = [
        stats.spearmanr(day["prediction"], day["target"])[0]
        for _, day in stored.groupby("timestamp") if len(day) > 1 and day["prediction"].nunique() > 1
    ]
    assert trained["cv_metrics"]["summary"]["cs_rank_ic"] == pytest.approx(float(np.mean(rank_ics)), rel=1e-9)


def test_deleting_the_model_deletes_its_forecasts(client: TestClient, feature_ids: list[str]) -> None:
    ctx = client.app.state.ctx
    model_id = _model(client)
    uri = _train(client, model_id, feature_ids, symbol="GSPC")["out_of_fold_uri"]
    assert ctx.objects.exists(ctx.objects.key_of(uri))
    assert client.delete(f"/api/v1/models/{model_id}").status_code == 204
    assert not ctx.objects.exists(ctx.objects.key_of(uri))
    assert client.get(f"/api/v1/models/{model_id}/out-of-fold").status_code == 404


def _by_uri(client: TestClient, uri: str) -> pd.DataFrame:
    response = client.get("/api/v1/models/out-of-fold", params={"uri": uri, "format": "parquet"})
    assert response.status_code == 200, response.text
    return pd.read_parquet(io.BytesIO(response.content)).reset_index()


def _fold_mse(stored: pd.DataFrame) -> list[float]:
    return [float(np.mean((rows["prediction"] - rows["target"]) ** 2)) for _, rows in stored.groupby("fold")]


def test_each_complete_trial_and_each_leaderboard_row_keeps_its_forecasts(
    client: TestClient, feature_ids: list[str]
) -> None:
    dataset = {"feature_ids": feature_ids, "symbol": "GSPC", "start_date": "2012-01-01", "end_date": "2019-01-01",
               "target_horizon": HORIZON}
    tune = client.post("/api/v1/models/tune", json={"plugin_key": "ml.ridge", "dataset": dataset, "cv": CV,
                                                    "n_trials": 3, "seed": 1, "pruner": "none"})
    assert tune.status_code == 200, tune.text
    for trial in tune.json()["trials"]:
        assert trial["state"] == "COMPLETE" and trial["out_of_fold_uri"], trial
        stored = _by_uri(client, trial["out_of_fold_uri"])
        assert _fold_mse(stored) == pytest.approx([f["mse"] for f in trial["folds"]], rel=1e-9)

    automl = client.post("/api/v1/models/automl", json={
        "dataset": dataset, "cv": CV, "n_trials": 2, "seed": 2,
        "candidates": {"ml.ridge": {"fit_intercept": True}, "ensemble.mean": {}},
    })
    assert automl.status_code == 200, automl.text
    rows = automl.json()["leaderboard"]
    assert {r["plugin_key"]: bool(r["study_name"]) for r in rows} == {"ml.ridge": True, "ensemble.mean": False}
    for row in rows:  # a tuned row's are its best trial's; an untuned row's its own cross-validation's
        stored = _by_uri(client, row["out_of_fold_uri"])
        assert float(np.mean(_fold_mse(stored))) == pytest.approx(row["metrics"]["mean_mse"], rel=1e-9)


@pytest.mark.parametrize("uri", ["file:///etc/passwd", "models/x.parquet", "../../secret"])
def test_a_uri_that_is_no_out_of_fold_object_is_a_422(client: TestClient, uri: str) -> None:
    response = client.get("/api/v1/models/out-of-fold", params={"uri": uri})
    assert response.status_code == 422 and "out_of_fold_uri" in response.json()["detail"], response.text
