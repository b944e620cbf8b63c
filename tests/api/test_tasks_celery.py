"""The Celery executor against a real Redis and a real `alphaforge worker` process.

Each module run uses its own queue, so parallel runs on one Redis do not take each
other's messages. Skipped (or failed with CI=true) when Redis is not reachable.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from fastapi.testclient import TestClient

from alphaforge.settings import Settings
from alphaforge.storage.tables import Task
from conftest import CreateFeature, app_client, settings_env
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


def test_killing_one_pool_process_fails_only_its_task(celery_client: TestClient, create_feature: CreateFeature) -> None:
    client = celery_client
    feature = create_feature(client, "statistical.returns", {"period": 4})
    slow = {"n_estimators": 600, "min_samples_leaf": 1}
    victim_model = _model(client, slow, model_type="random_forest")
    survivor_model = _model(client, {"n_estimators": 60}, model_type="random_forest")
    body = _train_body([feature["id"]], n_splits=2, test_size=0.3)
    victim = client.post(f"/api/v1/models/{victim_model}/train/async", json=body).json()["task_id"]
    survivor = client.post(f"/api/v1/models/{survivor_model}/train/async", json=body).json()["task_id"]
    wait_for(client, victim, {"STARTED"})
    wait_for(client, survivor, {"STARTED", "SUCCESS", "FAILURE", "REVOKED"})
    os.kill(_pid(client, victim), signal.SIGKILL)
    killed = wait_for(client, victim)
    assert killed["status"] == "FAILURE" and killed["error"]["type"] == "WorkerLost", killed
    done = wait_for(client, survivor)
    assert done["status"] == "SUCCESS", done
    model = client.get(f"/api/v1/models/{survivor_model}").json()
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    stored = ctx.objects.get(ctx.objects.key_of(model["artifact_uri"]))
    assert hashlib.sha256(stored).hexdigest() == model["artifact_sha256"]
    assert client.get(f"/api/v1/models/{victim_model}").json()["artifact_uri"] is None
    again = client.post(f"/api/v1/features/{feature['id']}/generate/async", json=RANGE).json()["task_id"]
    assert wait_for(client, again)["status"] == "SUCCESS"  # the worker replaced the process


def test_a_killed_celery_worker_takes_its_processes_with_it(
    make_settings, redis_url: str, create_feature: CreateFeature, tmp_path: Path
) -> None:
    settings = make_settings(celery_broker_url=redis_url, celery_queue=f"alphaforge-test-{uuid.uuid4().hex[:8]}",
                             task_stale_after_s=4, task_heartbeat_s=1)
    with app_client(settings) as client:
        worker = Worker(settings, tmp_path / "worker.log")
        try:
            feature = create_feature(client, "statistical.returns")
            model = _model(client, {"n_estimators": 2000, "min_samples_leaf": 1}, model_type="random_forest")
            task_id = client.post(f"/api/v1/models/{model}/train/async",
                                  json=_train_body([feature["id"]], n_splits=2, test_size=0.3)).json()["task_id"]
            wait_for(client, task_id, {"STARTED"})
            pool_process = psutil.Process(_pid(client, task_id))
            os.kill(worker.process.pid, signal.SIGKILL)  # the worker's main process only
            worker.process.wait(timeout=10)
            pool_process.wait(timeout=15)  # gone with its worker, not left running the training
            task = wait_for(client, task_id, timeout=120)  # the API's reaper: no heartbeat any more
            assert task["status"] == "FAILURE" and "stopped reporting" in task["error"]["message"], task
            assert client.get(f"/api/v1/models/{model}").json()["artifact_uri"] is None
        finally:
            worker.stop()


def _pid(client: TestClient, task_id: str) -> int:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as session:
        return int(session.get(Task, uuid.UUID(task_id)).worker.rsplit(":", 1)[1])


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
    sync = client.post("/api/v1/models/tune", json=body).json()  # one shard: the same trials, one after another
    assert [(t["params"], t["score"]) for t in task["result"]["trials"]] == [(t["params"], t["score"]) for t in sync["trials"]]

    automl = {"dataset": body["dataset"], "candidates": {"ml.ridge": {}, "ml.lightgbm": {"n_estimators": 20}}, "cv": {"n_splits": 3}}
    done = wait_for(client, client.post("/api/v1/models/automl/async", json=automl).json()["task_id"])
    assert done["status"] == "SUCCESS", done
    assert [r["plugin_key"] for r in done["result"]["leaderboard"]] == [
        r["plugin_key"] for r in client.post("/api/v1/models/automl", json=automl).json()["leaderboard"]
    ]


def test_a_panel_tune_and_automl_through_celery(celery_client: TestClient, create_feature: CreateFeature) -> None:
    """Issue 13: trial shards assemble the panel in the worker processes and score the same trials."""
    from test_tasks import _tune_body

    client = celery_client
    feature = create_feature(client, "technical.roc", {"period": 20})
    dataset = {"feature_ids": [feature["id"]], "symbols": ["AAPL", "KO", "XOM", "JPM"],
               "start_date": "2016-01-01", "end_date": "2019-01-01"}
    body = _tune_body([feature["id"]], dataset=dataset, plugin_key="ml.ridge", metric="icir", n_trials=4,
                      param_space={"alpha": {"type": "float", "low": 0.01, "high": 1000.0, "log": True}})
    task = wait_for(client, client.post("/api/v1/models/tune/async", json=body).json()["task_id"])
    assert task["status"] == "SUCCESS", task
    assert task["result"]["metric"] == "mean_cs_rank_icir" and task["children_total"] == 2
    sync = client.post("/api/v1/models/tune", json=body).json()
    assert [(t["params"], t["score"]) for t in task["result"]["trials"]] == [(t["params"], t["score"]) for t in sync["trials"]]

    automl = {"dataset": dataset, "candidates": {"ml.ridge": {}, "ml.lightgbm": {"n_estimators": 20}},
              "cv": {"n_splits": 3}, "metric": "mean_cs_rank_ic"}
    done = wait_for(client, client.post("/api/v1/models/automl/async", json=automl).json()["task_id"])
    assert done["status"] == "SUCCESS", done
    assert done["result"]["leaderboard"] == [
        {**r, "fit_time_s": d["fit_time_s"]}
        for r, d in zip(client.post("/api/v1/models/automl", json=automl).json()["leaderboard"], done["result"]["leaderboard"])
    ]
