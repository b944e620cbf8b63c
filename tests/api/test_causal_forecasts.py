"""Every prediction uses what was known at its date, through the API, on both backends.

- ARIMA's cross-validation scores equal statsmodels' own forecasts, computed here: the
  parameters fitted on the fold's training rows, frozen, filtered through the labels
  realised by each test row (the purge gap's withheld), then ``horizon`` steps ahead.
- GARCH trained on 2005-2016 sees October 2008 coming when asked about October 2008.
- Predictions over [a, c) equal those over [a, b) and [b, c), for every family, with
  ranges before, across and after the training span.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from scipy import stats

from conftest import post_features, stored_training_frame

FEATURES = [("statistical.returns", {}), ("technical.rsi", {"period": 14})]


@pytest.fixture(scope="module")
def feature_ids(client: TestClient) -> list[str]:
    return post_features(client, FEATURES)


def _model(client: TestClient, model_type: str, family: str, parameters: dict | None = None) -> str:
    body = {"name": f"causal {model_type}", "model_type": model_type, "family": family, "parameters": parameters or {}}
    response = client.post("/api/v1/models", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _train(client: TestClient, model_id: str, feature_ids: list[str], start: str, end: str, horizon: int, cv: dict) -> dict:
    dataset = {"feature_ids": feature_ids, "symbol": "GSPC", "start_date": start, "end_date": end, "target_horizon": horizon}
    response = client.post(f"/api/v1/models/{model_id}/train", json={"dataset": dataset, "cv": cv})
    assert response.status_code == 200, response.text
    return response.json()


def _predict(client: TestClient, model_id: str, start: str, end: str) -> dict:
    response = client.post(f"/api/v1/models/{model_id}/predict", json={"symbol": "GSPC", "start_date": start, "end_date": end})
    assert response.status_code == 200, response.text
    return response.json()


def _training_rows(client: TestClient, model_id: str, start: str, end: str, horizon: int) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """The training matrix rebuilt from the stored datasets and the bars (not from the trainer)."""
    X, y = stored_training_frame(client, model_id, start, end, horizon)
    rows = X.notna().all(axis=1) & y.notna()
    return X[rows].to_numpy(dtype="float64"), y[rows].to_numpy(dtype="float64"), pd.DatetimeIndex(X.index[rows])


def _scale(X: np.ndarray) -> np.ndarray:
    scale = np.std(X, axis=0)
    return np.where(scale > 0, scale, 1.0)


# --- ARIMA cross-validation against statsmodels -----------------------------------------

ARIMA_SPAN, ARIMA_HORIZON = ("2014-01-01", "2017-01-01"), 5


def test_each_arima_fold_scores_statsmodels_forecast_filtered_to_the_same_date(client: TestClient, feature_ids: list[str]) -> None:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    model_id = _model(client, "arima", "statistical", {"p": 1, "q": 1})
    cv = {"method": "expanding", "n_splits": 3, "test_size": 0.08}
    body = _train(client, model_id, feature_ids, *ARIMA_SPAN, ARIMA_HORIZON, cv)
    X, y, index = _training_rows(client, model_id, *ARIMA_SPAN, ARIMA_HORIZON)
    assert len(y) == body["n_train_rows"]
    h = ARIMA_HORIZON
    for fold in body["cv_metrics"]["folds"]:
        train_end = index.get_loc(pd.Timestamp(fold["train_end"])) + 1
        test = np.arange(index.get_loc(pd.Timestamp(fold["test_start"])), index.get_loc(pd.Timestamp(fold["test_end"])) + 1)
        assert fold["n_train"] == train_end and test[0] - train_end == h  # expanding, purge = horizon
        x_scale, y_scale = _scale(X[:train_end]), float(np.std(y[:train_end]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec = SARIMAX(y[:train_end] / y_scale, exog=X[:train_end] / x_scale, order=(1, 0, 1), trend="c", validate_exog=False)
            params = spec.fit(method="lbfgs", maxiter=200, disp=False).params
            known = y.copy()
            known[train_end : test[0]] = np.nan  # the purge gap: its labels are never read
            forecasts, from_training_end = [], []
            for t in test:
                origin = t - h  # the last row whose label is realised by t
                model = SARIMAX(known[: origin + 1] / y_scale, exog=X[: origin + 1] / x_scale, order=(1, 0, 1), trend="c", validate_exog=False)
                forecasts.append(model.filter(params).forecast(steps=h, exog=X[origin + 1 : t + 1] / x_scale)[-1] * y_scale)
            frozen_end = SARIMAX(y[:train_end] / y_scale, exog=X[:train_end] / x_scale, order=(1, 0, 1), trend="c", validate_exog=False)
            from_training_end = frozen_end.filter(params).forecast(steps=len(test), exog=X[test] / x_scale) * y_scale
        forecast, actual = np.asarray(forecasts), y[test]
        assert fold["mse"] == pytest.approx(np.mean((forecast - actual) ** 2), rel=1e-9)
        assert fold["mae"] == pytest.approx(np.mean(np.abs(forecast - actual)), rel=1e-9)
        assert fold["ic"] == pytest.approx(np.corrcoef(actual, forecast)[0, 1], rel=1e-7, abs=1e-12)
        assert fold["rank_ic"] == pytest.approx(stats.spearmanr(actual, forecast).statistic, rel=1e-7, abs=1e-12)
        # The question the old code answered (step j+1 from the training end) scores otherwise.
        assert abs(np.mean((from_training_end - actual) ** 2) - fold["mse"]) > 1e-9 * fold["mse"]


# --- GARCH sees 2008 -----------------------------------------------------------------------


def test_garch_trained_on_2005_2016_forecasts_october_2008_as_turbulent(client: TestClient, feature_ids: list[str]) -> None:
    model_id = _model(client, "garch", "statistical", {"mean": "Constant"})
    _train(client, model_id, feature_ids[:1], "2005-01-01", "2017-01-01", 1, {"method": "expanding", "n_splits": 3, "test_size": 0.1})
    october_2008 = _predict(client, model_id, "2008-10-01", "2008-11-01")
    january_2017 = _predict(client, model_id, "2017-01-01", "2017-02-01")
    june_2018 = _predict(client, model_id, "2018-06-01", "2018-07-01")
    assert len(october_2008["timestamps"]) == 23 and len(january_2017["timestamps"]) == 20
    assert np.mean(october_2008["volatility"]) >= 2 * np.mean(january_2017["volatility"])
    # Each date has its own forecast, not the training end's 1..n-step path relabelled.
    assert not np.allclose(january_2017["volatility"][:10], june_2018["volatility"][:10])
    assert october_2008["volatility"][0] > 0.015  # GSPC's daily moves were 2-10 % that month


# --- ranges --------------------------------------------------------------------------------

FAMILIES = [
    ("arima", "statistical", {"p": 2, "q": 1}),
    ("garch", "statistical", {"mean": "LS", "dist": "t"}),
    ("lightgbm", "machine_learning", {"n_estimators": 20}),
    ("lstm", "deep_learning", {"epochs": 2, "seq_len": 10, "hidden_size": 8}),
    ("mean", "ensemble", {"members": [{"plugin_key": "stat.arima"}, {"plugin_key": "ml.ridge"}]}),
]


@pytest.mark.parametrize(("model_type", "family", "parameters"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_overlapping_ranges_agree_row_by_row(
    client: TestClient, feature_ids: list[str], model_type: str, family: str, parameters: dict
) -> None:
    model_id = _model(client, model_type, family, parameters)
    _train(client, model_id, feature_ids, "2013-01-01", "2016-01-01", 2, {"method": "expanding", "n_splits": 2, "test_size": 0.1})
    a, b, c = "2011-06-01", "2014-03-03", "2018-01-01"  # before, inside and after the training span
    whole, first, second = _predict(client, model_id, a, c), _predict(client, model_id, a, b), _predict(client, model_id, b, c)
    assert whole["timestamps"] == first["timestamps"] + second["timestamps"]
    assert whole["predictions"] == first["predictions"] + second["predictions"]
    if model_type == "garch":
        assert whole["volatility"] == first["volatility"] + second["volatility"]
    inner = _predict(client, model_id, "2012-01-03", "2012-02-01")  # a range inside the first
    offset = whole["timestamps"].index(inner["timestamps"][0])
    assert inner["predictions"] == whole["predictions"][offset : offset + len(inner["predictions"])]
