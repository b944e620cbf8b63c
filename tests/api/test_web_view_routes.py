"""The READ routes the web view reads, on both backends: every dataset of a feature, a model's
last cross-validation (fold spans, scores, baseline) and a study's parameter importance.
Checked against what the generate, train and tune answers said, and against Optuna's own
importance computed here on the stored study."""

from __future__ import annotations

import uuid
from typing import Any

import optuna
import pytest
from fastapi.testclient import TestClient
from optuna.importance import FanovaImportanceEvaluator, get_param_importances

from alphaforge.tuning import importance, studies
from conftest import bearer, post_features

RANGES = [("GSPC", "2014-01-01", "2019-01-01"), ("IXIC", "2016-01-01", "2019-01-01")]
DATASET = {"symbol": "GSPC", "start_date": "2014-01-01", "end_date": "2019-01-01", "target_horizon": 5}
CV = {"method": "expanding", "n_splits": 3}


@pytest.fixture(scope="module")
def feature_id(client: TestClient) -> str:
    return post_features(client, [("technical.rsi", {"period": 14})])[0]


@pytest.fixture(scope="module")
def generated(client: TestClient, feature_id: str) -> list[dict[str, Any]]:
    made = []
    for symbol, start, end in RANGES:
        response = client.post(f"/api/v1/features/{feature_id}/generate",
                               json={"symbol": symbol, "start_date": start, "end_date": end})
        assert response.status_code == 200, response.text
        made.append(response.json()["dataset"])
    return made


def test_every_dataset_of_a_feature_is_listed_oldest_first_and_filtered(
    client: TestClient, keys: dict[str, str], feature_id: str, generated: list[dict[str, Any]]
) -> None:
    listed = client.get(f"/api/v1/features/{feature_id}/datasets", headers=bearer(keys["read"]))
    assert listed.status_code == 200, listed.text
    assert listed.json() == generated
    gspc = client.get(f"/api/v1/features/{feature_id}/datasets", params={"symbol": "gspc", "timeframe": "1d"}).json()
    assert gspc == [generated[0]]
    assert client.get(f"/api/v1/features/{feature_id}/datasets", params={"skip": 1, "limit": 1}).json() == [generated[1]]
    assert client.get(f"/api/v1/features/{feature_id}/datasets", params={"timeframe": "1h"}).json() == []
    # each listed dataset reads back whole with the data route
    rows = client.get(f"/api/v1/features/{feature_id}/datasets/{generated[1]['id']}/data").json()
    assert len(rows) == generated[1]["row_count"]


@pytest.mark.parametrize(("query", "status"), [({"timeframe": "2w"}, 422), ({"limit": 0}, 422), ({"symbol": "A B"}, 422)])
def test_dataset_listing_refuses_bad_queries(client: TestClient, feature_id: str, query: dict, status: int) -> None:
    response = client.get(f"/api/v1/features/{feature_id}/datasets", params=query)
    assert response.status_code == status, response.text


def test_datasets_of_an_unknown_feature_are_a_404(client: TestClient) -> None:
    response = client.get(f"/api/v1/features/{uuid.uuid4()}/datasets")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


@pytest.fixture(scope="module")
def trained(client: TestClient, feature_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    model = client.post("/api/v1/models", json={"name": "cv view", "model_type": "ridge", "family": "machine_learning"})
    assert model.status_code == 201, model.text
    body = {"dataset": {"feature_ids": [feature_id], **DATASET}, "cv": CV}
    response = client.post(f"/api/v1/models/{model.json()['id']}/train", json=body)
    assert response.status_code == 200, response.text
    return model.json(), response.json()


def test_a_models_cross_validation_is_its_last_trainings(
    client: TestClient, keys: dict[str, str], trained: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    model, training = trained
    response = client.get(f"/api/v1/models/{model['id']}/cv", headers=bearer(keys["read"]))
    assert response.status_code == 200, response.text
    cv = response.json()
    assert cv["cv_metrics"] == training["cv_metrics"]
    assert cv["version"] == training["version"] and cv["mlflow_run_id"] == training["mlflow_run_id"]
    folds = cv["cv_metrics"]["folds"]
    assert len(folds) == CV["n_splits"] and all(f["train_end"] < f["test_start"] for f in folds)
    task = client.get(f"/api/v1/tasks/{cv['task_id']}").json()
    assert task["kind"] == "train" and task["result"]["model_id"] == model["id"]


def test_an_automl_winners_cross_validation_is_found_through_its_run(client: TestClient, feature_id: str) -> None:
    body = {"dataset": {"feature_ids": [feature_id], **DATASET}, "cv": CV, "candidates": {"ml.ridge": {}},
            "create_model": True, "model_name": "automl cv view"}
    response = client.post("/api/v1/models/automl", json=body)
    assert response.status_code == 200, response.text
    run = response.json()
    cv = client.get(f"/api/v1/models/{run['model_id']}/cv")
    assert cv.status_code == 200, cv.text
    assert cv.json()["cv_metrics"] == run["trained"]["cv_metrics"]
    assert client.get(f"/api/v1/tasks/{cv.json()['task_id']}").json()["kind"] == "automl"


def test_cross_validation_of_an_untrained_or_unknown_model_is_a_404(client: TestClient) -> None:
    model = client.post("/api/v1/models", json={"name": "never trained", "model_type": "ridge", "family": "machine_learning"})
    untrained = client.get(f"/api/v1/models/{model.json()['id']}/cv")
    assert untrained.status_code == 404 and "never trained" in untrained.json()["detail"]
    assert client.get(f"/api/v1/models/{uuid.uuid4()}/cv").status_code == 404
    assert client.get("/api/v1/models/not-a-uuid/cv").status_code == 422


def _tune(client: TestClient, feature_id: str, n_trials: int) -> dict[str, Any]:
    body = {"plugin_key": "ml.ridge", "dataset": {"feature_ids": [feature_id], **DATASET}, "cv": CV,
            "n_trials": n_trials, "pruner": "none", "seed": 5,
            "param_space": {"alpha": {"type": "float", "low": 0.01, "high": 1e4, "log": True},
                            "fit_intercept": {"type": "categorical", "choices": [True, False]}}}
    response = client.post("/api/v1/models/tune", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_parameter_importance_is_optunas_fanova_over_the_complete_trials(
    client: TestClient, keys: dict[str, str], feature_id: str
) -> None:
    tuned = _tune(client, feature_id, 8)
    response = client.get(f"/api/v1/studies/{tuned['study_id']}/importance", headers=bearer(keys["read"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["study_name"] == tuned["study_name"] and body["n_trials"] == tuned["n_complete"] == 8
    storage = studies.storage(client.app.state.ctx.settings.resolved_optuna_storage_url)  # type: ignore[attr-defined]
    study = optuna.load_study(study_name=tuned["study_name"], storage=storage)
    expected = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=importance.SEED))
    assert list(body["importances"]) == list(expected)
    assert body["importances"] == pytest.approx(dict(expected))
    assert set(expected) == {"alpha", "fit_intercept"} and sum(body["importances"].values()) == pytest.approx(1.0)


def test_a_study_of_one_trial_has_no_importance_and_says_why(client: TestClient, feature_id: str) -> None:
    tuned = _tune(client, feature_id, 1)
    body = client.get(f"/api/v1/studies/{tuned['study_id']}/importance").json()
    assert body["importances"] == {} and "two or more complete trials" in body["note"]


@pytest.mark.parametrize(("study_id", "status"), [("999999", 404), ("-1", 422), ("x", 422), (str(2**40), 422)])
def test_importance_of_an_unknown_study_is_refused(client: TestClient, study_id: str, status: int) -> None:
    response = client.get(f"/api/v1/studies/{study_id}/importance")
    assert response.status_code == status, response.text
