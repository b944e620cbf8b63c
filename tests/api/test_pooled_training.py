"""Pooled training on panels (issue 13), on both backends, checked independently.

The reference is built here from skfolio's own copy of the SP20 closes: RSI and ROC by
TA-Lib, forward returns from the closes, the fold's rows chosen from the dates the response
reports, scikit-learn's StandardScaler + Ridge fitted on them, and each test date's IC and
rank IC computed with scipy — nothing is read back from the service but the fold spans.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import talib
from fastapi.testclient import TestClient
from scipy import stats
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from conftest import app_client, post_features

START, END, HORIZON = "2012-01-01", "2020-01-01", 5
FEATURES = [("technical.rsi", {"period": 14}), ("technical.roc", {"period": 20})]
CV = {"method": "expanding", "n_splits": 3, "test_size": 0.15}


@pytest.fixture(scope="module")
def feature_ids(client: TestClient) -> list[str]:
    return post_features(client, FEATURES)


def _model(client: TestClient, model_type: str, family: str, parameters: dict | None = None) -> str:
    response = client.post(
        "/api/v1/models", json={"name": f"pooled {model_type}", "model_type": model_type, "family": family,
                                "parameters": parameters or {}},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _train(client: TestClient, model_id: str, feature_ids: list[str], **dataset: object) -> object:
    source = {} if {"symbol", "symbols", "universe"} & dataset.keys() else {"universe": "SP20"}
    body = {"feature_ids": feature_ids, "start_date": START, "end_date": END, "target_horizon": HORIZON,
            **source, **dataset}
    return client.post(f"/api/v1/models/{model_id}/train", json={"dataset": body, "cv": CV})


def reference_panel(closes: pd.DataFrame, transform: str = "raw", start_date: str = START, end_date: str = END) -> pd.DataFrame:
    """(timestamp, symbol) rows with complete features and target, sorted, from the closes."""
    start, end = pd.Timestamp(start_date, tz="UTC"), pd.Timestamp(end_date, tz="UTC")
    frames = []
    for symbol in closes.columns:
        close = closes[symbol].dropna()
        values = close.to_numpy()
        frame = pd.DataFrame(
            {"rsi": talib.RSI(values, timeperiod=14), "roc": talib.ROC(values, timeperiod=20)}, index=close.index
        )
        in_range = close[(close.index >= start) & (close.index < end)]
        frame["target"] = (in_range.shift(-HORIZON) / in_range - 1.0).reindex(frame.index)
        frame = frame[(frame.index >= start) & (frame.index < end)]
        frames.append(frame.assign(symbol=symbol).set_index("symbol", append=True))
    panel = pd.concat(frames).dropna().sort_index()
    if transform == "rank":
        panel["target"] = panel.groupby(level=0)["target"].transform(
            lambda x: (stats.rankdata(x) - 1) / (len(x) - 1) if len(x) > 1 else 0.5
        )
    return panel


def per_date_ic(frame: pd.DataFrame) -> tuple[list[float], list[float]]:
    """Pearson and Spearman IC of each date, by scipy, skipping dates without one."""
    ics, rank_ics = [], []
    for _, day in frame.groupby(level=0):
        if len(day) < 2 or day["prediction"].nunique() < 2 or day["target"].nunique() < 2:
            continue
        ics.append(stats.pearsonr(day["prediction"], day["target"])[0])
        rank_ics.append(stats.spearmanr(day["prediction"], day["target"])[0])
    return ics, rank_ics


def summary(values: list[float]) -> tuple[float, float, float, float]:
    mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
    return mean, std, mean / std, mean / std * math.sqrt(len(values))


@pytest.fixture(scope="module")
def ridge_run(client: TestClient, feature_ids: list[str]) -> dict:
    model_id = _model(client, "ridge", "machine_learning", {"alpha": 3.0})
    response = _train(client, model_id, feature_ids)
    assert response.status_code == 200, response.text
    return {"model_id": model_id, **response.json()}


def test_each_folds_ic_and_rank_ic_per_date_equal_an_independent_computation(
    ridge_run: dict, closes: pd.DataFrame
) -> None:
    panel = reference_panel(closes)
    assert ridge_run["n_train_rows"] == len(panel)
    dates = panel.index.get_level_values(0)
    tested = []
    for fold in ridge_run["cv_metrics"]["folds"]:
        train = panel[dates <= pd.Timestamp(fold["train_end"])]
        test = panel[(dates >= pd.Timestamp(fold["test_start"])) & (dates <= pd.Timestamp(fold["test_end"]))].copy()
        assert (fold["n_train"], fold["n_test"]) == (len(train), len(test))
        scaler = StandardScaler().fit(train[["rsi", "roc"]].to_numpy())
        ridge = Ridge(alpha=3.0).fit(scaler.transform(train[["rsi", "roc"]].to_numpy()), train["target"].to_numpy())
        test["prediction"] = ridge.predict(scaler.transform(test[["rsi", "roc"]].to_numpy()))
        tested.append(test)
        ics, rank_ics = per_date_ic(test)
        assert fold["cs_n_dates"] == len(ics) == fold["n_test_dates"]
        for prefix, values in (("cs_ic", ics), ("cs_rank_ic", rank_ics)):
            mean, std, ir, t_stat = summary(values)
            got = [fold[prefix], fold[f"{prefix}_std"], fold[f"{prefix}ir"], fold[f"{prefix}_t_stat"]]
            np.testing.assert_allclose(got, [mean, std, ir, t_stat], rtol=1e-6, atol=1e-9)
        pooled = stats.spearmanr(test["prediction"], test["target"])[0]
        assert fold["rank_ic"] == pytest.approx(pooled, rel=1e-6, abs=1e-9)
    # the summary's per-date statistics run over every fold's test dates together
    ics, rank_ics = per_date_ic(pd.concat(tested))
    mean, std, ir, t_stat = summary(rank_ics)
    result = ridge_run["cv_metrics"]["summary"]
    np.testing.assert_allclose(
        [result["cs_rank_ic"], result["cs_rank_ic_std"], result["cs_rank_icir"], result["cs_rank_ic_t_stat"]],
        [mean, std, ir, t_stat], rtol=1e-6, atol=1e-9,
    )
    assert result["cs_n_dates"] == len(rank_ics)


def test_folds_split_by_date_and_purge_the_horizon_in_calendar_dates(ridge_run: dict, closes: pd.DataFrame) -> None:
    calendar = reference_panel(closes).index.get_level_values(0).unique()
    previous_test_end = None
    for fold in ridge_run["cv_metrics"]["folds"]:
        train_end = calendar.get_loc(pd.Timestamp(fold["train_end"]))
        test_start = calendar.get_loc(pd.Timestamp(fold["test_start"]))
        assert test_start - train_end - 1 == HORIZON  # exactly the purge: h dates dropped
        if previous_test_end is not None:
            assert test_start == previous_test_end + 1  # back-anchored, disjoint, adjacent
        previous_test_end = calendar.get_loc(pd.Timestamp(fold["test_end"]))
        assert fold["n_test"] == 20 * fold["n_test_dates"]  # every member of a test date is tested


def test_the_lineage_records_the_panel_and_each_features_panel_dataset(client: TestClient, ridge_run: dict) -> None:
    model = client.get(f"/api/v1/models/{ridge_run['model_id']}").json()
    lineage = model["lineage"]
    assert lineage["dataset"]["universe"] == "SP20" and "symbol" not in lineage["dataset"]
    assert lineage["panel"]["n_symbols"] == 20 and lineage["panel"]["calendar_horizon"] == HORIZON
    assert lineage["cv"]["purge"] == HORIZON
    for feature in lineage["features"]:
        panels = client.get(f"/api/v1/features/{feature['feature_id']}/panels").json()
        assert feature["dataset_version_hash"] in {p["version_hash"] for p in panels}


def test_a_pooled_model_predicts_any_member(client: TestClient, ridge_run: dict) -> None:
    response = client.post(
        f"/api/v1/models/{ridge_run['model_id']}/predict",
        json={"symbol": "KO", "start_date": "2019-06-01", "end_date": "2019-07-01"},
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 20  # trading days of June 2019


def test_a_universe_forecast_over_the_row_limit_is_a_422_and_one_under_it_answers(
    client: TestClient, ridge_run: dict
) -> None:
    """Another app on the same database and store, allowing 30 rows: SP20 over June 2019
    (20 members x 20 days) is refused with what to change; one member's 20 rows answer."""
    settings = client.app.state.ctx.settings.model_copy(update={"max_predict_rows": 30})
    june = {"start_date": "2019-06-01", "end_date": "2019-07-01"}
    with app_client(settings) as small:
        refused = small.post(f"/api/v1/models/{ridge_run['model_id']}/predict", json={"universe": "SP20", **june})
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"]
        assert "over the 30 an answer may hold (ALPHAFORGE_MAX_PREDICT_ROWS)" in detail and "shorter range" in detail
        one = small.post(f"/api/v1/models/{ridge_run['model_id']}/predict", json={"symbols": ["KO"], **june})
        assert one.status_code == 200, one.text
        assert len(one.json()["predictions"]) == 20 and set(one.json()["symbols"]) == {"KO"}


def test_a_ranked_target_is_ranked_across_symbols_per_date(
    client: TestClient, feature_ids: list[str], closes: pd.DataFrame
) -> None:
    model_id = _model(client, "ridge", "machine_learning", {"alpha": 3.0})
    response = _train(client, model_id, feature_ids, target_transform="rank")
    assert response.status_code == 200, response.text
    panel = reference_panel(closes, transform="rank")
    fold = response.json()["cv_metrics"]["folds"][0]
    train = panel[panel.index.get_level_values(0) <= pd.Timestamp(fold["train_end"])]
    test = panel[(panel.index.get_level_values(0) >= pd.Timestamp(fold["test_start"]))
                 & (panel.index.get_level_values(0) <= pd.Timestamp(fold["test_end"]))]
    scaler = StandardScaler().fit(train[["rsi", "roc"]].to_numpy())
    ridge = Ridge(alpha=3.0).fit(scaler.transform(train[["rsi", "roc"]].to_numpy()), train["target"].to_numpy())
    predicted = ridge.predict(scaler.transform(test[["rsi", "roc"]].to_numpy()))
    assert fold["mse"] == pytest.approx(float(np.mean((predicted - test["target"].to_numpy()) ** 2)), rel=1e-6)


def test_a_symbols_list_trains_on_those_symbols_only(client: TestClient, feature_ids: list[str]) -> None:
    model_id = _model(client, "lightgbm", "machine_learning", {"n_estimators": 20})
    response = _train(client, model_id, feature_ids, symbols=["aapl", "KO", "XOM"])
    assert response.status_code == 200, response.text
    for fold in response.json()["cv_metrics"]["folds"]:
        assert fold["n_test"] == 3 * fold["n_test_dates"] and fold["cs_n_dates"] <= fold["n_test_dates"]
    lineage = client.get(f"/api/v1/models/{model_id}").json()["lineage"]
    assert lineage["panel"]["symbols"] == ["AAPL", "KO", "XOM"]


@pytest.mark.parametrize(
    ("model_type", "family", "parameters"),
    [("arima", "statistical", {}), ("garch", "statistical", {}),
     ("mean", "ensemble", {"members": [{"plugin_key": "ml.ridge"}, {"plugin_key": "stat.arima"}]})],
)
def test_per_series_filters_refuse_a_panel_with_a_422_saying_so(
    client: TestClient, feature_ids: list[str], model_type: str, family: str, parameters: dict
) -> None:
    model_id = _model(client, model_type, family, parameters)
    response = _train(client, model_id, feature_ids)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "cannot be trained on a panel" in detail and "statistical filter" in detail and "dl.lstm" in detail


#: Small enough to train in seconds: three symbols over four years, a tiny network.
LSTM_TINY = {"epochs": 2, "seq_len": 5, "hidden_size": 8, "num_layers": 1, "batch_size": 128}
SEQUENCE_MODELS = [
    ("lstm", "deep_learning", LSTM_TINY),
    ("stacking", "ensemble", {"members": [{"plugin_key": "ml.ridge"}, {"plugin_key": "dl.lstm", "parameters": LSTM_TINY}],
                              "purge": HORIZON, "n_folds": 2}),
]
SMALL_PANEL = {"symbols": ["KO", "XOM", "AAPL"], "start_date": "2016-01-01"}


@pytest.mark.parametrize(("model_type", "family", "parameters"), SEQUENCE_MODELS, ids=[m[0] for m in SEQUENCE_MODELS])
def test_lstm_and_stacking_train_on_a_panel_split_by_date_deterministically_and_predict_each_member(
    client: TestClient, feature_ids: list[str], model_type: str, family: str, parameters: dict
) -> None:
    model_id = _model(client, model_type, family, parameters)
    first = _train(client, model_id, feature_ids, **SMALL_PANEL)
    assert first.status_code == 200, first.text
    folds = first.json()["cv_metrics"]["folds"]
    assert len(folds) == CV["n_splits"]
    for fold in folds:
        assert fold["n_test"] == 3 * fold["n_test_dates"]  # every symbol of a test date is tested
        for name in ("mse", "mae", "directional_accuracy", "baseline_mse"):
            assert math.isfinite(fold[name]), (name, fold)
        # correlations are None only where a fold's forecasts are constant (stacking's
        # non-negative weights may all be 0: the intercept alone)
        assert {"ic", "rank_ic", "cs_rank_ic", "cs_ic", "cs_n_dates"} <= fold.keys()
    lineage = client.get(f"/api/v1/models/{model_id}").json()["lineage"]
    assert lineage["panel"]["symbols"] == ["AAPL", "KO", "XOM"] and lineage["cv"]["purge"] == HORIZON

    again = _train(client, model_id, feature_ids, **SMALL_PANEL)  # same request, same seed
    assert again.status_code == 200, again.text
    assert again.json()["cv_metrics"] == first.json()["cv_metrics"]
    assert again.json()["artifact_sha256"] == first.json()["artifact_sha256"]

    window = {"start_date": "2019-06-01", "end_date": "2019-08-01"}
    panel = client.post(f"/api/v1/models/{model_id}/predict", json={"symbols": ["KO", "XOM"], **window})
    assert panel.status_code == 200, panel.text
    body = panel.json()
    for symbol in ("KO", "XOM"):  # each member's forecasts are that symbol's own predict
        own = client.post(f"/api/v1/models/{model_id}/predict", json={"symbol": symbol, **window}).json()
        mine = [p for p, s in zip(body["predictions"], body["symbols"], strict=True) if s == symbol]
        assert mine == own["predictions"] and len(mine) == 42  # trading days of June and July 2019


@pytest.mark.parametrize(
    ("dataset", "says"),
    [
        ({"symbol": "AAPL", "universe": "SP20"}, "exactly one of symbol, universe and symbols"),
        ({"symbols": ["KO", "ko"]}, "repeated: KO"),
        ({"symbol": "GSPC", "target_transform": "rank"}, "send a universe or symbols"),
    ],
)
def test_bad_pooled_requests_are_422_saying_what_to_change(
    client: TestClient, feature_ids: list[str], dataset: dict, says: str
) -> None:
    model_id = _model(client, "ridge", "machine_learning")
    response = _train(client, model_id, feature_ids, **dataset)
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]


def test_unknown_universe_is_404(client: TestClient, feature_ids: list[str]) -> None:
    model_id = _model(client, "ridge", "machine_learning")
    assert _train(client, model_id, feature_ids, universe="NOPE").status_code == 404


def test_an_lstm_is_tuned_and_ranked_by_automl_on_a_panel(client: TestClient, feature_ids: list[str]) -> None:
    dataset = {"feature_ids": feature_ids, "start_date": "2016-01-01", "end_date": END, "target_horizon": HORIZON,
               "symbols": SMALL_PANEL["symbols"]}
    fixed = {k: v for k, v in LSTM_TINY.items() if k != "seq_len"}
    tune = client.post("/api/v1/models/tune", json={
        "plugin_key": "dl.lstm", "dataset": dataset, "cv": CV, "fixed_params": fixed, "n_trials": 2, "seed": 3,
        "param_space": {"seq_len": {"type": "int", "low": 2, "high": 8}}, "metric": "mean_cs_rank_ic",
    })
    assert tune.status_code == 200, tune.text
    study = tune.json()
    assert study["n_complete"] == 2, study
    for trial in study["trials"]:
        assert [f["n_test"] for f in trial["folds"]] == [3 * f["n_test_dates"] for f in trial["folds"]]

    automl = client.post("/api/v1/models/automl", json={
        "dataset": dataset, "cv": CV, "metric": "icir",
        "candidates": {"dl.lstm": LSTM_TINY, "ensemble.stacking": SEQUENCE_MODELS[1][2], "ml.ridge": {}},
    })
    assert automl.status_code == 200, automl.text
    rows = automl.json()["leaderboard"]
    assert sorted(r["plugin_key"] for r in rows) == ["dl.lstm", "ensemble.stacking", "ml.ridge"]
    assert all(r["error"] is None for r in rows), rows
