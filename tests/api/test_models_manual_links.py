"""PATCH /api/v1/models/{id} with the seed's training outputs (artifact_uri, metrics,
mlflow_run_id), on both backends: what each is checked against, what is stored (the
SHA-256 of the linked bytes, recomputed here), what prediction then loads, and what the
lineage keeps (who linked what, when, and the training outputs it replaced)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
from conftest import post_features
from fastapi.testclient import TestClient

START, END = "2009-01-01", "2019-01-01"
FEATURES = [("technical.rsi", {"period": 14}), ("statistical.returns", {})]
PREDICT = {"symbol": "GSPC", "start_date": "2018-01-01", "end_date": END}


def _model(client: TestClient, alpha: float) -> str:
    body = {"name": f"ridge {alpha}", "model_type": "ridge", "family": "machine_learning", "parameters": {"alpha": alpha}}
    response = client.post("/api/v1/models", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _train(client: TestClient, model_id: str, feature_ids: list[str], **dataset: Any) -> dict:
    body = {
        "dataset": {"feature_ids": feature_ids, "symbol": "GSPC", "start_date": START, "end_date": END, **dataset},
        "cv": {"method": "expanding", "n_splits": 3, "test_size": 0.1},
    }
    response = client.post(f"/api/v1/models/{model_id}/train", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _get(client: TestClient, model_id: str) -> dict:
    response = client.get(f"/api/v1/models/{model_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _patch(client: TestClient, model_id: str, body: dict, **kwargs: Any) -> Any:
    return client.patch(f"/api/v1/models/{model_id}", json=body, **kwargs)


def _stored_sha256(client: TestClient, uri: str) -> str:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    return hashlib.sha256(ctx.objects.get(ctx.objects.key_of(uri))).hexdigest()


def _recipe(lineage: dict) -> dict:
    """The training lineage without the hand-edit record: what prediction recomputes."""
    return {k: v for k, v in lineage.items() if k != "manual"}


def _admin_key_id(client: TestClient) -> str:
    return next(k["id"] for k in client.get("/api/v1/keys").json() if k["name"].startswith("bootstrap admin"))


@pytest.fixture(scope="module")
def feature_ids(client: TestClient) -> list[str]:
    return post_features(client, FEATURES)


@pytest.fixture(scope="module")
def donor(client: TestClient, feature_ids: list[str]) -> dict:
    """A trained ridge whose artifact and run other models link: its row and its predictions."""
    model_id = _model(client, 50.0)
    _train(client, model_id, feature_ids)
    predicted = client.post(f"/api/v1/models/{model_id}/predict", json=PREDICT)
    assert predicted.status_code == 200, predicted.text
    return {**_get(client, model_id), "predictions": predicted.json()["predictions"]}


@pytest.fixture
def trained(client: TestClient, feature_ids: list[str]) -> dict:
    """A freshly trained ridge (another alpha than the donor's: other predictions)."""
    model_id = _model(client, 0.5)
    _train(client, model_id, feature_ids)
    return _get(client, model_id)


# -- the seed's PATCH body, accepted ---------------------------------------------------------
def test_all_three_are_linked_verified_and_recorded(client: TestClient, donor: dict, trained: dict) -> None:
    before = trained
    override = {"mean_mse": 0.000123, "sharpe": 1.5, "n_folds": 3, "note_free": None}
    response = _patch(client, before["id"], {
        "artifact_uri": donor["artifact_uri"], "mlflow_run_id": donor["mlflow_run_id"], "metrics": override,
        "version": before["version"],
    })
    assert response.status_code == 200, response.text
    after = response.json()
    assert after == _get(client, before["id"])
    assert after["version"] == before["version"] + 1
    assert after["artifact_uri"] == donor["artifact_uri"] and after["mlflow_run_id"] == donor["mlflow_run_id"]
    # the SHA-256 is the server's, of the stored bytes: recomputed here from the object store
    assert after["artifact_sha256"] == _stored_sha256(client, donor["artifact_uri"]) == donor["artifact_sha256"]
    # the override is shown as such; the CV summary stays readable
    assert after["metrics"] == override and after["metrics_source"] == "manual"
    assert after["cv_metrics"] == before["metrics"] == before["cv_metrics"]
    assert before["metrics_source"] == "cv" and before["manual_fields"] == []
    assert after["manual_fields"] == ["artifact_uri", "metrics", "mlflow_run_id"]
    # the lineage: the recipe is the donor training's (the artifact's), the model's own stays readable
    assert _recipe(after["lineage"]) == donor["lineage"] != before["lineage"]
    assert after["trained_at"] == before["trained_at"]
    manual = after["lineage"]["manual"]
    assert manual["training"]["lineage"] == before["lineage"]
    assert manual["fields"]["artifact_uri"]["recipe_from"] == donor["id"]
    admin = _admin_key_id(client)
    assert {f: v["by"] for f, v in manual["fields"].items()} == dict.fromkeys(after["manual_fields"], admin)
    assert all(v["at"].endswith("Z") and v["at"] >= before["updated_at"][:19] for v in manual["fields"].values())
    outputs = ("artifact_uri", "artifact_sha256", "metrics", "mlflow_run_id")
    assert manual["training"] == {**{k: before[k] for k in outputs}, "lineage": before["lineage"]}
    (edit,) = manual["history"]
    assert edit["by"] == admin and edit["recipe_from"] == donor["id"]
    assert edit["set"] == {k: after[k] for k in outputs}
    assert edit["replaced"] == {k: before[k] for k in outputs}


def test_prediction_loads_the_linked_artifact_after_verifying_it(client: TestClient, donor: dict, trained: dict) -> None:
    own = client.post(f"/api/v1/models/{trained['id']}/predict", json=PREDICT).json()["predictions"]
    assert own != donor["predictions"]
    linked = _patch(client, trained["id"], {"artifact_uri": donor["artifact_uri"]})
    assert linked.status_code == 200, linked.text
    response = client.post(f"/api/v1/models/{trained['id']}/predict", json=PREDICT)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == donor["predictions"]
    assert response.json()["model_version"] == linked.json()["version"]


def test_bytes_put_in_the_store_are_linked_and_tampering_is_refused(client: TestClient, donor: dict, trained: dict) -> None:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    data = ctx.objects.get(ctx.objects.key_of(donor["artifact_uri"]))
    uri = ctx.objects.put(f"hand-made/{uuid.uuid4().hex}/ridge.json", data)
    linked = _patch(client, trained["id"], {"artifact_uri": uri})
    assert linked.status_code == 200, linked.text
    assert linked.json()["artifact_uri"] == uri
    assert linked.json()["artifact_sha256"] == hashlib.sha256(data).hexdigest()
    assert client.post(f"/api/v1/models/{trained['id']}/predict", json=PREDICT).json()["predictions"] == donor["predictions"]
    ctx.objects.put(ctx.objects.key_of(uri), data.replace(b"0", b"1", 1))
    tampered = client.post(f"/api/v1/models/{trained['id']}/predict", json=PREDICT)
    assert tampered.status_code == 502, tampered.text
    assert "refusing to load" in tampered.json()["detail"]
    ctx.objects.delete(ctx.objects.key_of(uri))
    gone = client.post(f"/api/v1/models/{trained['id']}/predict", json=PREDICT)
    assert gone.status_code == 409 and "missing" in gone.json()["detail"]


def test_an_artifact_alphaforge_trained_brings_its_recipe(client: TestClient, donor: dict, feature_ids: list[str]) -> None:
    """Found by its SHA-256: prediction recomputes the features the artifact was trained on
    (here two columns, where the model's own training had one)."""
    model_id = _model(client, 1.0)
    _train(client, model_id, feature_ids[:1])
    own = _get(client, model_id)
    linked = _patch(client, model_id, {"artifact_uri": donor["artifact_uri"]})
    assert linked.status_code == 200, linked.text
    assert linked.json()["lineage"]["feature_columns"] == donor["lineage"]["feature_columns"] != own["lineage"]["feature_columns"]
    predicted = client.post(f"/api/v1/models/{model_id}/predict", json=PREDICT)
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["predictions"] == donor["predictions"]
    assert predicted.json()["feature_columns"] == donor["lineage"]["feature_columns"]


def test_bytes_alphaforge_did_not_train_keep_the_recipe_and_a_misfit_is_a_409_at_predict(
    client: TestClient, trained: dict
) -> None:
    """Linking checks the object, its format and its SHA-256; for bytes of unknown origin only
    loading them tells whether they fit the recipe: a 409 naming the link, not a 500."""
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    garbage = ctx.objects.put(f"hand-made/{uuid.uuid4().hex}.json", b'{"not": "a ridge model"}')
    linked = _patch(client, trained["id"], {"artifact_uri": garbage})
    assert linked.status_code == 200, linked.text
    assert _recipe(linked.json()["lineage"]) == trained["lineage"]
    assert linked.json()["lineage"]["manual"]["fields"]["artifact_uri"]["recipe_from"] is None
    response = client.post(f"/api/v1/models/{trained['id']}/predict", json=PREDICT)
    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    assert "linked by hand" in detail and "ml.ridge artifact trained on the 2 feature columns" in detail


def test_linking_the_training_artifact_back_makes_it_the_trainings_again(client: TestClient, donor: dict, trained: dict) -> None:
    _patch(client, trained["id"], {"artifact_uri": donor["artifact_uri"], "metrics": {"mse": 1.0}})
    back = _patch(client, trained["id"], {"artifact_uri": trained["artifact_uri"], "metrics": trained["metrics"]})
    assert back.status_code == 200, back.text
    body = back.json()
    assert body["artifact_sha256"] == trained["artifact_sha256"] and body["metrics"] == trained["metrics"]
    assert body["manual_fields"] == [] and body["metrics_source"] == "cv"
    assert _recipe(body["lineage"]) == trained["lineage"]
    assert body["lineage"]["manual"]["history"][-1]["recipe_from"] == trained["id"]
    assert len(body["lineage"]["manual"]["history"]) == 2 and body["version"] == trained["version"] + 2


def test_a_new_training_replaces_every_hand_edit(client: TestClient, donor: dict, feature_ids: list[str]) -> None:
    model_id = _model(client, 0.5)
    first = _train(client, model_id, feature_ids)
    patched = _patch(client, model_id, {"metrics": {"mse": 2.0}, "mlflow_run_id": donor["mlflow_run_id"]}).json()
    assert patched["metrics_source"] == "manual" and patched["cv_metrics"] == first["cv_metrics"]["summary"]
    again = _train(client, model_id, feature_ids)
    model = _get(client, model_id)
    assert model["version"] == again["version"] == patched["version"] + 1
    assert model["metrics"] == model["cv_metrics"] == again["cv_metrics"]["summary"]
    assert model["metrics_source"] == "cv" and model["manual_fields"] == [] and "manual" not in model["lineage"]
    assert model["mlflow_run_id"] == again["mlflow_run_id"]


def test_the_acting_key_is_recorded(client: TestClient, donor: dict, trained: dict) -> None:
    created = client.post("/api/v1/keys", json={"name": "linker", "role": "research"}).json()
    reader = client.post("/api/v1/keys", json={"name": "reader", "role": "read"}).json()
    body = {"mlflow_run_id": donor["mlflow_run_id"]}
    refused = _patch(client, trained["id"], body, headers={"Authorization": f"Bearer {reader['key']}"})
    assert refused.status_code == 403
    response = _patch(client, trained["id"], body, headers={"Authorization": f"Bearer {created['key']}"})
    assert response.status_code == 200, response.text
    manual = response.json()["lineage"]["manual"]
    assert manual["fields"]["mlflow_run_id"]["by"] == created["id"] == manual["history"][-1]["by"]


# -- refusals: a 4xx saying what to change, and nothing changed ------------------------------
def test_a_never_trained_model_is_409_naming_train(client: TestClient, donor: dict) -> None:
    model_id = _model(client, 1.0)
    for body in ({"artifact_uri": donor["artifact_uri"]}, {"metrics": {"mse": 1.0}}, {"mlflow_run_id": donor["mlflow_run_id"]}):
        response = _patch(client, model_id, body)
        assert response.status_code == 409, response.text
        assert "never been trained" in response.json()["detail"]
        assert f"POST /api/v1/models/{model_id}/train" in response.json()["detail"]
    model = _get(client, model_id)
    assert model["version"] == 1 and model["lineage"] is None and model["metrics_source"] is None
    assert model["cv_metrics"] is None and model["manual_fields"] == []


@pytest.mark.parametrize(
    ("make_uri", "expected"),
    [
        (lambda ctx, d: ctx.objects.uri(f"models/{uuid.uuid4()}/missing.json"), "names no object in the object store"),
        (lambda ctx, d: ctx.objects.uri("models") + "/", "must name a ml.ridge artifact, a .json object"),
        (lambda ctx, d: ctx.objects.uri(f"nowhere-{uuid.uuid4().hex}.json/x.json"), "names no object"),
        (lambda ctx, d: "s3://some-other-bucket/models/x/model.json", "is not an object URI of this service's object store"),
        (lambda ctx, d: "https://example.com/model.json", "is not an object URI of this service's object store"),
        (lambda ctx, d: ctx.objects.uri("models") + "/../secrets.json", "is not an object URI of this service's object store"),
        (lambda ctx, d: d["artifact_uri"].rsplit(".", 1)[0] + ".ubj", "must name a ml.ridge artifact"),
    ],
    ids=["missing", "folder", "missing-nested", "other-bucket", "http", "dot-dot", "other-format"],
)
def test_a_bad_artifact_uri_is_422_and_changes_nothing(
    client: TestClient, donor: dict, trained: dict, make_uri: Any, expected: str
) -> None:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    response = _patch(client, trained["id"], {"artifact_uri": make_uri(ctx, donor), "metrics": {"mse": 1.0}})
    assert response.status_code == 422, response.text
    assert expected in response.json()["detail"]
    assert _get(client, trained["id"]) == trained


def test_an_artifact_of_another_plugin_is_422_and_changes_nothing(client: TestClient, feature_ids: list[str], trained: dict) -> None:
    """stat.arima artifacts are .json like ml.ridge's: the training that made them tells them apart."""
    body = {"name": "arima", "model_type": "arima", "family": "statistical", "parameters": {"p": 1, "q": 1}}
    arima = client.post("/api/v1/models", json=body).json()["id"]
    artifact = _train(client, arima, feature_ids, start_date="2015-01-01")["artifact_uri"]
    assert artifact.endswith(".json")
    response = _patch(client, trained["id"], {"artifact_uri": artifact})
    assert response.status_code == 422, response.text
    assert f"an artifact of a stat.arima training (model {arima})" in response.json()["detail"]
    assert "predicts with ml.ridge" in response.json()["detail"]
    assert _get(client, trained["id"]) == trained


def test_a_folder_in_the_store_is_no_artifact(client: TestClient, trained: dict) -> None:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    ctx.objects.put(f"hand-made/{trained['id']}.json/inner.json", b"{}")
    response = _patch(client, trained["id"], {"artifact_uri": ctx.objects.uri(f"hand-made/{trained['id']}.json")})
    assert response.status_code == 422 and "names no object" in response.json()["detail"]
    assert _get(client, trained["id"]) == trained


@pytest.mark.parametrize(
    ("run_id", "expected"),
    [
        (uuid.uuid4().hex, "is not a run in this service's MLflow tracking store"),
        ("", "mlflow_run_id"),
        ("has space", "mlflow_run_id"),
        ("tab\there", "mlflow_run_id"),
        ("r" * 256, "mlflow_run_id"),
        (None, "mlflow_run_id cannot be null"),
    ],
    ids=["unknown", "empty", "space", "control", "too-long", "null"],
)
def test_a_bad_mlflow_run_id_is_422_and_changes_nothing(client: TestClient, trained: dict, run_id: str | None, expected: str) -> None:
    response = _patch(client, trained["id"], {"mlflow_run_id": run_id, "metrics": {"mse": 1.0}})
    assert response.status_code == 422, response.text
    assert expected in response.json()["detail"]
    assert _get(client, trained["id"]) == trained


@pytest.mark.parametrize(
    "metrics",
    [{"mse": "low"}, {"mse": {"nested": 1}}, {"": 1.0}, {"k" * 101: 1.0}, {f"m{i}": 1.0 for i in range(101)}, None],
    ids=["text", "nested", "empty-name", "long-name", "too-many", "null"],
)
def test_bad_metrics_are_422_and_change_nothing(client: TestClient, trained: dict, metrics: Any) -> None:
    response = _patch(client, trained["id"], {"metrics": metrics})
    assert response.status_code == 422, response.text
    assert "metrics" in response.json()["detail"]
    assert _get(client, trained["id"]) == trained


def test_non_finite_metrics_are_422(client: TestClient, trained: dict) -> None:
    response = client.patch(
        f"/api/v1/models/{trained['id']}", content=b'{"metrics": {"mse": NaN}}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert _get(client, trained["id"]) == trained


def test_a_stale_version_is_409_and_links_nothing(client: TestClient, donor: dict, trained: dict) -> None:
    response = _patch(client, trained["id"], {"artifact_uri": donor["artifact_uri"], "version": trained["version"] - 1})
    assert response.status_code == 409, response.text
    assert f"stored version {trained['version']}" in response.json()["detail"]
    assert _get(client, trained["id"]) == trained


def test_mlflow_down_is_503_naming_it_and_changes_nothing(
    client: TestClient, trained: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support import free_port

    from alphaforge.tracking import Tracker

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    monkeypatch.setattr(ctx, "tracker", Tracker(f"http://127.0.0.1:{free_port()}", "down"))
    response = _patch(client, trained["id"], {"mlflow_run_id": uuid.uuid4().hex})
    assert response.status_code == 503, response.text
    assert response.json()["dependency"] == "mlflow" and "127.0.0.1" not in response.json()["detail"]
    assert _get(client, trained["id"]) == trained


def test_a_deleted_run_is_422(client: TestClient, trained: dict) -> None:
    from mlflow.tracking import MlflowClient

    settings = client.app.state.ctx.settings  # type: ignore[attr-defined]
    mlflow = MlflowClient(tracking_uri=settings.resolved_mlflow_tracking_uri)
    experiment = mlflow.get_experiment_by_name(settings.mlflow_experiment)
    run_id = mlflow.create_run(experiment.experiment_id).info.run_id
    mlflow.delete_run(run_id)
    response = _patch(client, trained["id"], {"mlflow_run_id": run_id})
    assert response.status_code == 422 and "is deleted" in response.json()["detail"]
    assert _get(client, trained["id"]) == trained
