"""Optuna's WilcoxonPruner over CV folds, through the API on both backends.

The space has two points: a lightgbm that nearly predicts the mean (learning rate 0.001) and
one that fits noise (learning rate 1.0, deep trees, tiny leaves), clearly worse on every fold.
Whether each trial was pruned is then known in advance: the bad point is pruned once a good
trial has completed, never before, and the good point never.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import post_features

FEATURES = [("technical.rsi", {"period": 14}), ("statistical.returns", {}), ("statistical.realized_volatility", {})]
GOOD, BAD = 0.001, 1.0
SPACE = {"learning_rate": {"type": "categorical", "choices": [GOOD, BAD]}}
FIXED = {"n_estimators": 60, "num_leaves": 63, "min_child_samples": 2}


@pytest.fixture(scope="module")
def dataset(client: TestClient) -> dict[str, Any]:
    ids = post_features(client, FEATURES)
    return {"feature_ids": ids, "symbol": "GSPC", "start_date": "2010-01-01", "end_date": "2019-01-01"}


def _tune(client: TestClient, dataset: dict, **body: Any) -> dict:
    response = client.post("/api/v1/models/tune", json={
        "plugin_key": "ml.lightgbm", "dataset": dataset, "param_space": SPACE, "fixed_params": FIXED,
        "n_trials": 8, "seed": 2, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_wilcoxon_prunes_the_clearly_worse_trials_and_never_the_first(client: TestClient, dataset: dict) -> None:
    body = _tune(client, dataset, pruner="wilcoxon")
    trials = body["trials"]
    lrs = [t["params"]["learning_rate"] for t in trials]
    assert lrs[0] == BAD and GOOD in lrs[1:] and lrs.count(BAD) >= 3, lrs  # the seed makes the case meaningful
    first_good = lrs.index(GOOD)
    for trial, lr in zip(trials, lrs):
        expected = "PRUNED" if lr == BAD and trial["number"] > first_good else "COMPLETE"
        assert trial["state"] == expected, (trial["number"], lr, trial["state"])
    for trial in trials:
        if trial["state"] == "PRUNED":
            # stopped before the last fold; its score is the metric over the folds it reached
            assert 2 <= trial["folds_evaluated"] < 5
            mean = sum(f["mse"] for f in trial["folds"]) / trial["folds_evaluated"]
            assert trial["score"] == pytest.approx(mean, rel=1e-12)
    unpruned = _tune(client, dataset, pruner="none")
    assert body["best_score"] == unpruned["best_score"] and body["best_params"] == unpruned["best_params"]


def test_an_unknown_pruner_is_422_naming_the_choices(client: TestClient, dataset: dict) -> None:
    response = client.post("/api/v1/models/tune", json={
        "plugin_key": "ml.lightgbm", "dataset": dataset, "param_space": SPACE, "pruner": "hyperband"})
    assert response.status_code == 422
    assert "wilcoxon" in response.json()["detail"]
