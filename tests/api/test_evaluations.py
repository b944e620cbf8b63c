"""Signal evaluation over the API (issue 15), on both backends: stored out-of-fold forecasts
evaluated as money. The expected strategy returns are recomputed here with pandas from the
stored forecasts (the statistics themselves are checked against alphalens-reloaded and
empyrical-reloaded in tests/unit/test_signals.py): a sign strategy for one symbol, a
top-minus-bottom quintile portfolio for SP20, each rebalanced every `horizon` dates."""

from __future__ import annotations

import io
import math
import uuid

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from test_tasks import wait_for

from conftest import post_features

HORIZON = 5
CV = {"method": "expanding", "n_splits": 3, "test_size": 0.2}


def _trained(client: TestClient, feature_ids: list[str], **source: object) -> str:
    model = client.post("/api/v1/models", json={"name": "eval ridge", "model_type": "ridge",
                                                "family": "machine_learning", "parameters": {"alpha": 3.0}})
    assert model.status_code == 201, model.text
    model_id = model.json()["id"]
    dataset = {"feature_ids": feature_ids, "start_date": "2010-01-01", "end_date": "2019-01-01",
               "target_horizon": HORIZON, **source}
    trained = client.post(f"/api/v1/models/{model_id}/train", json={"dataset": dataset, "cv": CV})
    assert trained.status_code == 200, trained.text
    return model_id


def _forecasts(client: TestClient, model_id: str) -> pd.DataFrame:
    response = client.get(f"/api/v1/models/{model_id}/out-of-fold", params={"format": "parquet"})
    return pd.read_parquet(io.BytesIO(response.content)).reset_index()


@pytest.fixture(scope="module")
def feature_ids(client: TestClient) -> list[str]:
    return post_features(client, [("technical.rsi", {"period": 14}), ("technical.roc", {"period": 20})])


def test_one_symbols_forecasts_are_a_sign_strategy_net_of_costs(client: TestClient, feature_ids: list[str]) -> None:
    model_id = _trained(client, feature_ids, symbol="GSPC")
    answer = client.post("/api/v1/evaluations", json={"model_id": model_id, "cost_bps": 10})
    assert answer.status_code == 200, answer.text
    body = answer.json()

    stored = _forecasts(client, model_id).dropna(subset=["prediction", "forward_return"])
    held = stored.iloc[::HORIZON]  # one symbol: every date is in the calendar
    position = np.sign(held["prediction"].to_numpy())
    gross = position * held["forward_return"].to_numpy()
    turnover = np.abs(np.diff(np.concatenate([[0.0], position])))
    net = gross - 10 / 1e4 * turnover
    periods = pd.DataFrame(body["periods"])
    assert list(periods["timestamp"]) == [t.isoformat() for t in held["timestamp"]]
    np.testing.assert_allclose(periods["gross"], gross, rtol=1e-12)
    np.testing.assert_allclose(periods["net"], net, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(periods["equity"], np.cumprod(1 + net), rtol=1e-12)
    summary = body["summary"]
    assert summary["mode"] == "sign" and summary["n_periods"] == len(held)
    assert summary["sharpe"] == pytest.approx(net.mean() / net.std(ddof=1) * math.sqrt(252 / HORIZON), rel=1e-9)
    assert body["source"] == {"model_id": model_id, "model_version": 2, "rows": len(stored), "symbols": 1,
                              "horizon": HORIZON}


def test_a_panels_forecasts_are_a_top_minus_bottom_quintile_portfolio(client: TestClient, feature_ids: list[str]) -> None:
    model_id = _trained(client, feature_ids, universe="SP20")
    body = client.post("/api/v1/evaluations", json={"model_id": model_id, "n_quantiles": 5}).json()
    stored = _forecasts(client, model_id)
    dates = np.sort(stored["timestamp"].unique())[::HORIZON]
    gross = []
    for date in dates:
        day = stored[stored["timestamp"] == date]
        bucket = pd.qcut(day["prediction"], 5, labels=False)
        gross.append((day["forward_return"][bucket == 4].mean() - day["forward_return"][bucket == 0].mean()) / 2)
    periods = pd.DataFrame(body["periods"])
    assert body["summary"]["mode"] == "long_short" and len(periods) == len(dates)
    np.testing.assert_allclose(periods["gross"], gross, rtol=1e-12)


def test_async_evaluation_is_a_task_with_the_same_answer(client: TestClient, feature_ids: list[str]) -> None:
    model_id = _trained(client, feature_ids, symbol="GSPC")
    body = {"model_id": model_id, "cost_bps": 5}
    submitted = client.post("/api/v1/evaluations/async", json=body)
    assert submitted.status_code == 202, submitted.text
    task = wait_for(client, submitted.json()["task_id"])
    assert task["status"] == "SUCCESS", task
    assert task["result"] == client.post("/api/v1/evaluations", json=body).json()


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"model_id": str(uuid.uuid4())}, 404, "not found"),
        ({}, 422, "exactly one of model_id and out_of_fold_uri"),
        ({"out_of_fold_uri": "x"}, 422, "horizon is required"),
        ({"out_of_fold_uri": "file:///etc/passwd", "horizon": 5}, 422, "out_of_fold_uri"),
        ({"model_id": str(uuid.uuid4()), "n_quantiles": 1}, 422, "n_quantiles"),
    ],
)
def test_bad_evaluation_requests_say_what_to_change(client: TestClient, body: dict, status: int, says: str) -> None:
    for path in ("/api/v1/evaluations", "/api/v1/evaluations/async"):
        response = client.post(path, json=body)
        assert response.status_code == status and says in response.text, response.text


def test_an_untrained_model_has_nothing_to_evaluate(client: TestClient) -> None:
    model = client.post("/api/v1/models", json={"name": "untrained", "model_type": "ridge", "family": "machine_learning"})
    response = client.post("/api/v1/evaluations", json={"model_id": model.json()["id"]})
    assert response.status_code == 404 and "train it" in response.json()["detail"]


def test_a_models_forecasts_over_a_range_are_scored_by_the_returns_that_followed(
    client: TestClient, feature_ids: list[str]
) -> None:
    from arch.data import sp500

    model_id = _trained(client, feature_ids, symbol="GSPC")
    window = {"symbol": "GSPC", "start_date": "2018-01-01", "end_date": "2018-12-01"}
    answer = client.post("/api/v1/evaluations", json={"model_id": model_id, "predict": window, "cost_bps": 2})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    forecasts = client.post(f"/api/v1/models/{model_id}/predict", json=window).json()
    raw = sp500.load()["Close"]
    raw.index = pd.DatetimeIndex(raw.index).tz_localize("UTC")
    forward = (raw.shift(-HORIZON) / raw - 1).reindex(pd.DatetimeIndex(forecasts["timestamps"]))
    held = pd.DataFrame({"prediction": forecasts["predictions"], "forward": forward.to_numpy()},
                        index=forward.index).dropna().iloc[::HORIZON]
    position = np.sign(held["prediction"].to_numpy())
    net = position * held["forward"].to_numpy() - 2 / 1e4 * np.abs(np.diff(np.concatenate([[0.0], position])))
    periods = pd.DataFrame(body["periods"])
    assert list(periods["timestamp"]) == [t.isoformat() for t in held.index]
    np.testing.assert_allclose(periods["net"], net, rtol=1e-12, atol=1e-15)
    assert body["source"]["predict"]["symbol"] == "GSPC" and body["source"]["rows"] == len(forecasts["timestamps"])


def test_predict_needs_a_model(client: TestClient) -> None:
    response = client.post("/api/v1/evaluations", json={
        "out_of_fold_uri": "x", "horizon": 5, "predict": {"symbol": "GSPC", "start_date": "2019-01-01", "end_date": "2019-02-01"},
    })
    assert response.status_code == 422 and "predict needs model_id" in response.text


def test_ic_decay_over_horizons_read_from_the_bars(client: TestClient, feature_ids: list[str]) -> None:
    from scipy import stats
    from skfolio.datasets import load_sp500_dataset

    model_id = _trained(client, feature_ids, universe="SP20")
    body = client.post("/api/v1/evaluations", json={"model_id": model_id, "ic_horizons": [1, 10]})
    assert body.status_code == 200, body.text
    decay = body.json()["summary"]["ic_decay"]
    stored = _forecasts(client, model_id)
    closes = load_sp500_dataset()
    closes.index = pd.DatetimeIndex(closes.index).tz_localize("UTC")
    for h in (1, 10):
        forward = (closes.shift(-h) / closes - 1).stack()
        rows = stored.assign(fwd=forward.reindex(pd.MultiIndex.from_arrays([stored["timestamp"], stored["symbol"]])).to_numpy())
        ics = [stats.spearmanr(day["prediction"], day["fwd"])[0] for _, day in rows.dropna().groupby("timestamp")
               if len(day) > 1 and day["prediction"].nunique() > 1 and day["fwd"].nunique() > 1]
        assert decay[str(h)] == pytest.approx(float(np.mean(ics)), rel=1e-9), h


def test_forecasts_lost_from_the_object_store_are_a_404_before_any_task(client: TestClient, feature_ids: list[str]) -> None:
    ctx = client.app.state.ctx
    model_id = _trained(client, feature_ids, symbol="GSPC")
    ctx.objects.delete(ctx.objects.key_of(client.get(f"/api/v1/models/{model_id}").json()["out_of_fold_uri"]))
    before = client.get("/api/v1/tasks", params={"kind": "evaluate", "limit": 500}).json()
    assert len(before) < 500
    for path in ("/api/v1/evaluations", "/api/v1/evaluations/async"):
        response = client.post(path, json={"model_id": model_id})
        assert response.status_code == 404 and "gone from the object store" in response.json()["detail"], response.text
    assert client.get("/api/v1/tasks", params={"kind": "evaluate", "limit": 500}).json() == before
