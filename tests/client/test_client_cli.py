"""The CLI's HTTP commands (``alphaforge features|models|tune|tasks``) run in-process as a
user runs them, against a running service: tables, ``--json``, ``--wait`` with progress
bars on stderr, exit statuses."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pandas as pd
import pytest

from alphaforge.cli import main
from alphaforge.client import Client
from served import fixtures
from support import ADMIN_KEY, LiveApi, free_port

live, af = fixtures()

TRAINING = ["--symbol", "GSPC", "--start", "2012-01-01", "--end", "2019-01-01", "--splits", "2"]


@pytest.fixture
def env(live: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAFORGE_URL", live.base_url)
    monkeypatch.setenv("ALPHAFORGE_API_KEY", ADMIN_KEY)


def run(capsys: pytest.CaptureFixture[str], *argv: str, status: int = 0) -> tuple[str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == status, f"exit {code}\nstdout: {out}\nstderr: {err}"
    return out, err


def _feature(capsys: pytest.CaptureFixture[str], period: int) -> dict:
    out, _ = run(capsys, "features", "create", "--name", f"cli RSI {period}", "--plugin", "technical.rsi",
                 "--param", f"period={period}", "--json")
    return json.loads(out)


def test_features_create_list_and_generate_with_wait(env: None, af: Client, capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    feature = _feature(capsys, 14)
    assert feature["plugin_key"] == "technical.rsi" and feature["parameters"] == {"period": 14}

    out, _ = run(capsys, "features", "list")
    header, *rows = out.splitlines()
    assert header.split() == ["id", "name", "plugin", "parameters", "version", "created"]
    row = next(r for r in rows if r.startswith(feature["id"]))
    assert "cli RSI 14" in row and "technical.rsi" in row and '{"period":14}' in row
    listed = json.loads(run(capsys, "features", "list", "--json")[0])
    assert feature["id"] in [f["id"] for f in listed]

    output = tmp_path / "rsi.parquet"
    out, err = run(capsys, "features", "generate", feature["id"], "--symbol", "GSPC", "--start", "2010-01-01",
                   "--end", "2019-01-01", "--wait", "--output", str(output))
    assert "generate: 100%" in err  # the progress bar, on stderr
    assert "GSPC 1d 2010-01-01 .. 2019-01-01, 2264 rows, columns rsi" in out and "computed now" in out
    written = pd.read_parquet(output)
    dataset_id = af.features.versions(feature["id"], "GSPC")[0]["id"]
    pd.testing.assert_frame_equal(written, af.features.dataset(feature["id"], dataset_id))

    again = json.loads(run(capsys, "features", "generate", feature["id"], "--symbol", "GSPC", "--start", "2010-01-01",
                           "--end", "2019-01-01", "--wait", "--json", "--quiet")[0])
    assert again["cached"] is True and again["dataset"]["id"] == dataset_id and again["dataset"]["row_count"] == 2264


def test_models_create_and_train_with_wait_as_a_table_and_as_json(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    feature = _feature(capsys, 10)
    model = json.loads(run(capsys, "models", "create", "--name", "cli lightgbm", "--type", "lightgbm",
                           "--param", "num_leaves=7", "--param", "n_estimators=30", "--json")[0])
    assert model["plugin_key"] == "ml.lightgbm" and model["parameters"] == {"num_leaves": 7, "n_estimators": 30}

    out, err = run(capsys, "models", "train", model["id"], "--features", feature["id"], *TRAINING, "--wait")
    assert "train: 100%" in err
    lines = out.splitlines()
    assert lines[0].startswith(f"trained model {model['id']} (version 2)")
    assert lines[1].split() == ["fold", "train", "test", "n_test", "mse", "baseline_mse", "ic", "direction"]
    assert [line.split()[0] for line in lines[2:4]] == ["0", "1"] and "baseline" in lines[4]

    report = json.loads(run(capsys, "models", "train", model["id"], "--features", feature["id"], *TRAINING,
                            "--wait", "--json", "--quiet")[0])
    assert len(report["cv_metrics"]["folds"]) == 2 and report["version"] == 3

    out, _ = run(capsys, "models", "list")
    row = next(r for r in out.splitlines() if r.startswith(model["id"]))
    assert "ml.lightgbm" in row and " 3 " in row  # version 3, after two trainings


def test_tune_with_wait_and_a_submitted_tune_watched_by_id(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    feature = _feature(capsys, 8)
    tune = ["tune", "--plugin", "ml.ridge", "--trials", "2", "--features", feature["id"], *TRAINING]
    study = json.loads(run(capsys, *tune, "--wait", "--json")[0])
    assert study["n_trials"] == 2 and study["plugin_key"] == "ml.ridge" and len(study["trials"]) == 2

    out, _ = run(capsys, *tune, "--seed", "3")  # no --wait: the task id and how to follow it
    task_id = out.split()[3].rstrip(";")
    assert out.startswith(f"submitted tune task {task_id}") and f"alphaforge tasks watch {task_id}" in out
    out, err = run(capsys, "tasks", "watch", task_id)
    assert "tune: 100%" in err
    assert "2 complete, 0 pruned, 0 failed" in out and "best trial" in out
    assert out.splitlines()[1].split() == ["trial", "state", "score", "params", "seconds"]
    watched = json.loads(run(capsys, "tasks", "watch", task_id, "--json", "--quiet")[0])
    assert watched["task_id"] == task_id and watched["status"] == "SUCCESS" and watched["result"]["n_trials"] == 2

    out, _ = run(capsys, "tasks", "list", "--kind", "tune")
    assert out.splitlines()[0].split() == ["task_id", "kind", "status", "progress", "submitted", "message"]
    assert any(r.startswith(task_id) and "SUCCESS" in r and "100%" in r for r in out.splitlines()[1:])


def test_failures_and_refusals_exit_with_the_reason(env: None, live: LiveApi, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _, err = run(capsys, "features", "generate", str(uuid.uuid4()), "--symbol", "GSPC", "--start", "2010-01-01",
                 "--end", "2019-01-01", "--wait", status=2)
    assert "error: Feature not found (404 not_found)" in err

    feature = _feature(capsys, 5)
    _, err = run(capsys, "features", "generate", feature["id"], "--symbol", "GSPC", "--start", "2010-01-01",
                 "--end", "2019-01-01", "--output", "rsi.parquet", status=2)
    assert "--output needs --wait" in err
    model = json.loads(run(capsys, "models", "create", "--name", "short", "--type", "ridge", "--json")[0])
    _, err = run(capsys, "models", "train", model["id"], "--features", feature["id"], "--symbol", "GSPC",
                 "--start", "2018-12-01", "--end", "2019-01-01", "--wait", "--quiet", status=1)
    assert "failed: InvalidInput" in err and "aligned rows remain" in err

    _, err = run(capsys, "tasks", "cancel", str(uuid.uuid4()), status=2)
    assert "Task not found (404 not_found)" in err

    # flags win over the environment
    monkeypatch.setenv("ALPHAFORGE_API_KEY", "af_wrong")
    assert "401 unauthorized" in run(capsys, "features", "list", status=2)[1]
    assert run(capsys, "features", "list", "--api-key", ADMIN_KEY)[0].startswith("id")
    nowhere = f"http://127.0.0.1:{free_port()}"
    assert f"cannot reach alphaforge at {nowhere}" in run(capsys, "features", "list", "--url", nowhere, status=2)[1]
