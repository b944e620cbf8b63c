"""Asynchronous tasks on the embedded executor (worker processes), on both storage backends.

The Celery executor runs the same checks in tests/api/test_tasks_celery.py.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from alphaforge.storage.db import utcnow
from alphaforge.storage.tables import Task
from conftest import CreateFeature, app_client

RANGE = {"symbol": "GSPC", "start_date": "2012-01-01", "end_date": "2019-01-01"}
FINISHED = {"SUCCESS", "FAILURE", "REVOKED"}


def wait_for(client: TestClient, task_id: str, until: set[str] = FINISHED, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/tasks/{task_id}").json()
        if body["status"] in until:
            return body
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} still {body['status']} after {timeout} s: {body}")


def _model(client: TestClient, parameters: dict | None = None, model_type: str = "ridge") -> str:
    body = {"name": "async", "model_type": model_type, "family": "machine_learning", "parameters": parameters or {}}
    return client.post("/api/v1/models", json=body).json()["id"]


def _train_body(feature_ids: list[str], **cv: object) -> dict:
    return {"dataset": {"feature_ids": feature_ids, **RANGE}, "cv": {"n_splits": 3, **cv}}


def test_generate_async_gives_the_dataset_the_sync_call_gives(client: TestClient, create_feature: CreateFeature) -> None:
    feature = create_feature(client, "technical.rsi", {"period": 9})
    submitted = client.post(f"/api/v1/features/{feature['id']}/generate/async", json=RANGE)
    assert submitted.status_code == 202, submitted.text
    assert submitted.json()["status"] == "PENDING" and submitted.json()["kind"] == "generate"
    task = wait_for(client, submitted.json()["task_id"])
    assert task["status"] == "SUCCESS", task
    assert task["progress"] == 1.0 and task["started_at"] and task["finished_at"] and task["error"] is None
    sync = client.post(f"/api/v1/features/{feature['id']}/generate", json=RANGE).json()
    assert sync["cached"] is True
    assert task["result"]["dataset"] == sync["dataset"]


def test_train_async_gives_the_same_model_as_the_sync_call(client: TestClient, create_feature: CreateFeature) -> None:
    feature = create_feature(client, "statistical.returns", {"period": 2})
    body = _train_body([feature["id"]])
    sync = client.post(f"/api/v1/models/{_model(client, {'alpha': 3.0})}/train", json=body).json()
    model_id = _model(client, {"alpha": 3.0})
    submitted = client.post(f"/api/v1/models/{model_id}/train/async", json=body)
    assert submitted.status_code == 202, submitted.text
    task = wait_for(client, submitted.json()["task_id"])
    assert task["status"] == "SUCCESS", task
    result = task["result"]
    assert result["artifact_sha256"] == sync["artifact_sha256"]
    assert result["cv_metrics"] == sync["cv_metrics"] and result["feature_columns"] == sync["feature_columns"]
    model = client.get(f"/api/v1/models/{model_id}").json()
    assert model["version"] == 2 and model["artifact_uri"] == result["artifact_uri"]


@pytest.mark.parametrize(
    ("path", "body", "status", "expected"),
    [
        ("/api/v1/models/{missing}/train/async", "train", 404, "Model not found"),
        ("/api/v1/models/{model}/train/async", "ghost_features", 404, "Unknown feature id(s): "),
        ("/api/v1/models/{model}/train/async", "short_purge", 422, "purge=0 is shorter than the target horizon"),
        ("/api/v1/models/{model}/train/async", "no_bars", 422, "no 1d bars for NOPE"),
        ("/api/v1/features/{missing}/generate/async", "range", 404, "Feature not found"),
        ("/api/v1/features/{feature}/generate/async", "reversed", 422, "must be after start_date"),
        ("/api/v1/features/generate", "batch_ghost", 404, "Unknown feature id(s): "),
    ],
)
def test_async_requests_are_refused_at_submit_like_their_sync_twins(
    client: TestClient, create_feature: CreateFeature, path: str, body: str, status: int, expected: str
) -> None:
    feature = create_feature(client, "statistical.returns")
    model = _model(client)
    bodies = {
        "train": _train_body([feature["id"]]),
        "ghost_features": _train_body([str(uuid.uuid4())]),
        "short_purge": _train_body([feature["id"]], purge=0),
        "no_bars": {"dataset": {"feature_ids": [feature["id"]], **RANGE, "symbol": "NOPE"}},
        "range": RANGE,
        "reversed": {**RANGE, "end_date": "2000-01-01"},
        "batch_ghost": {"feature_ids": [feature["id"], str(uuid.uuid4())], "symbols": ["GSPC"], **{k: RANGE[k] for k in ("start_date", "end_date")}},
    }
    before = len(client.get("/api/v1/tasks", params={"limit": 500}).json())
    url = path.format(missing=uuid.uuid4(), model=model, feature=feature["id"])
    response = client.post(url, json=bodies[body])
    assert response.status_code == status, response.text
    assert expected in response.json()["detail"]
    # the synchronous twin answers the same
    sync_url = url.replace("/async", "")
    if body not in ("batch_ghost",):
        twin = client.post(sync_url, json=bodies[body])
        assert twin.status_code == status and expected in twin.json()["detail"]
    assert len(client.get("/api/v1/tasks", params={"limit": 500}).json()) == before  # nothing submitted


def test_a_failure_inside_the_task_is_recorded_with_its_type_and_message(client: TestClient, create_feature: CreateFeature) -> None:
    feature = create_feature(client, "statistical.returns")
    body = {"dataset": {"feature_ids": [feature["id"]], **RANGE, "start_date": "2018-12-01"}}
    task = wait_for(client, client.post(f"/api/v1/models/{_model(client)}/train/async", json=body).json()["task_id"])
    assert task["status"] == "FAILURE"
    assert task["error"]["type"] == "InvalidInput" and "aligned rows remain" in task["error"]["message"]


def test_batch_generate_fans_out_feature_ids_times_symbols(client: TestClient, create_feature: CreateFeature) -> None:
    rsi, ret = create_feature(client, "technical.rsi", {"period": 5}), create_feature(client, "statistical.returns", {"period": 5})
    body = {"feature_ids": [rsi["id"], ret["id"]], "symbols": ["GSPC", "ixic"], "start_date": "2015-01-01", "end_date": "2016-01-01"}
    submitted = client.post("/api/v1/features/generate", json=body)
    assert submitted.status_code == 202, submitted.text
    task = wait_for(client, submitted.json()["task_id"])
    assert task["status"] == "SUCCESS", task
    assert task["children_total"] == task["children_done"] == 4
    items = task["result"]["items"]
    # symbols are normalised when the request is parsed: every item names the symbol it generated
    assert [(i["feature_id"], i["symbol"]) for i in items] == [
        (rsi["id"], "GSPC"), (rsi["id"], "IXIC"), (ret["id"], "GSPC"), (ret["id"], "IXIC")
    ]
    assert all(i["status"] == "SUCCESS" and i["dataset"]["row_count"] > 200 for i in items)
    assert {i["dataset"]["symbol"] for i in items} == {"GSPC", "IXIC"}
    children = client.get("/api/v1/tasks", params={"include_children": True, "kind": "generate", "limit": 500}).json()
    assert {c["task_id"] for c in children} >= {i["task_id"] for i in items}


def test_get_list_filters_and_unknown_task(client: TestClient, create_feature: CreateFeature) -> None:
    assert client.get(f"/api/v1/tasks/{uuid.uuid4()}").status_code == 404
    assert client.get(f"/api/v1/tasks/{uuid.uuid4()}").json()["detail"] == "Task not found"
    feature = create_feature(client, "statistical.returns", {"period": 3})
    task_id = client.post(f"/api/v1/features/{feature['id']}/generate/async", json=RANGE).json()["task_id"]
    wait_for(client, task_id)
    listed = client.get("/api/v1/tasks", params={"kind": "generate", "status": "SUCCESS"}).json()
    assert task_id in [t["task_id"] for t in listed]
    assert all(t["kind"] == "generate" and t["status"] == "SUCCESS" for t in listed)
    assert client.get("/api/v1/tasks", params={"status": "DONE"}).status_code == 422
    assert client.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 409


def test_cancel_stops_a_running_training_and_nothing_is_recorded(fresh_client: TestClient, create_feature: CreateFeature) -> None:
    client = fresh_client
    feature = create_feature(client, "statistical.returns")
    model_id = _model(client, {"n_estimators": 300, "min_samples_leaf": 1}, model_type="random_forest")
    task_id = client.post(f"/api/v1/models/{model_id}/train/async", json=_train_body([feature["id"]], n_splits=8, test_size=0.1)).json()["task_id"]
    wait_for(client, task_id, {"STARTED", *FINISHED})
    cancelled = client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200
    task = wait_for(client, task_id)
    assert task["status"] == "REVOKED", task
    model = client.get(f"/api/v1/models/{model_id}").json()
    assert model["version"] == 1 and model["artifact_uri"] is None


def test_a_killed_worker_ends_the_task_failure_and_no_row_points_at_a_missing_object(
    fresh_client: TestClient, create_feature: CreateFeature
) -> None:
    client = fresh_client
    feature = create_feature(client, "statistical.returns")
    model_id = _model(client, {"n_estimators": 400, "min_samples_leaf": 1}, model_type="random_forest")
    task_id = client.post(f"/api/v1/models/{model_id}/train/async", json=_train_body([feature["id"]], n_splits=8, test_size=0.1)).json()["task_id"]
    wait_for(client, task_id, {"STARTED", *FINISHED})
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as session:
        worker = session.get(Task, uuid.UUID(task_id)).worker
    os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)
    task = wait_for(client, task_id)
    assert task["status"] == "FAILURE" and task["error"]["type"] == "WorkerLost"
    assert "worker process died" in task["error"]["message"]
    model = client.get(f"/api/v1/models/{model_id}").json()
    assert model["version"] == 1 and model["artifact_uri"] is None
    # the pool is replaced: the next task runs
    again = client.post(f"/api/v1/features/{feature['id']}/generate/async", json=RANGE).json()["task_id"]
    assert wait_for(client, again)["status"] == "SUCCESS"


def test_a_task_whose_worker_stopped_reporting_is_ended_by_the_reaper(client: TestClient) -> None:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    stale = Task(kind="train", status="STARTED", request={}, attempts=1, heartbeat_at=utcnow() - timedelta(hours=1))
    with ctx.db.session() as session:
        session.add(stale)
    task = client.get(f"/api/v1/tasks/{stale.id}").json()
    assert task["status"] == "FAILURE" and task["error"]["type"] == "WorkerLost"
    assert "stopped reporting" in task["error"]["message"]


def test_tasks_left_by_a_stopped_embedded_service_end_failure_at_start(make_settings) -> None:

    settings = make_settings()
    with app_client(settings) as client:
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        orphan = Task(kind="generate", status="PENDING", request={})
        with ctx.db.session() as session:
            session.add(orphan)
    with app_client(settings) as client:
        task = client.get(f"/api/v1/tasks/{orphan.id}").json()
    assert task["status"] == "FAILURE" and "service stopped" in task["error"]["message"]


# -- tune and AutoML as tasks --------------------------------------------------------------
def _tune_body(feature_ids: list[str], **overrides: object) -> dict:
    return {
        "plugin_key": "ml.lightgbm",
        "dataset": {"feature_ids": feature_ids, **RANGE},
        "param_space": {"num_leaves": {"type": "int", "low": 4, "high": 64, "log": True},
                        "n_estimators": {"type": "int", "low": 20, "high": 60, "step": 10}},
        "n_trials": 8, "cv": {"n_splits": 3}, "pruner": "none", "seed": 7, **overrides,
    }


def test_tune_async_spreads_trials_over_workers_shows_progress_and_matches_sync(
    client: TestClient, create_feature: CreateFeature
) -> None:
    feature = create_feature(client, "technical.rsi", {"period": 13})
    body = _tune_body([feature["id"]])
    submitted = client.post("/api/v1/models/tune/async", json=body)
    assert submitted.status_code == 202, submitted.text
    task_id, seen = submitted.json()["task_id"], []
    task = client.get(f"/api/v1/tasks/{task_id}").json()
    while task["status"] not in FINISHED:
        seen.append((task["status"], task["progress"]))
        time.sleep(0.05)
        task = client.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "SUCCESS", task
    assert any(status == "STARTED" and 0 < progress < 1 for status, progress in seen), seen  # visible while it ran
    assert task["children_total"] == 2  # one shard per worker process
    result = task["result"]
    assert result["n_trials"] == 8 == len(result["trials"])
    # fewer trials than TPE's random start-up: each trial's parameters depend only on (seed, number)
    sync = client.post("/api/v1/models/tune", json=body).json()
    assert [(t["params"], t["score"]) for t in result["trials"]] == [(t["params"], t["score"]) for t in sync["trials"]]
    assert result["best_params"] == sync["best_params"] and result["best_score"] == sync["best_score"]


def test_tune_async_is_refused_at_submit_like_the_sync_call(client: TestClient, create_feature: CreateFeature) -> None:
    feature = create_feature(client, "statistical.returns")
    bad = _tune_body([feature["id"]], param_space={"depth": {"type": "int", "low": 1, "high": 3}})
    for path in ("/api/v1/models/tune/async", "/api/v1/models/tune"):
        response = client.post(path, json=bad)
        assert response.status_code == 422 and "depth" in response.json()["detail"]
    ghost = _tune_body([str(uuid.uuid4())])
    assert client.post("/api/v1/models/tune/async", json=ghost).status_code == 404


def test_cancelling_a_tune_stops_its_shards(fresh_client: TestClient, create_feature: CreateFeature) -> None:
    client = fresh_client
    feature = create_feature(client, "statistical.returns")
    body = _tune_body([feature["id"]], n_trials=200, param_space={"num_leaves": {"type": "int", "low": 4, "high": 64}})
    task_id = client.post("/api/v1/models/tune/async", json=body).json()["task_id"]
    task = client.get(f"/api/v1/tasks/{task_id}").json()
    while task["progress"] == 0 and task["status"] not in FINISHED:
        time.sleep(0.05)
        task = client.get(f"/api/v1/tasks/{task_id}").json()
    assert client.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200
    task = wait_for(client, task_id)
    assert task["status"] == "REVOKED", task
    shards = [t for t in client.get("/api/v1/tasks", params={"include_children": True, "kind": "tune_trials"}).json()
              if t["parent_id"] == task_id]
    assert len(shards) == 2 and all(s["status"] == "REVOKED" for s in shards)


def test_automl_async_gives_the_sync_leaderboard(client: TestClient, create_feature: CreateFeature) -> None:
    feature = create_feature(client, "technical.rsi", {"period": 17})
    body = {
        "dataset": {"feature_ids": [feature["id"]], **RANGE},
        "candidates": {"ml.ridge": {}, "ml.lightgbm": {"n_estimators": 30}, "ml.xgboost": {"n_estimators": 30, "max_depth": 2}},
        "cv": {"n_splits": 3},
    }
    submitted = client.post("/api/v1/models/automl/async", json=body)
    assert submitted.status_code == 202, submitted.text
    task = wait_for(client, submitted.json()["task_id"])
    assert task["status"] == "SUCCESS", task
    sync = client.post("/api/v1/models/automl", json=body).json()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "fit_time_s"} for r in rows]  # noqa: E731
    assert strip(task["result"]["leaderboard"]) == strip(sync["leaderboard"])
    unknown = client.post("/api/v1/models/automl/async", json={**body, "candidates": {"ml.nope": {}}})
    assert unknown.status_code == 422


def test_a_duplicate_delivery_of_a_running_task_is_skipped_and_a_dead_workers_task_rerun(
    client: TestClient, create_feature: CreateFeature
) -> None:
    import socket
    import subprocess
    import sys

    from alphaforge.tasks.runner import run_task

    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    feature = create_feature(client, "statistical.returns", {"period": 7})
    request = {"feature_id": feature["id"], "body": {**RANGE, "timeframe": "1d"}}
    alive = Task(kind="generate", status="STARTED", request=request, attempts=1, heartbeat_at=utcnow(),
                 worker=f"{socket.gethostname()}:{os.getpid()}")
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()
    dead = Task(kind="generate", status="STARTED", request=request, attempts=1, heartbeat_at=utcnow(),
                worker=f"{socket.gethostname()}:{dead_pid.pid}")
    with ctx.db.session() as session:
        session.add_all([alive, dead])
    run_task(ctx, alive.id)
    run_task(ctx, dead.id)
    skipped, rerun = client.get(f"/api/v1/tasks/{alive.id}").json(), client.get(f"/api/v1/tasks/{dead.id}").json()
    assert skipped["status"] == "STARTED" and skipped["attempts"] == 1  # its worker is alive: not run twice
    assert rerun["status"] == "SUCCESS" and rerun["attempts"] == 2


def test_tasks_can_be_listed_by_every_registered_kind(client: TestClient) -> None:
    """The kind filter names every kind the workers run (it once lacked the panel and evaluation kinds: a 422)."""
    from typing import get_args

    from alphaforge.schemas.tasks import TaskKindName
    from alphaforge.tasks.kinds import TASK_KINDS

    assert set(get_args(TaskKindName)) == set(TASK_KINDS)
    for kind in TASK_KINDS:
        response = client.get("/api/v1/tasks", params={"kind": kind})
        assert response.status_code == 200 and all(t["kind"] == kind for t in response.json()), response.text
