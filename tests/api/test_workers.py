"""Heavy work runs in isolated, bounded worker processes: a worker's death fails only its own
task, cancel ends a task mid-fold, limits end tasks with a message naming the limit, one key
cannot flood the queue, a worker that hangs is ended with its stacks logged, and a client that leaves a synchronous call leaves a task row behind.
Real processes, killed for real, on both storage backends (the embedded executor; the
Celery executor runs the same checks in test_tasks_celery.py)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from alphaforge.settings import Settings
from alphaforge.storage.db import Database
from alphaforge.storage.tables import Task
from conftest import ADMIN_HEADERS, CreateFeature, SettingsFactory, app_client, settings_env
from support import free_port, serve
from test_tasks import FINISHED, RANGE, _model, _train_body, wait_for

#: A training that takes tens of seconds: hundreds of full-depth trees per fold.
SLOW = {"n_estimators": 600, "min_samples_leaf": 1}


def _worker_pid(client: TestClient, task_id: str) -> int:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as session:
        worker = session.get(Task, uuid.UUID(task_id)).worker
    return int(worker.rsplit(":", 1)[1])


def _gone(pid: int, within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


def _slow_training(client: TestClient, feature_id: str, **query: object) -> str:
    body = _train_body([feature_id], n_splits=2, test_size=0.3)
    response = client.post(f"/api/v1/models/{_model(client, SLOW, 'random_forest')}/train/async", json=body, params=query)
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


def test_killing_one_worker_fails_only_its_task(fresh_client: TestClient, create_feature: CreateFeature) -> None:
    client = fresh_client
    feature = create_feature(client, "statistical.returns")
    victim = _slow_training(client, feature["id"])
    survivor_model = _model(client, {"n_estimators": 60}, "random_forest")
    survivor = client.post(f"/api/v1/models/{survivor_model}/train/async", json=_train_body([feature["id"]])).json()["task_id"]
    wait_for(client, victim, {"STARTED"})
    wait_for(client, survivor, {"STARTED", *FINISHED})
    os.kill(_worker_pid(client, victim), signal.SIGKILL)
    killed = wait_for(client, victim)
    assert killed["status"] == "FAILURE" and killed["error"]["type"] == "WorkerLost"
    assert "worker process died" in killed["error"]["message"]
    done = wait_for(client, survivor)
    assert done["status"] == "SUCCESS", done
    assert client.get(f"/api/v1/models/{survivor_model}").json()["artifact_uri"] == done["result"]["artifact_uri"]


def test_cancel_ends_a_task_in_the_middle_of_a_fold(fresh_client: TestClient, create_feature: CreateFeature) -> None:
    client = fresh_client
    feature = create_feature(client, "statistical.returns")
    body = {"dataset": {"feature_ids": [feature["id"]], **RANGE, "start_date": "1999-01-01"},
            "cv": {"n_splits": 1, "test_size": 0.2}}  # one fold of ~4,000 rows x 2,000 deep trees: long
    model_id = _model(client, {"n_estimators": 2000, "min_samples_leaf": 1}, "random_forest")
    task_id = client.post(f"/api/v1/models/{model_id}/train/async", json=body).json()["task_id"]
    task = wait_for(client, task_id, {"STARTED"})
    while task["progress_message"] != "fold 1 of 1":  # inside the one fold: no progress report until it ends
        assert task["status"] == "STARTED", task
        time.sleep(0.05)
        task = client.get(f"/api/v1/tasks/{task_id}").json()
    pid = _worker_pid(client, task_id)
    assert client.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200
    task = wait_for(client, task_id)
    assert task["status"] == "REVOKED" and task["error"] == {"type": "Cancelled", "message": "cancelled on request"}
    assert _gone(pid)  # its process was ended: it was not waiting for the fold to finish
    model = client.get(f"/api/v1/models/{model_id}").json()
    assert model["version"] == 1 and model["artifact_uri"] is None  # nothing written
    again = client.post(f"/api/v1/features/{feature['id']}/generate/async", json=RANGE).json()["task_id"]
    assert wait_for(client, again)["status"] == "SUCCESS"  # a new worker took its place


def test_a_task_past_its_time_limit_is_stopped_with_a_message_naming_it(
    fresh_client: TestClient, create_feature: CreateFeature
) -> None:
    client = fresh_client
    feature = create_feature(client, "statistical.returns")
    task_id = _slow_training(client, feature["id"], time_limit_s=1.5)
    task = wait_for(client, task_id)
    assert task["status"] == "FAILURE" and task["error"]["type"] == "TimeLimitExceeded"
    assert "wall-clock limit of 1.5 s" in task["error"]["message"]
    body = _train_body([feature["id"]], n_splits=2, test_size=0.3)
    sync = client.post(f"/api/v1/models/{_model(client, SLOW, 'random_forest')}/train", json=body, params={"time_limit_s": 1})
    assert sync.status_code == 422, sync.text
    assert sync.json()["error"] == "time_limit_exceeded" and "limit of 1 s" in sync.json()["detail"]
    assert sync.json()["task_id"]
    over = client.post(f"/api/v1/models/{_model(client)}/train", json=body, params={"time_limit_s": 10**7})
    assert over.status_code == 422 and "ALPHAFORGE_TASK_TIME_LIMIT_S" in over.json()["detail"]


@pytest.fixture
def memory_capped(make_settings: SettingsFactory) -> Iterator[TestClient]:
    with app_client(make_settings(task_memory_limit_mb=1200)) as client:
        yield client


def test_a_worker_past_its_memory_limit_is_stopped_with_a_message_naming_it(
    memory_capped: TestClient, create_feature: CreateFeature
) -> None:
    client = memory_capped
    feature = create_feature(client, "statistical.returns")
    big = {"hidden_size": 512, "seq_len": 256, "batch_size": 512, "num_layers": 2, "epochs": 50}
    model = client.post("/api/v1/models", json={"name": "big", "model_type": "lstm", "family": "deep_learning",
                                                "parameters": big}).json()["id"]
    body = {"dataset": {"feature_ids": [feature["id"]], **RANGE, "start_date": "2005-01-01"}, "cv": {"n_splits": 2}}
    response = client.post(f"/api/v1/models/{model}/train", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "memory_limit_exceeded" and "1200 MB" in response.json()["detail"]
    task = client.get(f"/api/v1/tasks/{response.json()['task_id']}").json()
    assert task["status"] == "FAILURE" and task["error"]["type"] == "MemoryLimitExceeded"
    assert client.get(f"/api/v1/models/{model}").json()["artifact_uri"] is None
    assert client.get("/health").status_code == 200


@pytest.fixture
def capped(make_settings: SettingsFactory) -> Iterator[TestClient]:
    with app_client(make_settings(max_batch_tasks=3, max_queued_tasks_per_key=2)) as client:
        yield client


def test_one_request_and_one_key_cannot_flood_the_queue(capped: TestClient, create_feature: CreateFeature) -> None:
    client = capped
    feature = create_feature(client, "statistical.returns")
    other = create_feature(client, "statistical.returns", {"period": 2})
    batch = {"feature_ids": [feature["id"], other["id"]], "symbols": ["GSPC", "IXIC"], "start_date": "2015-01-01",
             "end_date": "2016-01-01"}
    too_many = client.post("/api/v1/features/generate", json=batch)
    assert too_many.status_code == 422 and "ALPHAFORGE_MAX_BATCH_TASKS" in too_many.json()["detail"]
    key = client.post("/api/v1/keys", json={"name": "busy", "role": "research"}).json()["key"]
    researcher = {"Authorization": f"Bearer {key}"}
    busy = [client.post(f"/api/v1/models/{_model(client, SLOW, 'random_forest')}/train/async", headers=researcher,
                        json=_train_body([feature["id"]], n_splits=2, test_size=0.3)) for _ in range(2)]
    assert [r.status_code for r in busy] == [202, 202]
    refused = client.post(f"/api/v1/features/{feature['id']}/generate/async", json=RANGE, headers=researcher)
    assert refused.status_code == 429 and refused.headers["retry-after"]
    assert "ALPHAFORGE_MAX_QUEUED_TASKS_PER_KEY" in refused.json()["detail"]
    assert client.post(f"/api/v1/features/{feature['id']}/generate/async", json=RANGE).status_code == 202  # another key
    for response in busy:
        client.post(f"/api/v1/tasks/{response.json()['task_id']}/cancel", headers=researcher)
        wait_for(client, response.json()["task_id"])
    assert client.post(f"/api/v1/features/{feature['id']}/generate/async", json=RANGE, headers=researcher).status_code == 202


def test_the_service_answers_and_shuts_down_while_work_runs(make_settings: SettingsFactory, create_feature: CreateFeature) -> None:
    """Stopping the service ends its workers and records why on the task; nothing waits for them."""
    settings = make_settings()
    with app_client(settings) as client:
        feature = create_feature(client, "statistical.returns")
        task_id = _slow_training(client, feature["id"])
        wait_for(client, task_id, {"STARTED"})
        pid = _worker_pid(client, task_id)
        assert client.get("/health").status_code == 200
    assert _gone(pid, within=5)
    with app_client(settings) as client:
        task = client.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "FAILURE" and "service stopped" in task["error"]["message"]


# -- a client that leaves a synchronous call ---------------------------------------------------
def test_a_client_that_leaves_a_synchronous_training_leaves_a_visible_task(make_settings: SettingsFactory) -> None:
    with serve(make_settings()) as http:
        feature = http.call("POST", "/api/v1/features",
                            json={"name": "r", "type": "statistical", "plugin_key": "statistical.returns"}).json()
        model = http.call("POST", "/api/v1/models", json={
            "name": "slow", "model_type": "random_forest", "family": "machine_learning",
            "parameters": {"n_estimators": 150, "min_samples_leaf": 1}}).json()
        body = _train_body([feature["id"]], n_splits=2, test_size=0.3)
        with pytest.raises(httpx.ReadTimeout):
            http.call("POST", f"/api/v1/models/{model['id']}/train", json=body, timeout=1.0)
        listed = http.call("GET", "/api/v1/tasks", params={"kind": "train"}).json()
        assert len(listed) == 1 and listed[0]["status"] in {"PENDING", "STARTED", "SUCCESS"}
        task_id = listed[0]["task_id"]
        deadline = time.monotonic() + 300
        while (task := http.call("GET", f"/api/v1/tasks/{task_id}").json())["status"] not in FINISHED:
            assert time.monotonic() < deadline, task
            time.sleep(0.2)
        assert task["status"] == "SUCCESS", task
        assert http.call("GET", f"/api/v1/models/{model['id']}").json()["artifact_sha256"] == task["result"]["artifact_sha256"]
        audit = http.call("GET", "/api/v1/audit", params={"limit": 20}).json()
        assert any(e["path"] == f"/api/v1/models/{model['id']}/train" and e["status_code"] == 499 for e in audit)


def test_the_worker_processes_share_nothing_with_the_api(fresh_client: TestClient) -> None:
    """Sanity of the set-up the other tests rely on: tasks run in other processes than the API's."""
    client = fresh_client
    feature = client.post("/api/v1/features", json={"name": "r", "type": "technical", "plugin_key": "technical.rsi"}).json()
    task = wait_for(client, client.post(f"/api/v1/features/{feature['id']}/generate/async", json=RANGE).json()["task_id"])
    assert task["status"] == "SUCCESS"
    assert _worker_pid(client, task["task_id"]) != os.getpid()



# -- the API process killed during an asynchronous tune ----------------------------------------
class Served:
    """`alphaforge serve` in its own process, with the test's settings."""

    def __init__(self, settings: Settings, log: Path) -> None:
        executable = shutil.which("alphaforge", path=os.path.dirname(sys.executable)) or "alphaforge"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([executable, "serve", "--port", str(port)], env=settings_env(settings),
                                        stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


def test_killing_the_api_leaves_no_worker_and_its_tasks_end_at_the_next_start(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    import optuna

    settings = make_settings()
    served = Served(settings, tmp_path / "serve.log")
    try:
        http = httpx.Client(base_url=served.url, headers=ADMIN_HEADERS, timeout=60)
        feature = http.post("/api/v1/features", json={"name": "r", "type": "technical", "plugin_key": "technical.rsi"}).json()
        body = {"plugin_key": "ml.lightgbm", "dataset": {"feature_ids": [feature["id"]], **RANGE}, "n_trials": 500,
                "param_space": {"num_leaves": {"type": "int", "low": 4, "high": 64}}, "cv": {"n_splits": 3},
                "pruner": "none"}
        task_id = http.post("/api/v1/models/tune/async", json=body).json()["task_id"]
        deadline = time.monotonic() + 180
        while (task := http.get(f"/api/v1/tasks/{task_id}").json())["progress"] < 0.005:  # a few trials in
            assert task["status"] not in FINISHED and time.monotonic() < deadline, task
            time.sleep(0.2)
        descendants = psutil.Process(served.process.pid).children(recursive=True)
        assert len(descendants) >= 3  # the fork server and the two workers
        os.kill(served.process.pid, signal.SIGKILL)
        killed_at = datetime.now(timezone.utc)
        served.process.wait(timeout=10)
        assert all(_gone(p.pid, within=15) for p in descendants), [p.pid for p in descendants if p.is_running()]
    finally:
        served.stop()

    db = Database(settings.resolved_database_url)
    rows = _task_and_children(db, uuid.UUID(task_id))
    assert {r.status for r in rows} == {"STARTED"}  # nothing ended them yet
    study = optuna.load_study(study_name=rows[0].request["study_name"], storage=settings.resolved_optuna_storage_url)
    trials = study.get_trials(deepcopy=False)
    assert trials and all(t.datetime_start is None or t.datetime_start.astimezone(timezone.utc) <= killed_at + timedelta(seconds=1)
                          for t in trials)
    time.sleep(3)
    assert len(study.get_trials(deepcopy=False)) == len(trials)  # nobody is running trials any more

    again = Served(settings, tmp_path / "serve.log")  # the next start ends them, before anyone reads /tasks
    try:
        rows = _task_and_children(db, uuid.UUID(task_id))
        assert len(rows) == 3 and all(r.status == "FAILURE" and "service stopped" in r.error_message for r in rows)
    finally:
        again.stop()
        db.dispose()


def _task_and_children(db: Database, task_id: uuid.UUID) -> list[Task]:
    """Read straight from the database: an API read would not prove what the start did."""
    with db.session() as session:
        return list(session.scalars(select(Task).where((Task.id == task_id) | (Task.parent_id == task_id))
                                    .order_by(Task.parent_id.is_not(None))))


def test_a_worker_that_stops_reporting_is_ended_with_its_stacks_logged_and_its_slot_serves_again(
    make_settings: SettingsFactory, create_feature: CreateFeature, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker alive but silent (here its heartbeat waits behind a lock the test holds on its
    task's row) is ended once task_stale_after_s passes, not left to hold its slot until the
    time limit: its threads' stacks are logged, the task ends WorkerLost, and the pool's one
    slot runs the next task."""
    settings = make_settings(task_workers=1, task_stale_after_s=3, task_heartbeat_s=0.5)
    with app_client(settings) as client, caplog.at_level(logging.ERROR, logger="alphaforge.tasks.pool"):
        feature = create_feature(client, "statistical.returns")
        task_id = _slow_training(client, feature["id"])
        wait_for(client, task_id, {"STARTED"})
        pid = _worker_pid(client, task_id)
        engine = client.app.state.ctx.db.engine  # type: ignore[attr-defined]
        with engine.connect() as conn:  # an update left uncommitted: the row (SQLite: the file) stays locked
            conn.execute(update(Task).where(Task.id == uuid.UUID(task_id)).values(progress_message="held by the test"))
            assert _gone(pid, within=60), "the silent worker was not ended"
            conn.rollback()
        task = wait_for(client, task_id)
        assert task["status"] == "FAILURE" and task["error"]["type"] == "WorkerLost", task
        assert "stopped reporting" in task["error"]["message"]
        logged = [r.getMessage() for r in caplog.records if task_id in r.getMessage()]
        assert any("Its threads:" in m and "_heartbeat" in m for m in logged), logged  # where it waited
        again = client.post(f"/api/v1/features/{feature['id']}/generate/async", json=RANGE).json()["task_id"]
        assert wait_for(client, again)["status"] == "SUCCESS"
