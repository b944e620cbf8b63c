"""Tuning and AutoML on panels (issue 13), on both backends, checked independently.

Each trial's score is recomputed here for its alpha: the fold's rows chosen from the spans
the trial reports, scikit-learn's StandardScaler + Ridge fitted on them, scipy's Spearman
rank IC per test date, its mean over the sample std per fold (ICIR), averaged over folds.
The reference rows and per-date ICs are test_pooled_training's (TA-Lib on skfolio's closes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from alphaforge.tuning import studies
from conftest import post_features
from test_pooled_training import FEATURES, HORIZON, per_date_ic, reference_panel
from test_tasks import wait_for

START, END = "2014-01-01", "2020-01-01"
CV = {"method": "expanding", "n_splits": 3, "test_size": 0.15}
ALPHA = {"alpha": {"type": "float", "low": 0.01, "high": 1000.0, "log": True}}
N_TRIALS = 5


@pytest.fixture(scope="module")
def panel_dataset(client: TestClient) -> dict[str, Any]:
    ids = post_features(client, FEATURES)
    return {"feature_ids": ids, "universe": "SP20", "start_date": START, "end_date": END, "target_horizon": HORIZON}


def _tune_body(dataset: dict, **body: Any) -> dict[str, Any]:
    return {"plugin_key": "ml.ridge", "dataset": dataset, "cv": CV, "param_space": ALPHA, "n_trials": N_TRIALS,
            "metric": "icir", "seed": 3, **body}


@pytest.fixture(scope="module")
def icir_study(client: TestClient, panel_dataset: dict) -> dict:
    response = client.post("/api/v1/models/tune", json=_tune_body(panel_dataset))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def panel(closes: pd.DataFrame) -> pd.DataFrame:  # noqa: F811 - the imported fixture
    return reference_panel(closes, start_date=START, end_date=END)


def _fold_rank_ics(panel: pd.DataFrame, fold: dict, alpha: float) -> list[float]:
    """Per test date, the Spearman rank IC of a Ridge fitted on the fold's training dates."""
    dates = panel.index.get_level_values(0)
    train = panel[(dates >= pd.Timestamp(fold["train_start"])) & (dates <= pd.Timestamp(fold["train_end"]))]
    test = panel[(dates >= pd.Timestamp(fold["test_start"])) & (dates <= pd.Timestamp(fold["test_end"]))].copy()
    assert (fold["n_train"], fold["n_test"]) == (len(train), len(test))
    scaler = StandardScaler().fit(train[["rsi", "roc"]].to_numpy())
    ridge = Ridge(alpha=alpha).fit(scaler.transform(train[["rsi", "roc"]].to_numpy()), train["target"].to_numpy())
    test["prediction"] = ridge.predict(scaler.transform(test[["rsi", "roc"]].to_numpy()))
    return per_date_ic(test)[1]


def _icir(values: list[float]) -> float:
    return float(np.mean(values) / np.std(values, ddof=1))


def test_each_trials_icir_equals_an_independent_computation_and_the_best_is_the_max(
    client: TestClient, icir_study: dict, panel: pd.DataFrame
) -> None:
    body = icir_study
    assert body["metric"] == "mean_cs_rank_icir" and body["direction"] == "maximize"  # icir: the alias
    assert body["n_complete"] == N_TRIALS == len(body["trials"])
    storage = studies.storage(client.app.state.ctx.settings.resolved_optuna_storage_url)  # type: ignore[attr-defined]
    study = optuna.load_study(study_name=body["study_name"], storage=storage)
    for trial in body["trials"]:
        assert len(trial["folds"]) == trial["folds_evaluated"] == 3
        per_fold = [_icir(_fold_rank_ics(panel, fold, trial["params"]["alpha"])) for fold in trial["folds"]]
        assert trial["score"] == pytest.approx(np.mean(per_fold), rel=1e-6, abs=1e-9)
        assert trial["metrics"]["mean_cs_rank_icir"] == trial["score"]
        for fold, expected in zip(trial["folds"], per_fold):
            assert fold["cs_rank_icir"] == pytest.approx(expected, rel=1e-6, abs=1e-9)
        # what pruning compares: after each fold, the score over the folds evaluated so far
        reported = study.trials[trial["number"]].intermediate_values
        np.testing.assert_allclose([reported[k] for k in range(3)], np.cumsum(per_fold) / np.arange(1, 4), rtol=1e-6)
    scores = [t["score"] for t in body["trials"]]
    assert len(set(scores)) == N_TRIALS  # alpha matters, so "the best" is not a tie
    assert body["best_score"] == max(scores) == body["trials"][body["best_trial"]]["score"]
    assert body["best_params"] == body["trials"][body["best_trial"]]["params"]


def test_mlflow_logs_the_panel_study_and_each_trials_cross_sectional_folds(client: TestClient, icir_study: dict) -> None:
    mlflow = MlflowClient(tracking_uri=client.app.state.ctx.settings.resolved_mlflow_tracking_uri)  # type: ignore[attr-defined]
    parent = mlflow.get_run(icir_study["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["universe"] == "SP20"
    assert parent.data.params["dataset.universe"] == "SP20" and "dataset.symbol" not in parent.data.params
    assert parent.data.params["metric"] == "mean_cs_rank_icir"
    assert parent.data.metrics["best_score"] == icir_study["best_score"]
    for trial in icir_study["trials"]:
        child = mlflow.get_run(trial["mlflow_run_id"])
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.metrics["score"] == trial["score"] == child.data.metrics["cv_mean_cs_rank_icir"]
        history = mlflow.get_metric_history(child.info.run_id, "fold_cs_rank_icir")
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == [f["cs_rank_icir"] for f in trial["folds"]]


def test_the_async_tune_through_worker_shards_gives_the_sync_trials(
    client: TestClient, panel_dataset: dict, icir_study: dict
) -> None:
    submitted = client.post("/api/v1/models/tune/async", json=_tune_body(panel_dataset))
    assert submitted.status_code == 202, submitted.text
    task = wait_for(client, submitted.json()["task_id"])
    assert task["status"] == "SUCCESS", task
    result = task["result"]
    assert [(t["params"], t["score"]) for t in result["trials"]] == [(t["params"], t["score"]) for t in icir_study["trials"]]


def test_automl_on_a_panel_ranks_by_the_cross_sectional_rank_ic(
    client: TestClient, panel_dataset: dict, icir_study: dict, panel: pd.DataFrame
) -> None:
    candidates = {"ml.lightgbm": {"n_estimators": 20, "num_leaves": 8}, "ml.ridge": {"alpha": 10.0}}
    response = client.post(
        "/api/v1/models/automl",
        json={"dataset": panel_dataset, "candidates": candidates, "cv": CV, "metric": "mean_cs_rank_ic"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metric"] == "mean_cs_rank_ic" and body["direction"] == "maximize"
    rows = body["leaderboard"]
    assert sorted(r["plugin_key"] for r in rows) == sorted(candidates) and all(r["error"] is None for r in rows)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    for row in rows:
        assert row["score"] == row["metrics"]["mean_cs_rank_ic"] and row["metrics"]["n_folds"] == 3
    # the same dataset and CV split the same dates: the tune's fold spans serve the ridge row
    ridge = next(r for r in rows if r["plugin_key"] == "ml.ridge")
    folds = icir_study["trials"][0]["folds"]
    expected = np.mean([np.mean(_fold_rank_ics(panel, fold, 10.0)) for fold in folds])
    assert ridge["score"] == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_models_that_cannot_pool_are_refused_on_a_panel_by_name(client: TestClient, panel_dataset: dict) -> None:
    tune = client.post("/api/v1/models/tune", json=_tune_body(panel_dataset, plugin_key="stat.arima", param_space=None))
    assert tune.status_code == 422, tune.text
    assert "stat.arima cannot be trained on a panel" in tune.json()["detail"]
    automl = client.post(
        "/api/v1/models/automl",
        json={"dataset": panel_dataset, "candidates": {"ml.ridge": {}, "stat.arima": {}}, "cv": CV, "metric": "icir"},
    )
    assert automl.status_code == 422, automl.text
    detail = automl.json()["detail"]
    assert "cannot be trained on a panel: stat.arima." in detail and "ml.ridge" not in detail


@pytest.mark.parametrize("metric", ["icir", "mean_cs_rank_ic", "mean_cs_ic", "mean_cs_icir"])
def test_a_cross_sectional_metric_on_one_symbol_is_a_422(client: TestClient, panel_dataset: dict, metric: str) -> None:
    single = {k: v for k, v in panel_dataset.items() if k != "universe"} | {"symbol": "GSPC"}
    tune = client.post("/api/v1/models/tune", json=_tune_body(single, metric=metric))
    automl = client.post(
        "/api/v1/models/automl", json={"dataset": single, "candidates": {"ml.ridge": {}}, "cv": CV, "metric": metric}
    )
    for response in (tune, automl):
        assert response.status_code == 422, response.text
        assert "it needs a panel" in response.json()["detail"]
