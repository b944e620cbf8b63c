"""One model of every registered plugin trained, tracked and used through the API.

Small settings keep it quick; the conformance suite checks each plugin's behaviour in depth.
A model trained by an older version of its plugin (here ensemble.stacking 2) is refused at
predict with a 409 until it is trained again.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from alphaforge.plugins.models import model_plugins
from alphaforge.plugins.models.ensemble import StackingEnsemble
from alphaforge.schemas.models import TrainRequest
from alphaforge.training.trainer import train_model

FAST: dict[str, tuple[str, str, dict]] = {
    "stat.arima": ("arima", "statistical", {"p": 1, "q": 1}),
    "stat.garch": ("garch", "statistical", {"dist": "t"}),
    "ml.xgboost": ("xgboost", "machine_learning", {"n_estimators": 50, "max_depth": 3}),
    "ml.lightgbm": ("lightgbm", "machine_learning", {"n_estimators": 50}),
    "ml.catboost": ("catboost", "machine_learning", {"iterations": 50, "depth": 4}),
    "ml.random_forest": ("random_forest", "machine_learning", {"n_estimators": 30}),
    "ml.ridge": ("ridge", "machine_learning", {}),
    "dl.lstm": ("lstm", "deep_learning", {"epochs": 3, "seq_len": 10, "hidden_size": 8, "num_layers": 1}),
    "ensemble.mean": ("mean", "ensemble", {"members": [
        {"plugin_key": "ml.ridge", "parameters": {}},
        {"plugin_key": "ml.lightgbm", "parameters": {"n_estimators": 30}},
    ]}),
    "ensemble.stacking": ("stacking", "ensemble", {"purge": 1, "members": [
        {"plugin_key": "ml.ridge", "parameters": {"alpha": 10.0}},
        {"plugin_key": "ml.xgboost", "parameters": {"n_estimators": 30}},
    ]}),
}


def test_every_registered_plugin_has_a_case_here() -> None:
    assert set(FAST) == set(model_plugins.keys())


@pytest.fixture(scope="module")
def feature_ids(client: TestClient) -> list[str]:
    specs = [("technical.rsi", {"period": 14}), ("technical.macd", {}), ("statistical.returns", {})]
    return [
        client.post("/api/v1/features", json={"name": k, "type": k.split(".")[0], "plugin_key": k, "parameters": p}).json()["id"]
        for k, p in specs
    ]


@pytest.mark.parametrize("plugin_key", sorted(FAST))
def test_train_track_and_predict(client: TestClient, feature_ids: list[str], plugin_key: str) -> None:
    model_type, family, parameters = FAST[plugin_key]
    created = client.post(
        "/api/v1/models", json={"name": plugin_key, "model_type": model_type, "family": family, "parameters": parameters}
    ).json()
    dataset = {"feature_ids": feature_ids, "symbol": "GSPC", "start_date": "2012-01-01", "end_date": "2019-01-01"}
    trained = client.post(f"/api/v1/models/{created['id']}/train", json={"dataset": dataset, "cv": {"n_splits": 3}})
    assert trained.status_code == 200, trained.text
    body = trained.json()
    assert len(body["cv_metrics"]["folds"]) == 3
    assert all(np.isfinite(f["mse"]) for f in body["cv_metrics"]["folds"])
    assert body["artifact_uri"].endswith(f"{body['artifact_sha256']}.{model_plugins.get(plugin_key).artifact_ext}")

    settings = client.app.state.ctx.settings  # type: ignore[attr-defined]
    run = MlflowClient(tracking_uri=settings.resolved_mlflow_tracking_uri).get_run(body["mlflow_run_id"])
    assert run.data.params["plugin_key"] == plugin_key and run.info.status == "FINISHED"

    request = {"symbol": "GSPC", "start_date": "2018-06-01", "end_date": "2019-01-01"}
    predicted = client.post(f"/api/v1/models/{created['id']}/predict", json=request)
    assert predicted.status_code == 200, predicted.text
    out = predicted.json()
    assert len(out["predictions"]) == len(out["timestamps"]) > 100
    assert np.all(np.isfinite(out["predictions"]))
    if plugin_key == "stat.garch":
        assert out["volatility"] is not None and np.all(np.asarray(out["volatility"]) > 0)
    else:
        assert out["volatility"] is None
    again = client.post(f"/api/v1/models/{created['id']}/predict", json=request).json()
    assert again["predictions"] == out["predictions"]  # loading the artifact is deterministic


def test_identical_catboost_trainings_store_the_same_artifact(client: TestClient, feature_ids: list[str]) -> None:
    """CatBoost stamps each trained model with a random guid and the finish time; the artifact must not carry them."""
    created = client.post(
        "/api/v1/models",
        json={"name": "catboost-repro", "model_type": "catboost", "family": "machine_learning",
              "parameters": {"iterations": 20, "depth": 3}},
    ).json()
    dataset = {"feature_ids": feature_ids, "symbol": "GSPC", "start_date": "2016-01-01", "end_date": "2019-01-01"}
    request = {"dataset": dataset, "cv": {"n_splits": 2}, "seed": 7}
    first, second = (client.post(f"/api/v1/models/{created['id']}/train", json=request) for _ in range(2))
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["artifact_sha256"] == second.json()["artifact_sha256"]
    assert first.json()["artifact_uri"] == second.json()["artifact_uri"]


class _StackingVersion2(StackingEnsemble):
    """ensemble.stacking as version 2 stamped its models (this process's registry only).
    Version 3 builds its out-of-fold folds with evaluation.cv, version 2 had a splitter of
    its own: a version-2 artifact holds meta weights fitted on other folds."""

    version = "2"


def test_a_stacking_model_of_version_2_must_be_trained_again(client: TestClient, feature_ids: list[str]) -> None:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    model_type, family, parameters = FAST["ensemble.stacking"]
    created = client.post(
        "/api/v1/models", json={"name": "stacking v2", "model_type": model_type, "family": family, "parameters": parameters}
    ).json()
    request = TrainRequest.model_validate({
        "dataset": {"feature_ids": feature_ids, "symbol": "GSPC", "start_date": "2016-01-01", "end_date": "2019-01-01"},
        "cv": {"n_splits": 2},
    })
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(model_plugins._plugins, "ensemble.stacking", _StackingVersion2)
        train_model(ctx, uuid.UUID(created["id"]), request)
    assert model_plugins.get("ensemble.stacking") is StackingEnsemble and StackingEnsemble.version == "3"
    assert client.get(f"/api/v1/models/{created['id']}").json()["lineage"]["plugin_version"] == "2"

    predict = {"symbol": "GSPC", "start_date": "2018-06-01", "end_date": "2019-01-01"}
    refused = client.post(f"/api/v1/models/{created['id']}/predict", json=predict)
    assert refused.status_code == 409, refused.text
    detail = refused.json()["detail"]
    assert "ensemble.stacking is now version 3" in detail and "trained with version 2" in detail
    assert "train the model again" in detail

    retrained = client.post(f"/api/v1/models/{created['id']}/train", json=request.model_dump(mode="json"))
    assert retrained.status_code == 200, retrained.text
    assert client.get(f"/api/v1/models/{created['id']}").json()["lineage"]["plugin_version"] == "3"
    predicted = client.post(f"/api/v1/models/{created['id']}/predict", json=predict)
    assert predicted.status_code == 200, predicted.text
    assert np.all(np.isfinite(predicted.json()["predictions"]))
