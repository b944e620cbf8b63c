"""Stored studies through /api/v1/studies on both backends: listed, summarised, paged, deleted.

Checked against what the tune response said, against a 10,000-trial study seeded straight
into Optuna's tables (its expected pages computed here from the seeded values), and against
the storage itself after a delete (Optuna's rows and the stored forecasts gone).
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta
from typing import Any

import optuna
import pytest
from fastapi.testclient import TestClient

from alphaforge.tuning import studies, trial_records
from conftest import bearer, post_features

FEATURES = [("technical.rsi", {"period": 14}), ("statistical.returns", {})]
CV = {"n_splits": 3}
SEEDED = 10_000


@pytest.fixture(scope="module")
def dataset(client: TestClient) -> dict[str, Any]:
    ids = post_features(client, FEATURES)
    return {"feature_ids": ids, "symbol": "GSPC", "start_date": "2012-01-01", "end_date": "2019-01-01"}


def _tune(client: TestClient, dataset: dict, **body: Any) -> dict:
    response = client.post("/api/v1/models/tune", json={"plugin_key": "ml.ridge", "dataset": dataset, "cv": CV, **body})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def tuned(client: TestClient, dataset: dict) -> dict:
    return _tune(client, dataset, n_trials=12, seed=3, top_k=4)


def _storage(client: TestClient) -> Any:
    return studies.storage(client.app.state.ctx.settings.resolved_optuna_storage_url)  # type: ignore[attr-defined]


def _all_trials(client: TestClient, study_id: int, limit: int, **query: Any) -> list[dict]:
    items, offset = [], 0
    while offset is not None:
        page = client.get(f"/api/v1/studies/{study_id}/trials", params={"limit": limit, "offset": offset, **query})
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["offset"] == offset and len(body["items"]) <= limit
        items += body["items"]
        offset = body["next_offset"]
    assert len(items) == body["total"]
    return items


# -- a study alphaforge ran -------------------------------------------------------------------
def test_the_tune_response_summarises_with_top_k(tuned: dict) -> None:
    complete = sorted((t for t in tuned["trials"] if t["state"] == "COMPLETE"), key=lambda t: (t["score"], t["number"]))
    assert [t["number"] for t in tuned["top_trials"]] == [t["number"] for t in complete[:4]]
    assert tuned["top_trials"][0]["number"] == tuned["best_trial"] and tuned["trials_truncated"] is False
    assert isinstance(tuned["study_id"], int)


def test_summary_matches_the_tune_response(client: TestClient, tuned: dict) -> None:
    response = client.get(f"/api/v1/studies/{tuned['study_id']}")
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["study_name"] == tuned["study_name"] and summary["plugin_key"] == "ml.ridge"
    assert summary["metric"] == "mean_mse" and summary["direction"] == "minimize"
    for key in ("n_trials", "n_complete", "n_pruned", "n_failed", "best_trial", "best_score", "best_params",
                "stop_reason", "mlflow_parent_run_id"):
        assert summary[key] == tuned[key], key
    assert summary["n_trials_requested"] == 12 and summary["n_running"] == 0 and summary["n_waiting"] == 0


def test_every_trial_is_paged_as_the_response_listed_it(client: TestClient, tuned: dict) -> None:
    paged = _all_trials(client, tuned["study_id"], limit=5)
    assert paged == tuned["trials"]


def test_studies_are_listed_newest_first(client: TestClient, dataset: dict, tuned: dict) -> None:
    later = _tune(client, dataset, n_trials=2, pruner="none")
    body = client.get("/api/v1/studies", params={"limit": 500}).json()
    ids = [s["study_id"] for s in body["items"]]
    assert ids == sorted(ids, reverse=True) and body["total"] >= 2
    assert ids.index(later["study_id"]) < ids.index(tuned["study_id"])
    first = client.get("/api/v1/studies", params={"limit": 1, "offset": ids.index(tuned["study_id"])}).json()
    assert [s["study_name"] for s in first["items"]] == [tuned["study_name"]]


def test_reads_need_a_read_key_and_deletes_an_admin_key(
    client: TestClient, dataset: dict, keys: dict[str, str]
) -> None:
    body = _tune(client, dataset, n_trials=3, pruner="none")
    study_id = body["study_id"]
    assert client.get(f"/api/v1/studies/{study_id}/trials", headers=bearer(keys["read"])).status_code == 200
    assert client.get("/api/v1/studies", headers=bearer(keys["read"])).status_code == 200
    for role in ("read", "research"):
        refused = client.delete(f"/api/v1/studies/{study_id}", headers=bearer(keys[role]))
        assert refused.status_code == 403, refused.text
    assert client.get(f"/api/v1/studies/{study_id}").status_code == 200  # still there


def test_delete_removes_the_study_its_trials_and_their_forecasts(client: TestClient, dataset: dict) -> None:
    body = _tune(client, dataset, n_trials=3, pruner="none")
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    prefix = f"studies/{body['study_name']}/"
    stored = ctx.objects.list(prefix)
    assert len(stored) == 3 and all(ctx.objects.key_of(t["out_of_fold_uri"]) in stored for t in body["trials"])

    assert client.delete(f"/api/v1/studies/{body['study_id']}").status_code == 204
    assert ctx.objects.list(prefix) == []
    with pytest.raises(KeyError):
        optuna.load_study(study_name=body["study_name"], storage=_storage(client))
    for path in (f"/api/v1/studies/{body['study_id']}", f"/api/v1/studies/{body['study_id']}/trials"):
        gone = client.get(path)
        assert gone.status_code == 404 and "GET /api/v1/studies lists them" in gone.json()["detail"]
    assert client.delete(f"/api/v1/studies/{body['study_id']}").status_code == 404
    assert body["study_id"] not in [s["study_id"] for s in client.get("/api/v1/studies?limit=500").json()["items"]]


def test_an_interrupted_delete_is_hidden_and_finished_by_a_second_one(client: TestClient, dataset: dict) -> None:
    body = _tune(client, dataset, n_trials=2, pruner="none")
    _storage(client).set_study_user_attr(body["study_id"], "deleting", True)  # as a DELETE leaves it when cut off
    assert client.get(f"/api/v1/studies/{body['study_id']}").status_code == 404
    assert client.delete(f"/api/v1/studies/{body['study_id']}").status_code == 204
    with pytest.raises(KeyError):
        optuna.load_study(study_name=body["study_name"], storage=_storage(client))


def test_a_study_whose_task_still_runs_is_not_deleted(client: TestClient, dataset: dict) -> None:
    submitted = client.post("/api/v1/models/tune/async", json={
        "plugin_key": "ml.ridge", "dataset": dataset, "cv": CV, "n_trials": 1000, "pruner": "none"})
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]
    study = client.get("/api/v1/studies", params={"limit": 1}).json()["items"][0]
    refused = client.delete(f"/api/v1/studies/{study['study_id']}")
    assert refused.status_code == 409 and "cancel its task" in refused.json()["detail"]
    assert client.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200
    deadline = time.monotonic() + 120
    while client.get(f"/api/v1/tasks/{task_id}").json()["status"] not in ("SUCCESS", "FAILURE", "REVOKED"):
        assert time.monotonic() < deadline, "the cancelled tune did not finish"
        time.sleep(0.1)
    assert client.delete(f"/api/v1/studies/{study['study_id']}").status_code == 204


def test_unknown_studies_and_bad_queries(client: TestClient, tuned: dict) -> None:
    for method, path in (("GET", "/api/v1/studies/987654321"), ("GET", "/api/v1/studies/987654321/trials"),
                         ("DELETE", "/api/v1/studies/987654321")):
        response = client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
    for query, field in (({"state": "DONE"}, "state"), ({"sort": "params"}, "sort"), ({"order": "up"}, "order"),
                         ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"offset": -1}, "offset")):
        response = client.get(f"/api/v1/studies/{tuned['study_id']}/trials", params=query)
        assert response.status_code == 422 and field in response.json()["detail"], (query, response.text)


# -- 10,000 trials seeded straight into Optuna's tables ------------------------------------------
@pytest.fixture(scope="module")
def seeded(client: TestClient) -> dict[str, Any]:
    """A study of SEEDED trials (plus 3 surplus ones) written with a few bulk inserts: states
    drawn at random, COMPLETE and PRUNED with a score, some scores tied."""
    from optuna.storages._rdb import models
    from sqlalchemy import insert, select

    storage = _storage(client)
    name = f"seeded-{random.getrandbits(48):x}"
    study = optuna.create_study(storage=storage, study_name=name, direction="minimize")
    rng = random.Random(17)
    start = datetime(2024, 1, 1)
    states = rng.choices(["COMPLETE", "PRUNED", "FAIL"], weights=[6, 3, 1], k=SEEDED) + ["FAIL"] * 3
    scores = [round(rng.uniform(0, 1), 3) if s != "FAIL" else None for s in states]  # ties on purpose
    with storage.engine.begin() as conn:
        conn.execute(insert(models.TrialModel.__table__), [
            {"number": n, "study_id": study._study_id, "state": optuna.trial.TrialState[s],
             "datetime_start": start + timedelta(seconds=n), "datetime_complete": start + timedelta(seconds=n, milliseconds=250)}
            for n, s in enumerate(states)])
        t = models.TrialModel.__table__
        ids = dict(conn.execute(select(t.c.number, t.c.trial_id).where(t.c.study_id == study._study_id)).all())
        value_type = models.TrialValueModel.TrialValueType.FINITE
        conn.execute(insert(models.TrialValueModel.__table__), [
            {"trial_id": ids[n], "objective": 0, "value": v, "value_type": value_type}
            for n, v in enumerate(scores) if v is not None])
        conn.execute(insert(models.TrialUserAttributeModel.__table__), [
            {"trial_id": ids[n], "key": trial_records.RESULT, "value_json": json.dumps({"params": {"alpha": n}})}
            for n in range(SEEDED)] + [
            {"trial_id": ids[n], "key": trial_records.SURPLUS, "value_json": "true"} for n in range(SEEDED, SEEDED + 3)])
    return {"study_id": study._study_id, "states": states[:SEEDED], "scores": scores[:SEEDED]}


def test_ten_thousand_trials_page_by_number(client: TestClient, seeded: dict) -> None:
    items = _all_trials(client, seeded["study_id"], limit=1000)
    assert [t["number"] for t in items] == list(range(SEEDED))  # every trial once, surplus ones never
    assert [t["state"] for t in items] == seeded["states"]
    assert all(t["params"] == {"alpha": t["number"]} and t["duration_s"] == 0.25 for t in items)
    summary = client.get(f"/api/v1/studies/{seeded['study_id']}").json()
    assert summary["n_trials"] == SEEDED and summary["n_complete"] == seeded["states"].count("COMPLETE")


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_ten_thousand_trials_sorted_by_score(client: TestClient, seeded: dict, order: str) -> None:
    items = _all_trials(client, seeded["study_id"], limit=700, sort="score", order=order)
    scored = [(s, n) for n, s in enumerate(seeded["scores"]) if s is not None]
    expected = sorted(scored, key=lambda x: (x[0] if order == "asc" else -x[0], x[1]))
    unscored = [n for n, s in enumerate(seeded["scores"]) if s is None]
    assert [t["number"] for t in items] == [n for _, n in expected] + unscored  # no score: last, by number
    assert [t["score"] for t in items[: len(expected)]] == [s for s, _ in expected]


def test_ten_thousand_trials_filtered_by_state(client: TestClient, seeded: dict) -> None:
    for states in (["PRUNED"], ["COMPLETE", "FAIL"], ["RUNNING"]):
        page = client.get(f"/api/v1/studies/{seeded['study_id']}/trials",
                          params={"state": states, "limit": 1000, "offset": 0})
        body = page.json()
        wanted = [n for n, s in enumerate(seeded["states"]) if s in states]
        assert body["total"] == len(wanted)
        assert [t["number"] for t in body["items"]] == wanted[:1000]
        assert body["next_offset"] == (1000 if len(wanted) > 1000 else None)
    best = client.get(f"/api/v1/studies/{seeded['study_id']}/trials",
                      params={"state": "COMPLETE", "sort": "score", "limit": 1}).json()["items"][0]
    complete = [(s, n) for n, (s, st) in enumerate(zip(seeded["scores"], seeded["states"])) if st == "COMPLETE"]
    summary = client.get(f"/api/v1/studies/{seeded['study_id']}").json()
    assert (best["score"], best["number"]) == min(complete) == (summary["best_score"], summary["best_trial"])


# -- warm starts ----------------------------------------------------------------------------------
def test_a_warm_start_enqueues_the_earlier_best_trials_first(client: TestClient, dataset: dict, tuned: dict) -> None:
    body = _tune(client, dataset, n_trials=5, seed=4, pruner="none", warm_start_from=tuned["study_id"],
                 warm_start_trials=3)
    best3 = sorted((t for t in tuned["trials"] if t["state"] == "COMPLETE"), key=lambda t: (t["score"], t["number"]))[:3]
    assert body["warm_start_from"] == tuned["study_id"] and body["n_trials"] == 5
    for new, old in zip(body["trials"][:3], best3):
        assert new["params"] == old["params"]
        assert new["score"] == pytest.approx(old["score"], rel=1e-12)  # same data, folds and parameters
    assert body["best_score"] <= best3[0]["score"] * (1 + 1e-12)
    lineage = client.get(f"/api/v1/studies/{body['study_id']}").json()
    assert lineage["warm_start_from"] == tuned["study_id"]
    assert lineage["warm_start_trials"] == [t["number"] for t in best3]


def test_warm_start_refusals_name_the_field(client: TestClient, dataset: dict, tuned: dict) -> None:
    before = client.get("/api/v1/studies").json()["total"]
    cases = [
        ({"plugin_key": "ml.lightgbm"}, "tuned ml.ridge, not ml.lightgbm"),
        ({"param_space": {"alpha": {"type": "float", "low": 2000.0, "high": 3000.0}},
          "fixed_params": {"fit_intercept": True}}, "outside this study's search space (float 2000.0..3000.0)"),
    ]
    for body, needle in cases:
        response = client.post("/api/v1/models/tune", json={
            "plugin_key": "ml.ridge", "dataset": dataset, "cv": CV, "n_trials": 2,
            "warm_start_from": tuned["study_id"], **body})
        assert response.status_code == 422, response.text
        assert needle in response.json()["detail"] and "warm_start_from" in response.json()["detail"]
    missing = client.post("/api/v1/models/tune", json={"plugin_key": "ml.ridge", "dataset": dataset, "cv": CV,
                                                       "n_trials": 2, "warm_start_from": 987654321})
    assert missing.status_code == 404, missing.text
    assert client.get("/api/v1/studies").json()["total"] == before  # refused before any study was created
