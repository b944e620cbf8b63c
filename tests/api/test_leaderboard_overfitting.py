"""Overfitting statistics on every leaderboard (issue 15), on both backends.

Every figure is recomputed independently from the trials' (rows') stored forecasts read back
through the API: the sign strategy on GSPC with pandas (position sign(prediction) at every
horizon-th date, net = gross - cost * |change of position|), the Sharpe ratios, skew and
kurtosis with numpy/scipy, PSR and DSR by the papers' formulas with scipy.stats.norm, and the
PBO by a brute-force itertools CSCV over the matrix of returns rebuilt here."""

from __future__ import annotations

import io
import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from scipy import stats

from conftest import post_features

HORIZON = 5
CV = {"method": "expanding", "n_splits": 3, "test_size": 0.15}
COST_BPS = 5.0
N_BLOCKS = 8
SIGNAL = {"cost_bps": COST_BPS, "n_blocks": N_BLOCKS}
PERIODS = 252 / HORIZON
EULER_GAMMA = 0.5772156649015329


@pytest.fixture(scope="module")
def dataset(client: TestClient) -> dict[str, Any]:
    ids = post_features(client, [("technical.rsi", {"period": 14}), ("technical.roc", {"period": 20})])
    return {"feature_ids": ids, "symbol": "GSPC", "start_date": "2012-01-01", "end_date": "2019-01-01",
            "target_horizon": HORIZON}


def _tune(client: TestClient, dataset: dict, **body: Any) -> dict:
    response = client.post("/api/v1/models/tune", json={
        "plugin_key": "ml.ridge", "dataset": dataset, "cv": CV, "seed": 3, "signal": SIGNAL, **body})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def study(client: TestClient, dataset: dict) -> dict:
    return _tune(client, dataset, n_trials=5, pruner="none")


# -- the independent computations -------------------------------------------------------------
def _forecasts(client: TestClient, uri: str) -> pd.DataFrame:
    response = client.get("/api/v1/models/out-of-fold", params={"uri": uri, "format": "parquet"})
    assert response.status_code == 200, response.text
    return pd.read_parquet(io.BytesIO(response.content)).reset_index()


def _net(frame: pd.DataFrame, cost_bps: float = COST_BPS) -> pd.Series:
    """The sign strategy's per-period net returns, with pandas."""
    by_date = frame.set_index("timestamp").sort_index()
    rebalance = by_date.iloc[::HORIZON]
    position = np.sign(rebalance["prediction"])
    gross = position * rebalance["forward_return"]
    turnover = position.diff().abs().fillna(position.abs())
    return gross - cost_bps / 1e4 * turnover


def _sharpe(r: pd.Series) -> float:
    return float(r.mean() / r.std(ddof=1))


def _psr(r: pd.Series, benchmark: float) -> float:
    sr, t = _sharpe(r), len(r)
    g3, g4 = stats.skew(r, bias=True), stats.kurtosis(r, fisher=False, bias=True)
    return float(stats.norm.cdf((sr - benchmark) * math.sqrt(t - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)))


def _sr0(n: int, variance: float) -> float:
    if n == 1:
        return 0.0
    return math.sqrt(variance) * ((1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / n)
                                  + EULER_GAMMA * stats.norm.ppf(1 - 1 / (n * math.e)))


def _pbo(matrix: np.ndarray, n_blocks: int) -> float:
    """CSCV by brute force: every half of the blocks in sample, the in-sample best's out-of-sample rank."""
    blocks = np.array_split(np.arange(len(matrix)), n_blocks)
    n = matrix.shape[1]
    overfit = total = 0
    for chosen in itertools.combinations(range(n_blocks), n_blocks // 2):
        rows_is = np.concatenate([blocks[b] for b in chosen])
        rows_oos = np.concatenate([blocks[b] for b in range(n_blocks) if b not in chosen])
        sr_is = matrix[rows_is].mean(axis=0) / matrix[rows_is].std(axis=0, ddof=1)
        sr_oos = matrix[rows_oos].mean(axis=0) / matrix[rows_oos].std(axis=0, ddof=1)
        best = int(np.argmax(sr_is))
        w = stats.rankdata(sr_oos)[best] / (n + 1)
        overfit += math.log(w / (1 - w)) <= 0
        total += 1
    return overfit / total


# -- tuning -------------------------------------------------------------------------------------
def test_every_complete_trial_reports_its_net_sharpe(client: TestClient, study: dict) -> None:
    assert study["n_complete"] == 5
    for trial in study["trials"]:
        net = _net(_forecasts(client, trial["out_of_fold_uri"]))
        assert trial["net_sharpe"] == pytest.approx(_sharpe(net) * math.sqrt(PERIODS), rel=1e-9)
    assert len({round(t["net_sharpe"], 12) for t in study["trials"]}) > 1  # the trials differ


def test_the_best_trial_is_deflated_over_the_study_and_its_pbo_is_cscvs(client: TestClient, study: dict) -> None:
    block = study["overfitting"]
    nets = {t["number"]: _net(_forecasts(client, t["out_of_fold_uri"])) for t in study["trials"]}
    sharpes = np.array([_sharpe(r) for r in nets.values()])
    variance = float(sharpes.var(ddof=1))
    winner = nets[study["best_trial"]]
    assert block["best_trial"] == study["best_trial"] and block["n_trials"] == 5
    assert block["trial_sharpe_variance"] == pytest.approx(variance, rel=1e-9)
    assert block["best_sharpe_per_period"] == pytest.approx(_sharpe(winner), rel=1e-9)
    assert block["best_net_sharpe"] == pytest.approx(_sharpe(winner) * math.sqrt(PERIODS), rel=1e-9)
    assert block["skew"] == pytest.approx(stats.skew(winner, bias=True), rel=1e-9)
    assert block["kurtosis"] == pytest.approx(stats.kurtosis(winner, fisher=False, bias=True), rel=1e-9)
    sr0 = _sr0(5, variance)
    assert block["expected_max_sharpe"] == pytest.approx(sr0, rel=1e-9)
    assert block["probabilistic_sharpe"] == pytest.approx(_psr(winner, 0.0), rel=1e-9)
    assert block["deflated_sharpe"] == pytest.approx(_psr(winner, sr0), rel=1e-9)
    assert block["deflated_sharpe"] < block["probabilistic_sharpe"]  # selection costs confidence

    matrix = pd.concat(nets, axis=1, join="inner").sort_index()
    assert block["n_periods"] == len(matrix) == len(winner) and block["n_blocks"] == N_BLOCKS
    assert block["pbo"] == pytest.approx(_pbo(matrix.to_numpy(), N_BLOCKS), abs=1e-12)
    assert block["pbo_note"] is None and block["note"] is None


def test_each_figure_is_logged_with_the_studys_parent_run(client: TestClient, study: dict) -> None:
    settings = client.app.state.ctx.settings  # type: ignore[attr-defined]
    parent = MlflowClient(tracking_uri=settings.resolved_mlflow_tracking_uri).get_run(study["mlflow_parent_run_id"])
    block = study["overfitting"]
    for name in ("n_trials", "trial_sharpe_variance", "best_net_sharpe", "skew", "kurtosis", "probabilistic_sharpe",
                 "deflated_sharpe", "pbo", "n_blocks", "n_periods"):
        assert parent.data.metrics[f"overfitting.{name}"] == pytest.approx(block[name], rel=1e-12), name
    assert parent.data.params["signal.cost_bps"] == str(COST_BPS) and parent.data.params["signal.n_blocks"] == str(N_BLOCKS)


def test_tuning_on_net_sharpe_picks_the_trial_with_the_best_net_sharpe_and_never_prunes(
    client: TestClient, dataset: dict
) -> None:
    body = _tune(client, dataset, n_trials=7, metric="net_sharpe")  # the median pruner would start after 5
    assert body["metric"] == "net_sharpe" and body["direction"] == "maximize"
    assert body["n_pruned"] == 0 and body["n_complete"] == 7
    for trial in body["trials"]:
        assert trial["score"] == trial["net_sharpe"]
        net = _net(_forecasts(client, trial["out_of_fold_uri"]))
        assert trial["score"] == pytest.approx(_sharpe(net) * math.sqrt(PERIODS), rel=1e-9)
    best = max(body["trials"], key=lambda t: (t["net_sharpe"], -t["number"]))
    assert body["best_trial"] == best["number"] and body["best_score"] == best["net_sharpe"]
    assert body["overfitting"]["best_trial"] == best["number"]


def test_pbo_is_null_with_a_reason_for_one_trial_or_fewer_periods_than_blocks(
    client: TestClient, dataset: dict
) -> None:
    one = _tune(client, dataset, n_trials=1)["overfitting"]
    assert one["pbo"] is None and "at least 2 trials" in one["pbo_note"]
    assert one["n_trials"] == 1 and one["trial_sharpe_variance"] == 0.0
    assert one["deflated_sharpe"] == pytest.approx(one["probabilistic_sharpe"], rel=1e-12)  # SR0 = 0: no selection

    short = {**dataset, "start_date": "2017-01-01"}
    few = _tune(client, short, n_trials=2, pruner="none", signal={"n_blocks": 64})["overfitting"]
    assert few["n_periods"] < 64 and few["pbo"] is None and "n_blocks=64" in few["pbo_note"]
    assert few["deflated_sharpe"] is not None


@pytest.mark.parametrize("signal", [{"n_blocks": 7}, {"n_blocks": 66}, {"cost_bps": -1}, {"weighting": "value"}])
def test_a_bad_signal_is_a_422(client: TestClient, dataset: dict, signal: dict) -> None:
    response = client.post("/api/v1/models/tune", json={"plugin_key": "ml.ridge", "dataset": dataset, "signal": signal})
    assert response.status_code == 422, response.text
    assert "signal" in response.json()["detail"], response.text


def test_deflated_sharpe_is_a_leaderboard_metric_not_a_study_one(client: TestClient, dataset: dict) -> None:
    response = client.post("/api/v1/models/tune", json={"plugin_key": "ml.ridge", "dataset": dataset,
                                                        "metric": "deflated_sharpe"})
    assert response.status_code == 422 and "net_sharpe" in response.text, response.text


# -- AutoML -------------------------------------------------------------------------------------
UNTUNED = {
    "ml.ridge": {"alpha": 10.0, "fit_intercept": True},
    "ensemble.mean": {},
    "ml.random_forest": {"n_estimators": 8, "max_depth": 3, "min_samples_leaf": 20, "max_features": 1.0},
}


def _automl(client: TestClient, dataset: dict, candidates: dict, **body: Any) -> dict:
    response = client.post("/api/v1/models/automl", json={
        "dataset": dataset, "cv": CV, "candidates": candidates, "seed": 4, "signal": SIGNAL, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_automl_ranks_rows_by_their_deflated_sharpe(client: TestClient, dataset: dict) -> None:
    body = _automl(client, dataset, UNTUNED, metric="deflated_sharpe")
    assert body["metric"] == "deflated_sharpe" and body["direction"] == "maximize"
    rows = body["leaderboard"]
    assert [r["error"] for r in rows] == [None] * 3
    nets = [_net(_forecasts(client, r["out_of_fold_uri"])) for r in rows]
    sharpes = np.array([_sharpe(r) for r in nets])
    n, variance = 3, float(sharpes.var(ddof=1))
    sr0 = _sr0(n, variance)
    expected = [_psr(r, sr0) for r in nets]
    for row, net, dsr in zip(rows, nets, expected, strict=True):
        assert row["score"] == row["deflated_sharpe"] == pytest.approx(dsr, rel=1e-9)
        assert row["net_sharpe"] == pytest.approx(_sharpe(net) * math.sqrt(PERIODS), rel=1e-9)
    assert expected == sorted(expected, reverse=True)

    block = body["overfitting"]
    assert block["best_plugin_key"] == rows[0]["plugin_key"] == body["best"]["plugin_key"]
    assert block["n_trials"] == n and block["trial_sharpe_variance"] == pytest.approx(variance, rel=1e-9)
    assert block["deflated_sharpe"] == pytest.approx(expected[0], rel=1e-9)
    assert block["probabilistic_sharpe"] == pytest.approx(_psr(nets[0], 0.0), rel=1e-9)
    matrix = pd.concat(nets, axis=1, join="inner").sort_index().to_numpy()
    assert block["pbo"] == pytest.approx(_pbo(matrix, N_BLOCKS), abs=1e-12)

    settings = client.app.state.ctx.settings  # type: ignore[attr-defined]
    run = MlflowClient(tracking_uri=settings.resolved_mlflow_tracking_uri).get_run(body["mlflow_run_id"])
    for name in ("n_trials", "deflated_sharpe", "probabilistic_sharpe", "pbo"):
        assert run.data.metrics[f"overfitting.{name}"] == pytest.approx(block[name], rel=1e-12), name
    assert run.data.tags["best_plugin_key"] == rows[0]["plugin_key"] and run.data.tags["kind"] == "automl"
    assert run.data.metrics[f"leaderboard.1.{rows[0]['plugin_key']}"] == pytest.approx(rows[0]["score"], rel=1e-12)


def test_automl_counts_every_tuned_trial_and_every_untuned_candidate(client: TestClient, dataset: dict) -> None:
    body = _automl(client, dataset, {"ml.ridge": {"fit_intercept": True}, "ensemble.mean": {}}, n_trials=3,
                   metric="deflated_sharpe")  # the tuned candidate's study optimises net_sharpe
    scores = [r["score"] for r in body["leaderboard"]]
    assert scores == sorted(scores, reverse=True) == [r["deflated_sharpe"] for r in body["leaderboard"]]
    rows = {r["plugin_key"]: r for r in body["leaderboard"]}
    assert rows["ml.ridge"]["n_trials"] == 3 and rows["ensemble.mean"]["n_trials"] == 0
    block = body["overfitting"]
    assert block["n_trials"] == 3 + 1  # the ridge study's three trials and the untuned mean
    assert body["best"]["rank"] == 1 and block["best_plugin_key"] == body["best"]["plugin_key"]
    winner = _net(_forecasts(client, body["best"]["out_of_fold_uri"]))
    sr0 = _sr0(4, block["trial_sharpe_variance"])
    assert block["deflated_sharpe"] == pytest.approx(_psr(winner, sr0), rel=1e-9)
    for row in body["leaderboard"]:
        net = _net(_forecasts(client, row["out_of_fold_uri"]))
        assert row["deflated_sharpe"] == pytest.approx(_psr(net, sr0), rel=1e-9)
