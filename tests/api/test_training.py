"""Training and prediction through the API, on both backends, checked independently.

Targets are recomputed here from the real GSPC closes; the purge is checked on the bar
calendar; predictions are compared with scikit-learn fitted directly on the stored
feature datasets; the MLflow run is read back with MlflowClient.
"""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from alphaforge.ingestion.bars import parse_bars_upload
from alphaforge.ingestion.bundled import sample_bars
from conftest import CreateFeature, app_client, post_features, stored_training_frame

START, END = "2009-01-01", "2019-01-01"
FEATURES = [("technical.rsi", {"period": 14}), ("technical.macd", {}), ("statistical.returns", {})]


@pytest.fixture(scope="module")
def gspc_close() -> pd.Series:
    frame, report = parse_bars_upload(sample_bars("GSPC"))
    assert report.ok
    return frame["close"]


@pytest.fixture(scope="module")
def feature_ids(client: TestClient) -> list[str]:
    return post_features(client, FEATURES)


def _model(client: TestClient, model_type: str, family: str, parameters: dict | None = None) -> str:
    response = client.post(
        "/api/v1/models", json={"name": f"test {model_type}", "model_type": model_type, "family": family, "parameters": parameters or {}}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _train(client: TestClient, model_id: str, feature_ids: list[str], **overrides: object) -> dict:
    cv = overrides.pop("cv", {"method": "expanding", "n_splits": 4, "test_size": 0.1})
    dataset = {"feature_ids": feature_ids, "symbol": "GSPC", "start_date": START, "end_date": END, **overrides}
    return client.post(f"/api/v1/models/{model_id}/train", json={"dataset": dataset, "cv": cv})


@pytest.fixture(scope="module")
def ridge_run(client: TestClient, feature_ids: list[str]) -> tuple[str, dict]:
    model_id = _model(client, "ridge", "machine_learning", {"alpha": 2.0})
    response = _train(client, model_id, feature_ids, target_horizon=3)
    assert response.status_code == 200, response.text
    return model_id, response.json()


def test_response_has_folds_spans_metrics_and_columns_in_request_order(ridge_run: tuple[str, dict], gspc_close: pd.Series) -> None:
    model_id, body = ridge_run
    assert body["model_id"] == model_id and body["version"] == 2
    macd = 'technical.macd(column="close",fast_period=12,signal_period=9,slow_period=26)'
    assert body["feature_columns"] == [
        'technical.rsi(column="close",period=14).rsi',
        f"{macd}.macd", f"{macd}.macd_signal", f"{macd}.macd_hist",
        "statistical.returns(period=1).returns",
    ]
    in_range = gspc_close[(gspc_close.index >= START) & (gspc_close.index < END)]
    assert body["n_train_rows"] == len(in_range) - 3  # warm-up fetched, the last h rows have no target
    folds = body["cv_metrics"]["folds"]
    assert [f["fold"] for f in folds] == [0, 1, 2, 3]
    for fold in folds:
        assert fold["n_test"] == body["n_train_rows"] // 10
        for name in ("mse", "mae", "directional_accuracy", "ic", "rank_ic", "baseline_mse"):
            assert fold[name] is not None and np.isfinite(fold[name])
    summary = body["cv_metrics"]["summary"]
    for name in ("mean_mse", "std_mse", "mean_mae", "std_mae", "directional_accuracy", "std_directional_accuracy", "mean_ic", "mean_rank_ic"):
        assert name in summary
    assert summary["n_folds"] == 4
    assert summary["mean_mse"] == pytest.approx(np.mean([f["mse"] for f in folds]))
    assert body["cv_metrics"]["baseline"]["mean_mse"] == pytest.approx(np.mean([f["baseline_mse"] for f in folds]))


def test_folds_are_purged_on_the_bar_calendar_and_never_overlap(ridge_run: tuple[str, dict], gspc_close: pd.Series) -> None:
    _, body = ridge_run
    calendar = pd.DatetimeIndex(gspc_close.index)
    position = {t: i for i, t in enumerate(calendar)}
    previous_test_end = -1
    for fold in body["cv_metrics"]["folds"]:
        train_end = position[pd.Timestamp(fold["train_end"])]
        test_start, test_end = position[pd.Timestamp(fold["test_start"])], position[pd.Timestamp(fold["test_end"])]
        # the last training label uses close[train_end + 3]: it must come before the test window starts
        assert train_end + 3 < test_start
        assert test_start > previous_test_end  # test windows follow each other, no overlap
        assert test_end - test_start + 1 == fold["n_test"]
        previous_test_end = test_end


def test_baseline_metrics_match_targets_recomputed_from_the_closes(ridge_run: tuple[str, dict], gspc_close: pd.Series) -> None:
    _, body = ridge_run
    target = (gspc_close.shift(-3) / gspc_close - 1.0)
    target = target[(target.index >= START) & (target.index < END)].dropna()
    for fold in body["cv_metrics"]["folds"]:
        train = target[target.index <= pd.Timestamp(fold["train_end"])]
        test = target[(target.index >= pd.Timestamp(fold["test_start"])) & (target.index <= pd.Timestamp(fold["test_end"]))]
        assert len(train) == fold["n_train"] and len(test) == fold["n_test"]
        assert fold["baseline_mse"] == pytest.approx(float(np.mean((test.to_numpy() - train.mean()) ** 2)), rel=1e-9)


def test_the_model_row_records_artifact_metrics_run_and_lineage(client: TestClient, ridge_run: tuple[str, dict]) -> None:
    model_id, body = ridge_run
    model = client.get(f"/api/v1/models/{model_id}").json()
    assert model["version"] == 2
    assert model["artifact_uri"] == body["artifact_uri"] and model["mlflow_run_id"] == body["mlflow_run_id"]
    assert model["metrics"] == body["cv_metrics"]["summary"]
    assert body["artifact_uri"].endswith(f"models/{model_id}/{body['artifact_sha256']}.json")
    lineage = model["lineage"]
    assert lineage["feature_columns"] == body["feature_columns"]
    assert lineage["dataset"] == {"symbol": "GSPC", "timeframe": "1d", "start": "2009-01-01T00:00:00Z", "end": "2019-01-01T00:00:00Z", "target_horizon": 3}
    assert lineage["cv"]["purge"] == 3 and lineage["cv"]["method"] == "expanding"
    assert lineage["parameters"]["alpha"] == 2.0
    assert all(len(f["dataset_version_hash"]) == 64 for f in lineage["features"])
    assert {"scikit-learn", "alphaforge"} <= set(lineage["libraries"])
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    stored = ctx.objects.get(ctx.objects.key_of(body["artifact_uri"]))
    assert hashlib.sha256(stored).hexdigest() == body["artifact_sha256"] == model["artifact_sha256"]


def test_the_mlflow_run_holds_params_fold_metrics_tags_and_the_artifact(client: TestClient, ridge_run: tuple[str, dict]) -> None:
    model_id, body = ridge_run
    settings = client.app.state.ctx.settings  # type: ignore[attr-defined]
    mlflow = MlflowClient(tracking_uri=settings.resolved_mlflow_tracking_uri)
    run = mlflow.get_run(body["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert mlflow.get_experiment(run.info.experiment_id).name == settings.mlflow_experiment
    assert run.data.params["plugin_key"] == "ml.ridge" and run.data.params["param.alpha"] == "2.0"
    assert run.data.tags["model_id"] == model_id
    lineage = client.get(f"/api/v1/models/{model_id}").json()["lineage"]
    assert run.data.tags["feature_dataset_hashes"] == ",".join(f["dataset_version_hash"] for f in lineage["features"])
    history = mlflow.get_metric_history(run.info.run_id, "fold_mse")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (f["fold"], pytest.approx(f["mse"])) for f in body["cv_metrics"]["folds"]
    ]
    assert run.data.metrics["cv_mean_mse"] == pytest.approx(body["cv_metrics"]["summary"]["mean_mse"])
    artifacts = [a.path for a in mlflow.list_artifacts(run.info.run_id, "model")]
    assert f"model/{body['artifact_sha256']}.json" in artifacts


def test_training_is_deterministic_and_bumps_the_version(client: TestClient, ridge_run: tuple[str, dict], feature_ids: list[str]) -> None:
    model_id, first = ridge_run
    again = _train(client, model_id, feature_ids, target_horizon=3)
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["artifact_sha256"] == first["artifact_sha256"]
    assert body["cv_metrics"] == first["cv_metrics"]
    assert body["version"] == first["version"] + 1
    assert body["mlflow_run_id"] != first["mlflow_run_id"]


def test_predictions_match_scikit_learn_fitted_on_the_stored_datasets(client: TestClient, feature_ids: list[str]) -> None:
    model_id = _model(client, "ridge", "machine_learning", {"alpha": 0.5})
    trained = _train(client, model_id, feature_ids, target_horizon=1)
    assert trained.status_code == 200, trained.text
    X, y = stored_training_frame(client, model_id, START, END, horizon=1)
    rows = X.notna().all(axis=1) & y.notna()
    scaler = StandardScaler().fit(X[rows].to_numpy())
    reference = Ridge(alpha=0.5).fit(scaler.transform(X[rows].to_numpy()), y[rows].to_numpy())

    response = client.post(f"/api/v1/models/{model_id}/predict", json={"symbol": "gspc", "start_date": "2018-01-01", "end_date": END})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["feature_columns"] == trained.json()["feature_columns"] and body["symbol"] == "GSPC"
    timestamps = pd.DatetimeIndex([pd.Timestamp(t) for t in body["timestamps"]])
    assert len(timestamps) == len(X.loc["2018-01-01":]) and body["volatility"] is None
    expected = reference.predict(scaler.transform(X.loc[timestamps].to_numpy()))
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-6, atol=1e-12)


def test_prediction_uses_the_lineage_even_after_the_feature_is_edited(client: TestClient, ridge_run: tuple[str, dict], feature_ids: list[str]) -> None:
    model_id, _ = ridge_run
    request = {"symbol": "GSPC", "start_date": "2017-06-01", "end_date": "2017-07-01"}
    before = client.post(f"/api/v1/models/{model_id}/predict", json=request).json()
    client.patch(f"/api/v1/features/{feature_ids[0]}", json={"parameters": {"period": 30}})
    after = client.post(f"/api/v1/models/{model_id}/predict", json=request).json()
    client.patch(f"/api/v1/features/{feature_ids[0]}", json={"parameters": {"period": 14}})
    assert after["predictions"] == before["predictions"] and len(before["predictions"]) > 15


def test_two_rsis_with_different_periods_are_two_columns(client: TestClient, create_feature: CreateFeature) -> None:
    short = create_feature(client, "technical.rsi", {"period": 7})
    long = create_feature(client, "technical.rsi", {"period": 21})
    model_id = _model(client, "ridge", "machine_learning")
    body = _train(client, model_id, [long["id"], short["id"]]).json()
    assert body["feature_columns"] == [
        'technical.rsi(column="close",period=21).rsi',
        'technical.rsi(column="close",period=7).rsi',
    ]


# -- errors ------------------------------------------------------------------------------
def test_unknown_model_and_unknown_features_are_404(client: TestClient, feature_ids: list[str]) -> None:
    missing = _train(client, str(uuid.uuid4()), feature_ids)
    assert missing.status_code == 404 and missing.json()["detail"] == "Model not found"
    model_id = _model(client, "ridge", "machine_learning")
    ghosts = [str(uuid.uuid4()), str(uuid.uuid4())]
    response = _train(client, model_id, [feature_ids[0], *ghosts])
    assert response.status_code == 404
    assert response.json()["detail"] == f"Unknown feature id(s): {ghosts[0]}, {ghosts[1]}"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"start_date": "2018-12-01"}, "aligned rows remain"),
        ({"target_horizon": 0}, "target_horizon"),
        ({"end_date": "2008-01-01"}, "must be after start_date"),
        ({"symbol": "NOPE"}, "no 1d bars for NOPE"),
        ({"timeframe": "1h"}, "1h"),
        ({"cv": {"purge": 1}, "target_horizon": 5}, "purge"),
        ({"cv": {"n_splits": 10, "test_size": 0.12}}, "n_splits"),
        ({"cv": {"method": "walk"}}, "method"),
        ({"feature_ids": []}, "feature_ids"),
    ],
)
def test_bad_training_requests_are_422_saying_what_to_change(
    client: TestClient, feature_ids: list[str], overrides: dict, expected: str
) -> None:
    model_id = _model(client, "ridge", "machine_learning")
    if "feature_ids" not in overrides:
        overrides = {"feature_ids": feature_ids, **overrides}
    cv = overrides.pop("cv", None)
    dataset = {"symbol": "GSPC", "start_date": START, "end_date": END, **overrides}
    response = client.post(f"/api/v1/models/{model_id}/train", json={"dataset": dataset, **({"cv": cv} if cv else {})})
    assert response.status_code == 422, response.text
    assert expected in response.text
    assert client.get(f"/api/v1/models/{model_id}").json()["version"] == 1  # nothing recorded


def test_too_few_rows_says_how_many_remain(client: TestClient, feature_ids: list[str]) -> None:
    model_id = _model(client, "ridge", "machine_learning")
    response = _train(client, model_id, feature_ids, start_date="2018-12-01")
    assert response.status_code == 422
    assert "only 18 aligned rows remain" in response.json()["detail"]  # 19 bars in Dec 2018, minus h=1


def test_repeated_feature_ids_are_422(client: TestClient, feature_ids: list[str]) -> None:
    model_id = _model(client, "ridge", "machine_learning")
    response = _train(client, model_id, [feature_ids[0], feature_ids[0]])
    assert response.status_code == 422 and "more than once" in response.json()["detail"]


def test_predicting_with_an_untrained_model_is_409_and_unknown_is_404(client: TestClient) -> None:
    model_id = _model(client, "ridge", "machine_learning")
    request = {"symbol": "GSPC", "start_date": "2018-01-01", "end_date": END}
    untrained = client.post(f"/api/v1/models/{model_id}/predict", json=request)
    assert untrained.status_code == 409 and "has not been trained" in untrained.json()["detail"]
    assert client.post(f"/api/v1/models/{uuid.uuid4()}/predict", json=request).status_code == 404


def test_a_tampered_artifact_is_refused_before_loading(fresh_client: TestClient, create_feature: CreateFeature) -> None:
    client = fresh_client
    feature = create_feature(client, "statistical.returns")
    model_id = _model(client, "ridge", "machine_learning")
    body = _train(client, model_id, [feature["id"]]).json()
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    key = ctx.objects.key_of(body["artifact_uri"])
    ctx.objects.put(key, ctx.objects.get(key).replace(b"0", b"1", 1))
    response = client.post(f"/api/v1/models/{model_id}/predict", json={"symbol": "GSPC", "start_date": "2018-01-01", "end_date": END})
    assert response.status_code == 502
    assert "refusing to load" in response.json()["detail"]
    ctx.objects.delete(key)
    gone = client.post(f"/api/v1/models/{model_id}/predict", json={"symbol": "GSPC", "start_date": "2018-01-01", "end_date": END})
    assert gone.status_code == 409 and "missing" in gone.json()["detail"]


def test_deleting_a_trained_model_removes_its_artifacts(fresh_client: TestClient, create_feature: CreateFeature) -> None:
    client = fresh_client
    feature = create_feature(client, "statistical.returns")
    model_id = _model(client, "ridge", "machine_learning")
    _train(client, model_id, [feature["id"]])
    _train(client, model_id, [feature["id"]], target_horizon=2)
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    stored = ctx.objects.list(f"models/{model_id}")
    # two artifacts and two trainings' out-of-fold predictions
    assert len(stored) == 4 and sum("/out_of_fold/" in key for key in stored) == 2, stored
    assert client.delete(f"/api/v1/models/{model_id}").status_code == 204
    assert ctx.objects.list(f"models/{model_id}") == []


def test_mlflow_down_is_503_naming_it_and_the_model_row_is_untouched(
    make_settings, create_feature: CreateFeature, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with app_client(make_settings(mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}")) as client:
        feature = create_feature(client, "statistical.returns")
        model_id = _model(client, "ridge", "machine_learning")
        response = _train(client, model_id, [feature["id"]])
        assert response.status_code == 503, response.text
        assert response.json()["dependency"] == "mlflow" and "mlflow" in response.json()["detail"]
        model = client.get(f"/api/v1/models/{model_id}").json()
        assert model["version"] == 1 and model["artifact_uri"] is None and model["mlflow_run_id"] is None
