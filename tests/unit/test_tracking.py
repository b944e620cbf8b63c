"""Tracker: each training becomes one MLflow run, read back here with a separate client.

Stores: the embedded default (SQLite file + artifact folder, first use on a fresh file),
PostgreSQL (production; skipped when unreachable, mandatory when CI=true), and unreachable
servers (HTTP and PostgreSQL) that must fail fast as ``DependencyUnavailable("mlflow")``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from alphaforge.errors import DependencyUnavailable
from alphaforge.tracking import (
    MAX_PARAM_VALUE_LENGTH,
    Tracker,
    TrainingRun,
    flatten_params,
    mlflow_key,
    redact_uri,
)
from alphaforge.settings import Settings
from support import free_port

FOLDS = [
    {"mse": 0.011, "mae": 0.08, "directional_accuracy": 0.52, "ic": 0.03, "rank_ic": 0.04, "n_train": 500, "n_test": 100},
    {"mse": 0.013, "mae": 0.09, "directional_accuracy": 0.49, "ic": None, "rank_ic": -0.01, "n_train": 600, "n_test": 100},
    {"mse": 0.009, "mae": 0.07, "directional_accuracy": 0.55, "ic": 0.06, "rank_ic": 0.05, "n_train": 700, "n_test": 100},
]


def make_run(name: str = "lgbm-spx") -> TrainingRun:
    return TrainingRun(
        run_name=f"train:{name}",
        params={
            "model_type": "lightgbm.regressor",
            "family": "tree",
            "model": {"n_estimators": 200, "learning_rate": 0.05, "objective": None, "bagging": [0.8, 0.9]},
            "cv": {"scheme": "walk_forward", "n_splits": 3, "gap": 1, "options": {}},
            "dataset": {"symbol": "SPX", "features": {"rsi(14)": {"window": 14}}},
            "notes": "x" * 7000,
            **{f"extra_{i:03d}": i for i in range(110)},  # > MLflow's 100 params per batch
        },
        fold_metrics=FOLDS,
        summary={"mse": 0.011, "mae": 0.08, "directional_accuracy": 0.52, "ic": None, "n_folds": 3},
        baseline={"mse": 0.014, "directional_accuracy": 0.5},
        tags={"model_id": "42", "plugin_key": "lightgbm.regressor", "symbol": "SPX", "timeframe": "1d"},
        artifact=os.urandom(200_000),
        artifact_name="0f" * 32 + ".ubj",
        lineage={"model_id": 42, "datasets": [{"feature": "rsi", "version_hash": "ab" * 32}]},
    )


EXPECTED_PARAMS = {
    "model_type": "lightgbm.regressor",
    "family": "tree",
    "model.n_estimators": "200",
    "model.learning_rate": "0.05",
    "model.objective": "None",
    "model.bagging": "[0.8, 0.9]",
    "cv.scheme": "walk_forward",
    "cv.n_splits": "3",
    "cv.gap": "1",
    "cv.options": "{}",
    "dataset.symbol": "SPX",
    "dataset.features.rsi_14_.window": "14",
    "notes": "x" * (MAX_PARAM_VALUE_LENGTH - 3) + "...",
    **{f"extra_{i:03d}": str(i) for i in range(110)},
}


def assert_logged(uri: str, run_id: str, run: TrainingRun, experiment: str, tmp_path: Path) -> None:
    """Read the run back through a client of our own and compare with what was logged."""
    client = MlflowClient(tracking_uri=uri)
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED"
    assert logged.info.run_name == run.run_name
    assert client.get_experiment(logged.info.experiment_id).name == experiment

    assert logged.data.params == EXPECTED_PARAMS

    for name in FOLDS[0]:
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, f"fold_{name}"))
        expected = [(step, float(fold[name])) for step, fold in enumerate(FOLDS) if fold[name] is not None]
        assert history == expected, name
    metrics = logged.data.metrics
    assert {k: v for k, v in metrics.items() if not k.startswith("fold_")} == {
        "cv_mse": 0.011,
        "cv_mae": 0.08,
        "cv_directional_accuracy": 0.52,
        "cv_n_folds": 3.0,
        "baseline_mse": 0.014,
        "baseline_directional_accuracy": 0.5,
    }

    assert run.tags.items() <= logged.data.tags.items()
    assert logged.data.tags["run_type"] == "training"

    assert [a.path for a in client.list_artifacts(run_id, "model")] == [f"model/{run.artifact_name}"]
    downloaded = client.download_artifacts(run_id, f"model/{run.artifact_name}", str(tmp_path))
    assert Path(downloaded).read_bytes() == run.artifact
    lineage = client.download_artifacts(run_id, "lineage.json", str(tmp_path))
    assert json.loads(Path(lineage).read_text()) == run.lineage


# -- stores -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One SQLite store for the cheaper tests (MLflow's migrations cost seconds per file)."""
    root = tmp_path_factory.mktemp("mlflow-shared")
    return f"sqlite:///{root / 'mlflow.db'}", root


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_embedded_default_first_use_on_a_fresh_sqlite_file(tmp_path: Path, shared_store: tuple[str, Path]) -> None:
    settings = Settings(data_dir=tmp_path / "data", mlflow_tracking_uri=None)
    tracker = Tracker.from_settings(settings)
    assert tracker.tracking_uri.startswith("sqlite:///") and tracker.artifact_location is not None
    other = Tracker(shared_store[0], unique("other"), (shared_store[1] / "other").as_uri())

    run = make_run()
    started = time.perf_counter()
    run_id = tracker.log_training(run)
    first = time.perf_counter() - started
    other_id = other.log_training(make_run("other"))  # a second URI in the same process
    started = time.perf_counter()
    second_id = tracker.log_training(make_run("again"))
    second = time.perf_counter() - started
    print(f"first log_training on a fresh sqlite file: {first:.2f}s, next: {second:.2f}s")

    assert_logged(settings.resolved_mlflow_tracking_uri, run_id, run, "alphaforge", tmp_path)
    # The artifacts are in data_dir's folder; both runs share the experiment; the other
    # tracker's run went to its own store only.
    assert (tmp_path / "data" / "mlartifacts").is_dir()
    client = MlflowClient(tracking_uri=settings.resolved_mlflow_tracking_uri)
    runs = client.search_runs([client.get_run(run_id).info.experiment_id])
    assert {r.info.run_id for r in runs} == {run_id, second_id}
    assert MlflowClient(tracking_uri=shared_store[0]).get_run(other_id).info.run_name == "train:other"


@pytest.mark.production
def test_postgresql_store(postgres, tmp_path: Path) -> None:  # noqa: ANN001 - conftest fixture
    uri = postgres.new_database()  # a database of this run's own, dropped at the end
    tracker = Tracker(uri, "alphaforge", (tmp_path / "mlartifacts").as_uri())
    run = make_run()
    run_id = tracker.log_training(run)
    assert_logged(uri, run_id, run, "alphaforge", tmp_path)
    assert any((tmp_path / "mlartifacts").rglob(run.artifact_name))


# -- failures -----------------------------------------------------------------------------
def test_unreachable_tracking_server_is_dependency_unavailable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # MLflow takes HTTP retries and timeouts only from the environment; its default of 7
    # retries with exponential backoff would take minutes. monkeypatch restores them after.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.perf_counter()
    with pytest.raises(DependencyUnavailable) as caught:
        Tracker(uri, "alphaforge").log_training(make_run())
    assert time.perf_counter() - started < 15
    assert caught.value.dependency == "mlflow" and caught.value.status_code == 503
    # The client learns it is MLflow; where MLflow lives is for the server log only.
    assert uri.split("//")[1] not in caught.value.message and uri.split("//")[1] not in str(caught.value.context)
    assert uri in caplog.text


def test_unreachable_database_fails_fast_and_hides_the_password() -> None:
    uri = f"postgresql+psycopg://alphaforge:s3cret@127.0.0.1:{free_port()}/mlflow"
    started = time.perf_counter()
    with pytest.raises(DependencyUnavailable) as caught:
        Tracker(uri, "alphaforge").log_training(make_run())
    assert time.perf_counter() - started < 15  # not MLflow's ~100 s engine retry loop
    assert caught.value.dependency == "mlflow"
    assert "s3cret" not in caught.value.message and "s3cret" not in str(caught.value.context)
    assert "127.0.0.1" not in caught.value.message and "127.0.0.1" not in str(caught.value.context)


def test_a_failure_while_logging_marks_the_run_failed(shared_store: tuple[str, Path], tmp_path: Path) -> None:
    uri, _ = shared_store
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    experiment = unique("broken-artifacts")
    tracker = Tracker(uri, experiment, (blocker / "artifacts").as_uri())
    with pytest.raises(DependencyUnavailable) as caught:
        tracker.log_training(make_run())
    assert caught.value.dependency == "mlflow"

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_a_deleted_experiment_is_reported(shared_store: tuple[str, Path]) -> None:
    uri, root = shared_store
    experiment = unique("deleted")
    client = MlflowClient(tracking_uri=uri)
    client.delete_experiment(client.create_experiment(experiment, artifact_location=(root / "d").as_uri()))
    with pytest.raises(DependencyUnavailable, match="is deleted"):
        Tracker(uri, experiment).log_training(make_run())


def test_tolerates_an_experiment_created_concurrently(
    shared_store: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    uri, root = shared_store
    experiment = unique("race")
    # Another process creates the experiment between our lookup and our create.
    MlflowClient(tracking_uri=uri).create_experiment(experiment, artifact_location=(root / "race").as_uri())
    lookups: list[str] = []
    real_lookup = MlflowClient.get_experiment_by_name

    def racing_lookup(self: MlflowClient, name: str):  # noqa: ANN202
        lookups.append(name)
        return None if len(lookups) == 1 else real_lookup(self, name)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", racing_lookup)
    tracker = Tracker(uri, experiment, (root / "ignored").as_uri())
    run = make_run()
    run_id = tracker.log_training(run)
    tracker.log_training(make_run("cached"))
    assert lookups == [experiment, experiment]  # the id is cached after the first run
    monkeypatch.undo()
    assert_logged(uri, run_id, run, experiment, tmp_path)


def test_bad_input_fails_before_any_run_or_store_exists(tmp_path: Path) -> None:
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "alphaforge")
    with pytest.raises(ValueError, match="plain file name"):
        tracker.log_training(TrainingRun(**{**make_run().__dict__, "artifact_name": "../model.ubj"}))
    with pytest.raises(ValueError, match="given twice"):
        tracker.log_training(TrainingRun(**{**make_run().__dict__, "params": {"a.b": 1, "a": {"b": 2}}}))
    with pytest.raises(ValueError, match="both map to"):
        tracker.log_training(TrainingRun(**{**make_run().__dict__, "params": {"rsi(14)": 1, "rsi_14_": 2}}))
    assert not (tmp_path / "mlflow.db").exists()


# -- naming rules -----------------------------------------------------------------------
def test_flattening_and_keys() -> None:
    assert flatten_params({"a": {"b": {"c": 1}, "d": []}, "e": {}}) == {"a.b.c": 1, "a.d": [], "e": {}}
    with pytest.raises(ValueError, match="given twice"):
        flatten_params({"a": {"b": 1}, "a.b": 2})
    assert mlflow_key("rsi(14)") == "rsi_14_"
    assert mlflow_key("a/../b") == "a_.._b"
    assert mlflow_key("..x") == "_..x"
    assert mlflow_key("ok key/with:colon-dash.dot") == "ok key/with:colon-dash.dot"
    long = mlflow_key("k" * 300)
    assert len(long) == 250 and long != mlflow_key("k" * 301)
    from mlflow.utils.validation import _validate_param_name

    for raw in ("rsi(14)", "a/../b", "..x", "/abs", "a//b", "a/", ".", "", "k/" * 200, "é ü"):
        _validate_param_name(mlflow_key(raw))  # MLflow's own check accepts every key we make


def test_redact_uri() -> None:
    assert redact_uri("postgresql://u:pw@h:5432/db?sslmode=require") == "postgresql://u:***@h:5432/db"
    assert redact_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert redact_uri("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow.db"
