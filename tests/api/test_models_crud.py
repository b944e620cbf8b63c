"""Model definitions CRUD: the seed's contract, model_type resolution, validation, locking, delete."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

XGB = {"name": "GSPC xgboost", "model_type": "xgboost", "family": "machine_learning", "parameters": {"max_depth": 4}}
EXPECTED_PLUGINS = {
    "stat.arima", "stat.garch",
    "ml.xgboost", "ml.lightgbm", "ml.catboost", "ml.random_forest", "ml.ridge",
    "dl.lstm",
    "ensemble.mean", "ensemble.stacking",
}


def test_create_resolves_the_short_name_and_returns_every_seed_field(client: TestClient) -> None:
    response = client.post("/api/v1/models", json=XGB)
    assert response.status_code == 201, response.text
    body = response.json()
    assert uuid.UUID(body["id"])
    assert {k: body[k] for k in XGB} == XGB
    assert body["plugin_key"] == "ml.xgboost"
    assert body["version"] == 1
    assert body["mlflow_run_id"] is None and body["artifact_uri"] is None and body["lineage"] is None
    assert body["metrics"] == {} and body["cv_metrics"] is None and body["metrics_source"] is None
    assert body["manual_fields"] == []
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")


@pytest.mark.parametrize(
    ("model_type", "family", "plugin_key"),
    [
        ("ml.lightgbm", "machine_learning", "ml.lightgbm"),
        ("arima", "statistical", "stat.arima"),
        ("garch", "statistical", "stat.garch"),
        ("lstm", "deep_learning", "dl.lstm"),
        ("stacking", "ensemble", "ensemble.stacking"),
    ],
)
def test_full_keys_and_short_names_resolve_within_the_family(
    client: TestClient, model_type: str, family: str, plugin_key: str
) -> None:
    response = client.post("/api/v1/models", json={"name": "m", "model_type": model_type, "family": family})
    assert response.status_code == 201, response.text
    assert response.json()["plugin_key"] == plugin_key


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"model_type": "prophet"}, "unknown model_type 'prophet' for family 'machine_learning'; valid: "),
        ({"model_type": "lstm"}, "unknown model_type 'lstm' for family 'machine_learning'"),
        ({"model_type": "dl.lstm"}, "model_type 'dl.lstm' belongs to family 'deep_learning', not 'machine_learning'"),
        ({"family": "bayesian"}, "family"),
        ({"parameters": {"depth": 3}}, "unknown parameter 'depth'"),
        ({"parameters": {"max_depth": "4"}}, "max_depth: Input should be a valid integer"),
        ({"parameters": {"max_depth": 0}}, "max_depth: Input should be greater than or equal to 1"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_definitions_are_422_saying_what_to_change(client: TestClient, change: dict, expected: str) -> None:
    response = client.post("/api/v1/models", json={**XGB, **change})
    assert response.status_code == 422
    assert expected in response.text


def test_unknown_type_lists_the_valid_names(client: TestClient) -> None:
    detail = client.post("/api/v1/models", json={**XGB, "model_type": "prophet"}).json()["detail"]
    for name in ("ml.xgboost", "xgboost", "lightgbm", "catboost", "random_forest", "ridge"):
        assert name in detail


def test_plugins_available_lists_every_family_with_metadata(client: TestClient) -> None:
    body = client.get("/api/v1/models/plugins/available").json()
    assert body["plugins"] == sorted(body["plugins"])
    assert EXPECTED_PLUGINS <= set(body["plugins"])
    xgb = body["metadata"]["ml.xgboost"]
    assert xgb["family"] == "machine_learning" and xgb["short_name"] == "xgboost"
    assert xgb["parameters"]["properties"]["max_depth"]["default"] == 6
    assert set(xgb["search_space"]) <= set(xgb["parameters"]["properties"])
    spaces = client.get("/api/v1/models/plugins/search-spaces").json()
    assert spaces["ml.xgboost"] == xgb["search_space"]


def test_get_list_and_404(client: TestClient) -> None:
    created = client.post("/api/v1/models", json=XGB).json()
    assert client.get(f"/api/v1/models/{created['id']}").json() == created
    listed = client.get("/api/v1/models", params={"limit": 1000}).json()
    assert created["id"] in [m["id"] for m in listed]
    first_two = client.get("/api/v1/models", params={"limit": 2}).json()
    assert first_two == listed[:2]
    assert client.get("/api/v1/models", params={"skip": 1, "limit": 1}).json() == listed[1:2]
    missing = client.get(f"/api/v1/models/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["detail"] == "Model not found"
    assert client.get("/api/v1/models", params={"limit": 0}).status_code == 422


def test_patch_bumps_the_version_and_revalidates(client: TestClient) -> None:
    created = client.post("/api/v1/models", json=XGB).json()
    patched = client.patch(f"/api/v1/models/{created['id']}", json={"parameters": {"max_depth": 3}, "version": 1})
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == 2 and patched.json()["parameters"] == {"max_depth": 3}
    moved = client.patch(f"/api/v1/models/{created['id']}", json={"model_type": "lightgbm", "parameters": {}})
    assert moved.json()["plugin_key"] == "ml.lightgbm" and moved.json()["version"] == 3
    # the old parameters do not fit the new plugin: refused, nothing changed
    bad = client.patch(f"/api/v1/models/{created['id']}", json={"model_type": "xgboost", "parameters": {"num_leaves": 7}})
    assert bad.status_code == 422 and "unknown parameter 'num_leaves'" in bad.json()["detail"]
    assert client.get(f"/api/v1/models/{created['id']}").json()["version"] == 3


def test_patch_with_a_stale_version_is_409(client: TestClient) -> None:
    created = client.post("/api/v1/models", json=XGB).json()
    client.patch(f"/api/v1/models/{created['id']}", json={"name": "renamed"})
    stale = client.patch(f"/api/v1/models/{created['id']}", json={"name": "again", "version": 1})
    assert stale.status_code == 409
    assert "your version 1, stored version 2" in stale.json()["detail"]


@pytest.mark.parametrize("field", ["mlflow_run_id", "artifact_uri", "metrics"])
def test_training_outputs_of_a_never_trained_model_are_409(client: TestClient, field: str) -> None:
    """They amend a training (test_models_manual_links.py covers trained models)."""
    created = client.post("/api/v1/models", json=XGB).json()
    value = {"mse": 1.0} if field == "metrics" else "s3://elsewhere/model.ubj"
    response = client.patch(f"/api/v1/models/{created['id']}", json={field: value})
    assert response.status_code == 409
    assert "never been trained" in response.json()["detail"]
    assert client.get(f"/api/v1/models/{created['id']}").json() == created


def test_patch_null_and_unknown_are_refused(client: TestClient) -> None:
    created = client.post("/api/v1/models", json=XGB).json()
    assert client.patch(f"/api/v1/models/{created['id']}", json={"name": None}).status_code == 422
    assert client.patch(f"/api/v1/models/{uuid.uuid4()}", json={"name": "x"}).status_code == 404


def test_delete_is_204_then_404(client: TestClient) -> None:
    created = client.post("/api/v1/models", json=XGB).json()
    assert client.delete(f"/api/v1/models/{created['id']}").status_code == 204
    assert client.get(f"/api/v1/models/{created['id']}").status_code == 404
    assert client.delete(f"/api/v1/models/{created['id']}").status_code == 404
