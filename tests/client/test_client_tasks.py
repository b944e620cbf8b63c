"""Long work through the client: task handles with progress bars, results made into what the
call promises, failures and cancellation as exceptions; predictions and out-of-fold
forecasts as DataFrames; tuning and evaluation."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest

from alphaforge.client import Client, Conflict, TaskCancelled, TaskFailed, WaitTimeout, dataset_spec
from served import fixtures
from support import ADMIN_KEY, LiveApi

live, af = fixtures()

START, END = "2012-01-01", "2019-01-01"
COLUMN = 'technical.rsi(column="close",period=14).rsi'  # a training names each column by its definition


@pytest.fixture(scope="module")
def rsi(af: Client) -> str:
    return af.features.create("RSI 14", "technical.rsi", {"period": 14})["id"]


def test_lightgbm_trained_asynchronously_with_a_progress_bar(af: Client, rsi: str) -> None:
    model = af.models.create("GSPC lightgbm", "lightgbm", {"num_leaves": 7, "n_estimators": 40})
    task = af.models.train_async(model["id"], dataset_spec([rsi], START, END, symbol="GSPC", target_horizon=5),
                                 {"method": "expanding", "n_splits": 3})
    assert task.kind == "train"
    stream = io.StringIO()
    report = task.wait(progress=True, file=stream)
    bar = stream.getvalue()
    assert "train: 100%" in bar and "|" in bar

    assert report["model_id"] == model["id"] and report["feature_columns"] == [COLUMN]
    folds = report["cv_metrics"]["folds"]
    assert len(folds) == 3 and all(f["n_test"] > 0 for f in folds)
    stored = af.models.get(model["id"])
    assert stored["version"] == report["version"] == 2 and stored["artifact_sha256"] == report["artifact_sha256"]

    out_of_fold = af.models.out_of_fold(model["id"])
    assert len(out_of_fold) == sum(f["n_test"] for f in folds)
    assert {"prediction", "target", "fold"} <= set(out_of_fold.columns) | set(out_of_fold.index.names)
    assert af.models.out_of_fold(uri=report["out_of_fold_uri"]).equals(out_of_fold)

    forecasts = af.models.predict(model["id"], "2018-01-01", "2019-01-01", symbol="GSPC")
    bars = af.market_data.bars("GSPC", "2018-01-01", "2019-01-01")
    assert list(forecasts.columns) == ["prediction"] and (forecasts.index == bars.index).all()
    assert forecasts["prediction"].notna().all() and forecasts["prediction"].nunique() > 1
    assert forecasts.attrs["model_id"] == model["id"] and forecasts.attrs["feature_columns"] == [COLUMN]


def test_a_failure_inside_the_task_raises_task_failed(af: Client, rsi: str) -> None:
    model = af.models.create("too short", "ridge")
    task = af.models.train_async(model["id"], dataset_spec([rsi], "2018-12-01", END, symbol="GSPC"))
    with pytest.raises(TaskFailed) as failed:
        task.wait(progress=False)
    assert not isinstance(failed.value, TaskCancelled)
    assert failed.value.error_type == "InvalidInput" and "aligned rows remain" in failed.value.message
    assert task.status == "FAILURE" and failed.value.task_id == task.id


def test_cancel_a_running_training(af: Client) -> None:
    returns = af.features.create("returns", "statistical.returns")["id"]
    model = af.models.create("slow forest", "random_forest", {"n_estimators": 300, "min_samples_leaf": 1})
    task = af.models.train_async(model["id"], dataset_spec([returns], START, END, symbol="GSPC"),
                                 {"n_splits": 8, "test_size": 0.1})
    with pytest.raises(WaitTimeout):
        task.wait(progress=False, timeout=0)  # not finished at once: the wait gives up, the task goes on
    deadline = time.monotonic() + 120
    while task.refresh()["status"] == "PENDING":
        assert time.monotonic() < deadline, task.info
        time.sleep(0.1)
    assert task.cancel()["status"] in {"STARTED", "REVOKED"}
    with pytest.raises(TaskCancelled):
        task.wait(progress=False)
    assert task.status == "REVOKED"
    assert af.models.get(model["id"])["artifact_uri"] is None  # nothing recorded
    with pytest.raises(Conflict) as finished:
        af.tasks.cancel(task.id)
    assert finished.value.code == "conflict"
    listed = af.tasks.list(kind="train", status="REVOKED")
    assert task.id in [t["task_id"] for t in listed]


def test_tune_asynchronously_then_evaluate_the_winner_as_money(af: Client, rsi: str) -> None:
    task = af.models.tune_async(plugin_key="ml.ridge", dataset=dataset_spec([rsi], START, END, symbol="GSPC"),
                                n_trials=3, cv={"n_splits": 2}, seed=1)
    stream = io.StringIO()
    study = task.wait(file=stream)
    assert "tune: 100%" in stream.getvalue()
    assert study["n_trials"] == 3 and len(study["trials"]) == 3
    best = min((t for t in study["trials"] if t["state"] == "COMPLETE"), key=lambda t: t["score"])
    assert study["best_trial"] == best["number"] and study["best_score"] == best["score"]

    # the same task, attached by id as another process would: its raw result
    assert af.tasks.handle(task.id).wait(progress=False)["study_name"] == study["study_name"]

    forecasts = af.models.out_of_fold(uri=best["out_of_fold_uri"])
    evaluation = af.evaluations.evaluate(out_of_fold_uri=best["out_of_fold_uri"], horizon=1)
    summary = evaluation["summary"]
    assert np.isfinite(summary["sharpe"]) and 0 < summary["n_periods"] <= len(forecasts)
    assert len(evaluation["periods"]) == summary["n_periods"]


def test_automl_asynchronously_ranks_the_candidates(af: Client, rsi: str) -> None:
    task = af.models.automl_async(dataset=dataset_spec([rsi], START, END, symbol="GSPC"), cv={"n_splits": 2},
                                  candidates={"ml.ridge": {}, "ml.lightgbm": {"n_estimators": 20, "num_leaves": 5}})
    stream = io.StringIO()
    board = task.wait(file=stream)
    assert "automl: 100%" in stream.getvalue()
    rows = board["leaderboard"]
    assert sorted(r["plugin_key"] for r in rows) == ["ml.lightgbm", "ml.ridge"] and [r["rank"] for r in rows] == [1, 2]
    assert rows[0]["score"] <= rows[1]["score"] and board["best"] == rows[0]  # mean_mse: lower is better

def test_the_readme_session_from_python_runs_as_written(live: LiveApi, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### From Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "admin-api-key").write_text(ADMIN_KEY + "\n")  # where `make run` writes it
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALPHAFORGE_URL", live.base_url)
    monkeypatch.delenv("ALPHAFORGE_API_KEY", raising=False)
    session: dict = {}
    exec(compile(code, "README.md (From Python)", "exec"), session)
    assert len(session["frame"]) == 2264 and list(session["frame"].columns) == ["rsi"]
    assert len(session["report"]["cv_metrics"]["folds"]) == 5
    assert len(session["forecasts"]) == 251 and session["forecasts"]["prediction"].notna().all()  # GSPC's 2018 bars
    assert len(session["oof"]) == sum(f["n_test"] for f in session["report"]["cv_metrics"]["folds"])
