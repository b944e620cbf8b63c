"""Tuning through the API and the service, on both backends.

Checked independently where it can be: the best trial against the listed trials, the
direction against the scores, the trial budget across two processes sharing one study,
and the MLflow parent/child runs read back with a separate MlflowClient.
"""

from __future__ import annotations

import multiprocessing
import uuid
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from pydantic import SecretStr

from alphaforge.errors import Conflict, InvalidInput, NotFound
from alphaforge.plugins.models import model_plugins
from alphaforge.schemas.tuning import TuneRequest
from alphaforge.tuning import tuner
from alphaforge.tasks.progress import Cancelled
from alphaforge.settings import Settings
from conftest import post_features

FEATURES = [("technical.rsi", {"period": 14}), ("statistical.returns", {})]
CV = {"n_splits": 3}


@pytest.fixture(scope="module")
def dataset(client: TestClient) -> dict[str, Any]:
    ids = post_features(client, FEATURES)
    return {"feature_ids": ids, "symbol": "GSPC", "start_date": "2012-01-01", "end_date": "2019-01-01"}


def _tune(client: TestClient, dataset: dict, **body: Any) -> Any:
    return client.post("/api/v1/models/tune", json={"plugin_key": "ml.ridge", "dataset": dataset, "cv": CV, **body})


@pytest.fixture(scope="module")
def ridge_study(client: TestClient, dataset: dict) -> dict:
    response = _tune(client, dataset, n_trials=14, seed=0)
    assert response.status_code == 200, response.text
    return response.json()


def _scores(body: dict, state: str = "COMPLETE") -> list[float]:
    return [t["score"] for t in body["trials"] if t["state"] == state]


def test_tune_runs_n_trials_and_reports_every_trial(ridge_study: dict) -> None:
    body = ridge_study
    assert body["plugin_key"] == "ml.ridge" and body["metric"] == "mean_mse" and body["direction"] == "minimize"
    assert body["stop_reason"] == "n_trials"
    assert body["n_trials"] == 14 == len(body["trials"])
    assert [t["number"] for t in body["trials"]] == list(range(14))
    states = [t["state"] for t in body["trials"]]
    assert body["n_complete"] == states.count("COMPLETE") and body["n_pruned"] == states.count("PRUNED")
    assert body["n_failed"] == states.count("FAIL") == 0
    assert body["n_pruned"] >= 1  # the default pruner stopped at least one trial before its last fold
    for trial in body["trials"]:
        assert set(trial["params"]) == {"alpha", "fit_intercept"}  # the default space of ml.ridge
        assert 1e-3 <= trial["params"]["alpha"] <= 1e3 and trial["duration_s"] > 0
        assert trial["folds_evaluated"] in ((3,) if trial["state"] == "COMPLETE" else (1, 2))
        if trial["state"] == "COMPLETE":
            assert trial["metrics"]["mean_mse"] == trial["score"] and trial["metrics"]["n_folds"] == 3


def test_the_default_pruner_keeps_only_the_best_40_percent_after_each_fold(ridge_study: dict) -> None:
    """Recomputed from the listed folds: a trial goes on past fold k only while its mean fold
    mse so far is within the best 40 % of the earlier complete trials' after fold k (linear
    percentile), once 5 completed; a pruned trial was outside it at its last fold."""
    trials = ridge_study["trials"]

    def so_far(trial: dict, k: int) -> float:
        return float(np.mean([f["mse"] for f in trial["folds"][: k + 1]]))

    checked = 0
    for trial in trials:
        earlier = [t for t in trials if t["state"] == "COMPLETE" and t["number"] < trial["number"]]
        if len(earlier) < tuner.PRUNER_STARTUP_TRIALS:
            assert trial["state"] == "COMPLETE"
            continue
        last = trial["folds_evaluated"] - 1
        for k in range(min(last + 1, 2)):  # never judged on the last (third) fold
            bound = float(np.percentile([so_far(t, k) for t in earlier], 40))
            outside = so_far(trial, k) > bound
            assert outside == (trial["state"] == "PRUNED" and k == last), (trial["number"], k)
            checked += 1
    assert checked >= 5


def test_best_is_the_best_complete_trial(ridge_study: dict) -> None:
    body = ridge_study
    best = body["trials"][body["best_trial"]]
    assert best["state"] == "COMPLETE"
    assert body["best_score"] == best["score"] == min(_scores(body))
    assert body["best_params"] == best["params"]
    assert body["best_metrics"]["mean_mse"] == body["best_score"]


def test_directional_accuracy_is_maximised_unless_told_otherwise(client: TestClient, dataset: dict) -> None:
    response = _tune(client, dataset, n_trials=6, metric="directional_accuracy", pruner="none")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["direction"] == "maximize" and body["metric"] == "directional_accuracy"
    assert body["best_score"] == max(_scores(body)) and len(set(_scores(body))) > 1

    response = _tune(client, dataset, n_trials=6, metric="mean_directional_accuracy", direction="minimize", pruner="none")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["direction"] == "minimize" and body["best_score"] == min(_scores(body))


def test_the_same_seed_gives_the_same_trials(client: TestClient, dataset: dict) -> None:
    def run(seed: int) -> list[tuple]:
        response = _tune(client, dataset, n_trials=7, seed=seed)
        assert response.status_code == 200, response.text
        return [(t["state"], t["params"], t["score"]) for t in response.json()["trials"]]

    first = run(11)
    assert run(11) == first
    assert run(12) != first


def test_fixed_params_are_held_and_merged_into_every_trial(client: TestClient, dataset: dict) -> None:
    space = {"alpha": {"type": "float", "low": 0.5, "high": 50, "step": 0.5}}
    response = _tune(client, dataset, n_trials=4, param_space=space, fixed_params={"fit_intercept": False})
    assert response.status_code == 200, response.text
    body = response.json()
    for trial in body["trials"]:
        assert trial["params"]["fit_intercept"] is False
        assert (trial["params"]["alpha"] * 2).is_integer()
    assert body["best_params"]["fit_intercept"] is False


def test_early_stopping_ends_the_study_after_patience_trials_without_improvement(client: TestClient, dataset: dict) -> None:
    # one point in the space: every trial scores the same, so only the first one is "best"
    space = {"fit_intercept": {"type": "categorical", "choices": [True]}}
    response = _tune(client, dataset, n_trials=20, param_space=space, patience=3)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stop_reason"] == "early_stopping"
    assert body["n_trials"] == 4 and body["best_trial"] == 0
    assert len(set(_scores(body))) == 1


def test_timeout_stops_starting_trials(client: TestClient, dataset: dict) -> None:
    response = _tune(client, dataset, n_trials=500, timeout_s=1.0)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stop_reason"] == "timeout"
    assert 1 <= body["n_trials"] < 500


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"param_space": {"depth": {"type": "int", "low": 1, "high": 3}}}, "has no parameter(s) 'depth'"),
        ({"param_space": {"alpha": {"type": "float", "low": 5, "high": 1}}}, "low (5.0) must not exceed high (1.0)"),
        ({"param_space": {"alpha": {"type": "float", "low": 0, "high": 1, "log": True}}}, "log-scaled range needs low > 0"),
        ({"param_space": {"fit_intercept": {"type": "categorical"}}}, "non-empty 'choices'"),
        ({"param_space": {"fit_intercept": {"type": "categorical", "choices": []}}}, "non-empty 'choices'"),
        ({"metric": "sharpe"}, "unknown metric 'sharpe'"),
        ({"fixed_params": {"alpha": 2.0}, "param_space": {"alpha": {"type": "float", "low": 1, "high": 3}}},
         "both in param_space and fixed_params"),
        ({"plugin_key": "ml.nope"}, "unknown model plugin 'ml.nope'"),
        ({"fixed_params": {"alpha": -1.0}, "param_space": {"fit_intercept": {"type": "categorical", "choices": [True]}}},
         "fixed_params.alpha: -1.0 is not a valid value"),
        ({"plugin_key": "ensemble.mean"}, "nothing to tune"),
        ({"cv": {"n_splits": 3, "purge": 0}}, "purge=0 is shorter than the target horizon"),
        ({"direction": "sideways"}, "direction"),
    ],
)
def test_invalid_requests_are_422_naming_the_problem(client: TestClient, dataset: dict, body: dict, needle: str) -> None:
    response = _tune(client, dataset, n_trials=2, **body)
    assert response.status_code == 422, response.text
    assert needle in response.text


def test_pydantic_422s_point_at_the_parameter(client: TestClient, dataset: dict) -> None:
    response = _tune(client, dataset, param_space={"alpha": {"type": "float", "low": 5, "high": 1}})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_input" and "body.param_space.alpha" in body["detail"]
    assert body["errors"][0]["loc"][-2:] == ["param_space", "alpha"]


def test_unknown_feature_ids_are_404(client: TestClient, dataset: dict) -> None:
    missing = str(uuid.uuid4())
    response = _tune(client, {**dataset, "feature_ids": [*dataset["feature_ids"], missing]}, n_trials=2)
    assert response.status_code == 404, response.text
    assert response.json()["detail"] == f"Unknown feature id(s): {missing}"


STACKING_MEMBERS = [{"plugin_key": "ml.ridge"}, {"plugin_key": "ml.ridge", "parameters": {"alpha": 100.0}}]


def test_a_refused_combination_fails_its_trial_not_the_study(client: TestClient, dataset: dict) -> None:
    # purge 0 with target_horizon 2 would leak: the plugin refuses it, only those trials fail
    response = _tune(
        client, {**dataset, "target_horizon": 2}, plugin_key="ensemble.stacking", n_trials=6, seed=1,
        param_space={"purge": {"type": "categorical", "choices": [2, 0]}}, fixed_params={"members": STACKING_MEMBERS},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    failed = [t for t in body["trials"] if t["state"] == "FAIL"]
    assert failed and body["n_failed"] == len(failed) and body["n_complete"] >= 1
    for trial in failed:
        assert trial["params"]["purge"] == 0 and trial["score"] is None
        assert "purge=0 is shorter than target_horizon=2" in trial["error"]
    assert body["best_params"]["purge"] == 2


def test_a_study_where_every_trial_fails_is_422_with_the_first_error(
    client: TestClient, dataset: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fit(self: Any, X: Any, y: Any) -> None:
        raise RuntimeError("solver diverged")

    monkeypatch.setattr(model_plugins.get("ml.ridge"), "fit", broken_fit)
    # the service function in this process: the API runs it in a worker, unpatched
    request = TuneRequest.model_validate({"plugin_key": "ml.ridge", "dataset": dataset, "cv": CV, "n_trials": 3})
    with pytest.raises(InvalidInput) as refused:
        tuner.tune(client.app.state.ctx, request)  # type: ignore[attr-defined]
    assert refused.value.status_code == 422
    assert "no trial of ml.ridge completed (3 failed, 0 pruned)" in refused.value.message
    assert "RuntimeError: solver diverged" in refused.value.message


def test_mlflow_has_a_parent_run_and_one_child_run_per_trial(client: TestClient, ridge_study: dict) -> None:
    settings = client.app.state.ctx.settings
    mlflow = MlflowClient(tracking_uri=settings.resolved_mlflow_tracking_uri)
    parent = mlflow.get_run(ridge_study["mlflow_parent_run_id"])
    assert parent.info.run_name == "tune:ml.ridge" and parent.info.status == "FINISHED"
    assert parent.data.tags["run_type"] == "tuning" and parent.data.tags["study_name"] == ridge_study["study_name"]
    assert parent.data.params["metric"] == "mean_mse" and parent.data.params["n_trials"] == "14"
    assert parent.data.params["direction"] == "minimize" and parent.data.params["seed"] == "0"
    assert parent.data.params["pruner"] == "percentile"  # the default
    assert parent.data.metrics["best_score"] == ridge_study["best_score"]
    assert parent.data.metrics["n_pruned"] == ridge_study["n_pruned"]

    children = mlflow.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=100
    )
    assert len(children) == ridge_study["n_trials"]
    by_number = {int(c.data.tags["trial_number"]): c for c in children}
    for trial in ridge_study["trials"]:
        child = by_number[trial["number"]]
        assert child.info.run_id == trial["mlflow_run_id"]
        assert child.data.tags["trial_state"] == trial["state"]
        assert float(child.data.params["alpha"]) == pytest.approx(trial["params"]["alpha"], rel=1e-12)
        assert child.data.metrics["score"] == trial["score"]
        history = mlflow.get_metric_history(child.info.run_id, "fold_mse")
        assert sorted(m.step for m in history) == list(range(trial["folds_evaluated"]))


# -- the service API: several workers, one study -----------------------------------------
def _request(dataset: dict, **fields: Any) -> TuneRequest:
    return TuneRequest.model_validate({"plugin_key": "ml.ridge", "dataset": dataset, "cv": CV, **fields})


def test_study_names_are_unique_and_unknown_studies_404(client: TestClient, dataset: dict) -> None:
    ctx = client.app.state.ctx
    request = _request(dataset, n_trials=1)
    name = tuner.create_study(ctx, request, f"test-{uuid.uuid4().hex}")
    with pytest.raises(Conflict):
        tuner.create_study(ctx, request, name)
    with pytest.raises(NotFound):
        tuner.run_trials(ctx, request, f"missing-{uuid.uuid4().hex}")


def test_cancelling_stops_the_study_for_every_worker(client: TestClient, dataset: dict) -> None:
    ctx = client.app.state.ctx
    request = _request(dataset, n_trials=10)
    name = tuner.create_study(ctx, request, f"test-{uuid.uuid4().hex}")
    calls: list[float] = []

    def cancel_after_two(fraction: float, message: str) -> None:
        calls.append(fraction)
        if len(calls) == 3:  # the initial report, then two trials
            raise Cancelled()

    with pytest.raises(Cancelled):
        tuner.run_trials(ctx, request, name, cancel_after_two)
    with pytest.raises(Cancelled):  # another worker: starts nothing, and its shard ends cancelled too
        tuner.run_trials(ctx, request, name)
    result = tuner.tune_result(ctx, request, name)
    assert result.stop_reason == "cancelled" and result.n_trials == 2


def _worker(settings: dict, request_json: str, study_name: str, barrier: Any, results: Any) -> None:
    from alphaforge.context import Context
    from alphaforge.settings import Settings

    ctx = Context.from_settings(Settings(**settings))
    finished: list[float] = []
    barrier.wait(timeout=120)
    tuner.run_trials(ctx, TuneRequest.model_validate_json(request_json), study_name,
                      lambda fraction, message: finished.append(fraction))
    results.put(len(finished) - 1)  # minus the initial "assembling" report
    ctx.close()


def _settings_values(settings: Settings) -> dict[str, Any]:
    """What a worker process needs to build the same Settings (secrets in clear)."""
    values = settings.model_dump(mode="json")
    for name in type(settings).model_fields:
        secret = getattr(settings, name)
        if isinstance(secret, SecretStr):
            values[name] = secret.get_secret_value()
    return values


def test_two_processes_share_one_study_and_run_exactly_n_trials(client: TestClient, dataset: dict) -> None:
    ctx = client.app.state.ctx
    request = _request(dataset, n_trials=12, seed=5)
    tuner.check_tune_request(ctx, request)
    name = tuner.create_study(ctx, request, f"shared-{uuid.uuid4().hex}")
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    settings = _settings_values(ctx.settings)
    workers = [
        spawn.Process(target=_worker, args=(settings, request.model_dump_json(), name, barrier, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    ran = sorted(results.get(timeout=10) for _ in workers)
    assert sum(ran) == 12 and ran[0] >= 1, ran  # both worked, and the budget held exactly

    result = tuner.tune_result(ctx, request, name)
    assert result.n_trials == 12 and [t.number for t in result.trials] == list(range(12))
    assert all(t.state in ("COMPLETE", "PRUNED") for t in result.trials)


def test_a_trial_numbered_past_the_budget_is_surplus_and_never_counted(
    client: TestClient, dataset: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race MaxTrialsCallback loses: another worker takes the last slot between our check and our ask."""
    import optuna

    ctx = client.app.state.ctx
    request = _request(dataset, n_trials=2)
    name = tuner.create_study(ctx, request, f"test-{uuid.uuid4().hex}")
    original_ask = optuna.Study.ask

    def racing_ask(study: optuna.Study, *args: Any, **kwargs: Any) -> optuna.Trial:
        if len(study.trials) == 1:  # another worker starts (and finishes) trial 1 right now
            other = original_ask(study)
            study.tell(other, 1.0)
        return original_ask(study, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "ask", racing_ask)
    tuner.run_trials(ctx, request, name)
    monkeypatch.undo()

    result = tuner.tune_result(ctx, request, name)
    assert result.n_trials == 2 and [t.number for t in result.trials] == [0, 1]
    stored = optuna.load_study(study_name=name, storage=ctx.settings.resolved_optuna_storage_url)
    assert [t.user_attrs.get("surplus", False) for t in stored.trials] == [False, False, True]


def test_studies_live_beside_our_tables_not_in_them(client: TestClient, ridge_study: dict) -> None:
    """Optuna's own alembic_version must not touch ours: a separate file, or a separate schema."""
    from sqlalchemy import inspect, text

    ctx = client.app.state.ctx
    ours = inspect(ctx.db.engine)
    assert "studies" not in ours.get_table_names() and "trials" not in ours.get_table_names()
    if ctx.db.engine.dialect.name == "sqlite":
        assert (ctx.settings.data_dir / "optuna.db").exists()
    else:
        assert {"studies", "trials", "alembic_version"} <= set(ours.get_table_names(schema="optuna"))
    with ctx.db.engine.connect() as conn:
        from alembic.script import ScriptDirectory

        from alphaforge.storage import migrate

        head = ScriptDirectory.from_config(migrate.alembic_config(ctx.settings.resolved_database_url)).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
