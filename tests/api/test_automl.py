"""AutoML through the API, on both backends: ranking by the metric's direction, error rows for
failing candidates, per-candidate tuning, and the winner saved and trained with the same CV."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alphaforge.errors import InvalidInput
from alphaforge.plugins.models import model_plugins
from alphaforge.schemas.tuning import AutoMLRequest
from alphaforge.tuning import automl as automl_service
from conftest import post_features

FEATURES = [("technical.rsi", {"period": 14}), ("statistical.returns", {})]
CV = {"n_splits": 3}
CANDIDATES = {
    "ml.ridge": {"alpha": 10.0},
    "ml.lightgbm": {"n_estimators": 20, "num_leaves": 8},
    "ml.random_forest": {"n_estimators": 10, "max_depth": 3},
}
SUMMARY_KEYS = {
    "mean_mse", "std_mse", "mean_mae", "std_mae", "directional_accuracy", "std_directional_accuracy",
    "mean_ic", "std_ic", "mean_rank_ic", "std_rank_ic", "n_folds",
}


@pytest.fixture(scope="module")
def dataset(client: TestClient) -> dict[str, Any]:
    ids = post_features(client, FEATURES)
    return {"feature_ids": ids, "symbol": "GSPC", "start_date": "2012-01-01", "end_date": "2019-01-01"}


def _automl(client: TestClient, dataset: dict, **body: Any) -> Any:
    return client.post("/api/v1/models/automl", json={"dataset": dataset, "candidates": CANDIDATES, "cv": CV, **body})


@pytest.fixture(scope="module")
def by_mse(client: TestClient, dataset: dict) -> dict:
    response = _automl(client, dataset)
    assert response.status_code == 200, response.text
    return response.json()


def test_leaderboard_ranks_error_metrics_ascending(by_mse: dict) -> None:
    rows = by_mse["leaderboard"]
    assert by_mse["metric"] == "mean_mse" and by_mse["direction"] == "minimize"
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert sorted(r["plugin_key"] for r in rows) == sorted(CANDIDATES)
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores)
    for row in rows:
        assert row["error"] is None and row["n_trials"] == 0 and row["fit_time_s"] > 0
        assert row["params"] == CANDIDATES[row["plugin_key"]]
        assert set(row["metrics"]) == SUMMARY_KEYS and row["metrics"]["n_folds"] == 3
        assert row["score"] == row["metrics"]["mean_mse"]
    assert by_mse["best"] == rows[0] and by_mse["model_id"] is None and by_mse["trained"] is None


def test_leaderboard_ranks_directional_accuracy_descending(client: TestClient, dataset: dict, by_mse: dict) -> None:
    response = _automl(client, dataset, metric="directional_accuracy")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["direction"] == "maximize"
    scores = [r["score"] for r in body["leaderboard"]]
    assert scores == sorted(scores, reverse=True)
    # the same CV as before: only the order changed
    accuracy = {r["plugin_key"]: r["metrics"]["directional_accuracy"] for r in by_mse["leaderboard"]}
    assert {r["plugin_key"]: r["score"] for r in body["leaderboard"]} == accuracy


def test_an_explicit_direction_wins(client: TestClient, dataset: dict) -> None:
    response = _automl(client, dataset, metric="mean_mse", direction="maximize")
    assert response.status_code == 200, response.text
    scores = [r["score"] for r in response.json()["leaderboard"]]
    assert scores == sorted(scores, reverse=True)


def _automl_here(client: TestClient, body: dict) -> dict:
    """AutoML run by the service function in this process (the API runs it in a worker,
    where a plugin patched by the test would not be)."""
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    return automl_service.automl(ctx, AutoMLRequest.model_validate(body)).model_dump(mode="json")


def test_a_failing_candidate_gets_an_error_row_ranked_last(
    client: TestClient, dataset: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fit(self: Any, X: Any, y: Any) -> None:
        raise RuntimeError("out of leaves")

    monkeypatch.setattr(model_plugins.get("ml.lightgbm"), "fit", broken_fit)
    body = _automl_here(client, {"dataset": dataset, "candidates": CANDIDATES, "cv": CV})
    last = body["leaderboard"][-1]
    assert last["plugin_key"] == "ml.lightgbm" and last["rank"] == 3
    assert last["error"] == {"type": "RuntimeError", "message": "out of leaves"}
    assert last["score"] is None and last["metrics"] is None
    assert body["best"]["plugin_key"] != "ml.lightgbm" and body["best"]["error"] is None


def test_when_every_candidate_fails_there_is_no_best(
    client: TestClient, dataset: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fit(self: Any, X: Any, y: Any) -> None:
        raise RuntimeError("nope")

    monkeypatch.setattr(model_plugins.get("ml.ridge"), "fit", broken_fit)
    body = _automl_here(client, {"dataset": dataset, "candidates": {"ml.ridge": {}}, "cv": CV})
    assert body["best"] is None and body["leaderboard"][0]["error"]["message"] == "nope"
    with pytest.raises(InvalidInput, match="every candidate failed"):
        _automl_here(client, {"dataset": dataset, "candidates": {"ml.ridge": {}}, "cv": CV, "create_model": True})


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"candidates": {"ml.nope": {}}}, 422, "unknown model plugin 'ml.nope'"),
        ({"candidates": {"ml.ridge": {"alpha": -1}}}, 422, "invalid parameters for ml.ridge"),
        ({"candidates": {"ml.ridge": {"depth": 3}}}, 422, "unknown parameter 'depth'"),
        ({"candidates": {}}, 422, "candidates"),
        ({"metric": "sharpe"}, 422, "unknown metric 'sharpe'"),
        ({"cv": {"purge": 0}}, 422, "purge=0 is shorter"),
    ],
)
def test_refusals_before_computing(client: TestClient, dataset: dict, body: dict, status: int, needle: str) -> None:
    response = _automl(client, dataset, **body)
    assert response.status_code == status, response.text
    assert needle in response.text


def test_unknown_feature_ids_are_404(client: TestClient, dataset: dict) -> None:
    missing = str(uuid.uuid4())
    response = _automl(client, {**dataset, "feature_ids": [missing]})
    assert response.status_code == 404 and response.json()["detail"] == f"Unknown feature id(s): {missing}"


def test_candidates_can_be_tuned_first(client: TestClient, dataset: dict) -> None:
    response = client.post(
        "/api/v1/models/automl",
        json={"dataset": dataset, "cv": CV, "n_trials": 5, "seed": 2,
              "candidates": {"ml.ridge": {"fit_intercept": True}, "ensemble.mean": {}}},
    )
    assert response.status_code == 200, response.text
    rows = {r["plugin_key"]: r for r in response.json()["leaderboard"]}
    ridge = rows["ml.ridge"]
    assert ridge["n_trials"] == 5 and ridge["study_name"].startswith("automl-")
    assert ridge["params"]["fit_intercept"] is True and 1e-3 <= ridge["params"]["alpha"] <= 1e3  # fixed kept, alpha tuned
    assert ridge["score"] == ridge["metrics"]["mean_mse"]
    # ensemble.mean has no default space: it is cross-validated as given
    assert rows["ensemble.mean"]["n_trials"] == 0 and rows["ensemble.mean"]["study_name"] is None
    assert rows["ensemble.mean"]["error"] is None


def test_create_model_saves_and_trains_the_winner_with_the_same_cv(client: TestClient, dataset: dict) -> None:
    response = _automl(client, dataset, create_model=True, model_name="automl winner")
    assert response.status_code == 200, response.text
    body = response.json()
    best, trained = body["best"], body["trained"]
    assert body["model_id"] == trained["model_id"]
    assert trained["cv_metrics"]["summary"] == pytest.approx(best["metrics"])  # scored exactly as in the leaderboard

    model = client.get(f"/api/v1/models/{body['model_id']}").json()
    assert model["name"] == "automl winner" and model["plugin_key"] == best["plugin_key"]
    assert model["parameters"] == best["params"] and model["version"] == 2
    assert model["artifact_uri"] == trained["artifact_uri"] and model["metrics"] == trained["cv_metrics"]["summary"]
