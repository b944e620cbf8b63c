"""The Celery executor against a real Redis and a real `alphaforge worker` process.

Each module run uses its own queue, so parallel runs on one Redis do not take each
other's messages. Skipped (or failed with CI=true) when Redis is not reachable.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alphaforge.settings import Settings
from alphaforge.storage.tables import Task
from conftest import CreateFeature, app_client
from support import free_port, require
from test_tasks import RANGE, _model, _train_body, wait_for

REDIS_URL = os.environ.get("ALPHAFORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        require("Redis", str(exc), "start Redis on 127.0.0.1:6379 or set ALPHAFORGE_TEST_REDIS_URL")
    return REDIS_URL


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a worker process needs to see the same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFORGE_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, list):
            value = ",".join(map(str, value))
        env[f"ALPHAFORGE_{name.upper()}"] = str(value)
    return env


class Worker:
    """An `alphaforge worker` subprocess."""

    def __init__(self, settings: Settings, log: Path) -> None:
        executable = shutil.which("alphaforge", path=str(Path(sys.executable).parent)) or "alphaforge"
        self.log = log
        self.process = subprocess.Popen(
            [executable, "worker", "--concurrency", "2"], env=settings_env(settings),
            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def celery_settings(make_settings, redis_url: str) -> Settings:
    return make_settings(celery_broker_url=redis_url, celery_queue=f"alphaforge-test-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def celery_client(celery_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with app_client(celery_settings) as client:  # migrates before the worker starts
        worker = Worker(celery_settings, tmp_path_factory.mktemp("worker") / "worker.log")
        try:
            yield client
        finally:
            worker.stop()


def test_generate_and_train_through_celery_match_the_sync_results(celery_client: TestClient, create_feature: CreateFeature) -> None:
    client = celery_client
    feature = create_feature(client, "technical.rsi", {"period": 11})
    generated = wait_for(client, client.post(f"/api/v1/features/{feature['id']}/generate/async", json=RANGE).json()["task_id"])
    assert generated["status"] == "SUCCESS", generated
    assert generated["result"]["dataset"] == client.post(f"/api/v1/features/{feature['id']}/generate", json=RANGE).json()["dataset"]

    body = _train_body([feature["id"]])
    sync = client.post(f"/api/v1/models/{_model(client, {'alpha': 5.0})}/train", json=body).json()
    task = wait_for(client, client.post(f"/api/v1/models/{_model(client, {'alpha': 5.0})}/train/async", json=body).json()["task_id"])
    assert task["status"] == "SUCCESS", task
    assert task["result"]["artifact_sha256"] == sync["artifact_sha256"]
    assert task["result"]["cv_metrics"] == sync["cv_metrics"]


def test_batch_generate_is_spread_over_the_worker(celery_client: TestClient, create_feature: CreateFeature) -> None:
    client = celery_client
    features = [create_feature(client, "statistical.momentum", {"window": w}) for w in (5, 10, 20)]
    body = {"feature_ids": [f["id"] for f in features], "symbols": ["GSPC", "IXIC"], "start_date": "2016-01-01", "end_date": "2017-01-01"}
    task = wait_for(client, client.post("/api/v1/features/generate", json=body).json()["task_id"])
    assert task["status"] == "SUCCESS", task
    assert task["result"]["n_succeeded"] == 6 and task["children_done"] == 6


def test_a_killed_worker_process_is_retried_once_and_the_task_still_ends(celery_client: TestClient, create_feature: CreateFeature) -> None:
    client = celery_client
    feature = create_feature(client, "statistical.returns", {"period": 4})
    model_id = _model(client, {"n_estimators": 300, "min_samples_leaf": 1}, model_type="random_forest")
    task_id = client.post(f"/api/v1/models/{model_id}/train/async", json=_train_body([feature["id"]], n_splits=6, test_size=0.1)).json()["task_id"]
    wait_for(client, task_id, {"STARTED", "SUCCESS", "FAILURE", "REVOKED"})
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as session:
        worker = session.get(Task, uuid.UUID(task_id)).worker
    os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)
    task = wait_for(client, task_id)
    assert task["attempts"] == 2, task  # the message was redelivered once
    assert task["status"] == "SUCCESS", task
    model = client.get(f"/api/v1/models/{model_id}").json()
    assert model["artifact_uri"] == task["result"]["artifact_uri"]
    stored = ctx.objects.get(ctx.objects.key_of(model["artifact_uri"]))
    import hashlib

    assert hashlib.sha256(stored).hexdigest() == model["artifact_sha256"]


def test_cancel_a_task_queued_behind_busy_workers(celery_client: TestClient, create_feature: CreateFeature) -> None:
    client = celery_client
    feature = create_feature(client, "statistical.returns", {"period": 6})
    slow = {"n_estimators": 200, "min_samples_leaf": 1}
    busy = [client.post(f"/api/v1/models/{_model(client, slow, 'random_forest')}/train/async",
                        json=_train_body([feature["id"]], n_splits=6, test_size=0.1)).json()["task_id"] for _ in range(2)]
    queued = client.post(f"/api/v1/features/{feature['id']}/generate/async", json={**RANGE, "symbol": "IXIC"}).json()["task_id"]
    cancelled = client.post(f"/api/v1/tasks/{queued}/cancel").json()
    if cancelled["status"] == "REVOKED":  # still queued: revoked at once, and the worker skips it
        assert cancelled["error"]["message"] == "cancelled before it started"
    for task_id in busy:
        client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert wait_for(client, queued)["status"] == "REVOKED"
    assert all(wait_for(client, t)["status"] in {"REVOKED", "SUCCESS"} for t in busy)


def test_a_broker_that_is_down_is_503_naming_the_task_queue(make_settings, create_feature: CreateFeature) -> None:
    settings = make_settings(celery_broker_url=f"redis://127.0.0.1:{free_port()}/0")
    with app_client(settings) as client:
        feature = create_feature(client, "statistical.returns")
        response = client.post(f"/api/v1/features/{feature['id']}/generate/async", json=RANGE)
        assert response.status_code == 503, response.text
        assert response.json()["dependency"] == "task queue"
        failed = client.get("/api/v1/tasks", params={"status": "FAILURE"}).json()
        assert failed and failed[0]["error"]["type"] == "DependencyUnavailable"


def test_tune_and_automl_through_celery(celery_client: TestClient, create_feature: CreateFeature) -> None:
    from test_tasks import _tune_body

    client = celery_client
    feature = create_feature(client, "technical.rsi", {"period": 15})
    body = _tune_body([feature["id"]])
    task = wait_for(client, client.post("/api/v1/models/tune/async", json=body).json()["task_id"])
    assert task["status"] == "SUCCESS", task
    assert task["result"]["n_trials"] == 8 and task["children_total"] == 2
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as session:
        shard_workers = {t.worker for t in session.query(Task).filter(Task.parent_id == uuid.UUID(task["task_id"]))}
    assert len(shard_workers) == 2  # the two shards ran in two worker processes
    sync = client.post("/api/v1/models/tune", json=body).json()
    assert [(t["params"], t["score"]) for t in task["result"]["trials"]] == [(t["params"], t["score"]) for t in sync["trials"]]

    automl = {"dataset": body["dataset"], "candidates": {"ml.ridge": {}, "ml.lightgbm": {"n_estimators": 20}}, "cv": {"n_splits": 3}}
    done = wait_for(client, client.post("/api/v1/models/automl/async", json=automl).json()["task_id"])
    assert done["status"] == "SUCCESS", done
    assert [r["plugin_key"] for r in done["result"]["leaderboard"]] == [
        r["plugin_key"] for r in client.post("/api/v1/models/automl", json=automl).json()["leaderboard"]
    ]
