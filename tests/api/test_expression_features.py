"""Expression features (issue 14) through the API, on both backends: a formula validated with
the position of each mistake, spellings that share one dataset, values equal to pandas run on
the raw bars (arch's copy of GSPC, skfolio's of SP20: not read back from the service), a panel
over SP20, and the bundled Alpha158 library created in one request and trained on."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import talib
from arch.data import sp500, vix
from fastapi.testclient import TestClient
from skfolio.datasets import load_sp500_dataset

from alphaforge.features.generation import read_frame

GSPC = {"symbol": "GSPC", "start_date": "2010-01-01", "end_date": "2019-01-01"}
FORMULAS = {"ma_ratio": "mean( close , 5 )/close", "vol20": "std(close / ref(close, 1) - 1, 20)"}


def _create(
    client: TestClient, parameters: dict, name: str = "expression", plugin_key: str = "automated.expression",
) -> dict:
    response = client.post(
        "/api/v1/features",
        json={"name": name, "type": plugin_key.split(".")[0], "plugin_key": plugin_key, "parameters": parameters},
    )
    assert response.status_code == 201, response.text
    return response.json()


def _in_range(frame: pd.DataFrame | pd.Series, start: str, end: str) -> pd.DataFrame | pd.Series:
    return frame[(frame.index >= pd.Timestamp(start, tz="UTC")) & (frame.index < pd.Timestamp(end, tz="UTC"))]


def _reference(close: pd.Series) -> pd.DataFrame:
    """FORMULAS by hand in pandas over a symbol's whole history."""
    returns = close / close.shift(1) - 1
    return pd.DataFrame({"ma_ratio": close.rolling(5).mean() / close, "vol20": returns.rolling(20).std()})


def _dataset(client: TestClient, dataset: dict) -> pd.DataFrame:
    return read_frame(client.app.state.ctx, dataset["storage_uri"])


@pytest.mark.parametrize(
    ("expression", "position", "says"),
    [
        ("ref(close, -1)", 11, "future"),
        ("mean(close, 2.5)", 12, "integer"),
        ("mean(close, volume)", 12, "constant"),
        ("close / mean(clos, 5)", 13, "clos"),
        ("close +", 7, ""),
    ],
)
def test_a_bad_formula_is_a_422_pointing_at_its_position(
    client: TestClient, expression: str, position: int, says: str
) -> None:
    response = client.post(
        "/api/v1/features",
        json={"name": "bad", "type": "automated", "plugin_key": "automated.expression",
              "parameters": {"expression": expression}},
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert f"at position {position}" in detail and says in detail, detail
    assert all(f["name"] != "bad" for f in client.get("/api/v1/features").json())


def test_a_cross_sectional_operator_is_refused_with_where_it_belongs(client: TestClient) -> None:
    response = client.post(
        "/api/v1/features",
        json={"name": "cs", "type": "automated", "plugin_key": "automated.expression",
              "parameters": {"expression": "cs_rank(close)"}},
    )
    assert response.status_code == 422 and "cross_sectional" in response.json()["detail"], response.text


def test_formulas_are_stored_canonical_and_their_values_match_pandas_on_gspc(client: TestClient) -> None:
    feature = _create(client, {"expressions": FORMULAS})
    assert feature["parameters"] == {"expressions": FORMULAS}  # as sent; the hash reads the canonical form
    body = client.post(f"/api/v1/features/{feature['id']}/generate", json=GSPC).json()
    assert body["dataset"]["lineage"]["parameters"]["expressions"] == {
        "ma_ratio": "mean(close, 5) / close", "vol20": "std(close / ref(close, 1) - 1, 20)",
    }
    raw = sp500.load()
    raw.index = pd.DatetimeIndex(raw.index).tz_localize("UTC")
    expected = _in_range(_reference(raw["Close"]), GSPC["start_date"], GSPC["end_date"])
    stored = _dataset(client, body["dataset"])
    assert body["dataset"]["columns"] == ["ma_ratio", "vol20"] and len(stored) == len(expected) == 2264
    np.testing.assert_allclose(stored.to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert not stored.isna().any().any()  # the warm-up came from before the range

    # Another spelling of the same formulas is the same definition: the dataset is a hit.
    respelled = {"ma_ratio": "mean(close,5) / close", "vol20": "std((close/ref(close,1))-1,20)"}
    update = client.patch(f"/api/v1/features/{feature['id']}", json={"parameters": {"expressions": respelled}})
    assert update.status_code == 200, update.text
    again = client.post(f"/api/v1/features/{feature['id']}/generate", json=GSPC).json()
    assert again["cached"] is True and again["dataset"]["id"] == body["dataset"]["id"]


def test_an_expression_panel_over_sp20_equals_pandas_per_symbol(client: TestClient) -> None:
    feature = _create(client, {"expressions": FORMULAS})
    window = {"start_date": "2015-01-01", "end_date": "2018-01-01"}
    answer = client.post(f"/api/v1/features/{feature['id']}/panels", json={"universe": "SP20", **window})
    assert answer.status_code == 200, answer.text
    panel = answer.json()["panel"]
    data = client.get(f"/api/v1/features/{feature['id']}/panels/{panel['id']}/data", params={"format": "parquet"})
    stored = pd.read_parquet(io.BytesIO(data.content))
    closes = load_sp500_dataset()
    closes.index = pd.DatetimeIndex(closes.index).tz_localize("UTC")
    for symbol in closes.columns:
        expected = _in_range(_reference(closes[symbol].dropna()), window["start_date"], window["end_date"])
        got = stored.xs(symbol, level="symbol")
        assert len(got) == len(expected), symbol
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-12, err_msg=symbol)
    assert panel["row_count"] == 20 * len(expected)


def test_alpha158_from_the_library_is_one_request_and_a_model_trains_on_it(client: TestClient) -> None:
    library = client.get("/api/v1/features/library").json()
    (template,) = [t for t in library["templates"] if t["name"] == "Alpha158"]
    assert len(template["parameters"]["expressions"]) == 157
    assert {"ref", "mean", "slope", "corr", "cs_rank"} <= {op["name"] for op in library["operators"]}
    created = client.post("/api/v1/features", json=template)
    assert created.status_code == 201, created.text
    feature = created.json()

    # SP20 holds closes only: Alpha158 reads open, high, low and volume too.
    refused = client.post(f"/api/v1/features/{feature['id']}/panels", json={"universe": "SP20", "start_date": "2015-01-01", "end_date": "2016-01-01"})
    assert refused.status_code == 422 and refused.json()["missing_fields"] == ["high", "low", "open", "volume"], refused.text

    model = client.post("/api/v1/models", json={"name": "alpha158 ridge", "model_type": "ridge",
                                                "family": "machine_learning", "parameters": {"alpha": 10.0}})
    assert model.status_code == 201, model.text
    train = client.post(f"/api/v1/models/{model.json()['id']}/train", json={
        "dataset": {"feature_ids": [feature["id"]], "symbol": "GSPC", "start_date": "2012-01-01",
                    "end_date": "2019-01-01", "target_horizon": 5},
        "cv": {"method": "expanding", "n_splits": 3, "test_size": 0.2},
    })
    assert train.status_code == 200, train.text
    result = train.json()
    columns = [c.rsplit(".", 1)[-1] for c in result["feature_columns"]]
    assert columns == sorted(template["parameters"]["expressions"]) and len(columns) == 157, result["feature_columns"][:3] and len(result["cv_metrics"]["folds"]) == 3


def test_momentum_over_volatility_ranked_across_sp20_equals_a_per_date_rank(client: TestClient) -> None:
    """The issue's example idea in two definitions: per-symbol formulas (cached per member),
    then a cross-sectional formula over their panel."""
    inputs = _create(client, {"expressions": {"mom": "close / ref(close, 20) - 1", "vol": "std(close / ref(close, 1) - 1, 20)"}})
    ranked = client.post("/api/v1/features", json={
        "name": "mom/vol rank", "type": "cross_sectional", "plugin_key": "cross_sectional.expression",
        "parameters": {"feature_id": inputs["id"], "expression": "cs_rank( mom/vol )", "name": "score"},
    })
    assert ranked.status_code == 201, ranked.text
    window = {"start_date": "2016-01-01", "end_date": "2017-01-01"}
    answer = client.post(f"/api/v1/features/{ranked.json()['id']}/panels", json={"universe": "SP20", **window})
    assert answer.status_code == 200, answer.text
    panel = answer.json()["panel"]
    assert panel["lineage"]["feature"]["parameters"]["expression"] == "cs_rank(mom / vol)"
    data = client.get(f"/api/v1/features/{ranked.json()['id']}/panels/{panel['id']}/data", params={"format": "parquet"})
    stored = pd.read_parquet(io.BytesIO(data.content))["score"]

    closes = load_sp500_dataset()
    closes.index = pd.DatetimeIndex(closes.index).tz_localize("UTC")
    ratio = (closes / closes.shift(20) - 1) / (closes / closes.shift(1) - 1).rolling(20).std()
    ratio = _in_range(ratio, window["start_date"], window["end_date"])
    expected = ratio.rank(axis=1).sub(1).div(ratio.notna().sum(axis=1) - 1, axis=0).stack()
    expected.index.names = ["timestamp", "symbol"]
    pd.testing.assert_series_equal(stored.sort_index(), expected.sort_index().rename("score"), check_exact=False,
                                   rtol=1e-12, check_index_type=False)


@pytest.mark.parametrize(
    ("expression", "says"),
    [("cs_rank(momentum)", "at position 8: unknown name 'momentum'"), ("cs_rank(ref(mom, -2))", "at position 17: ref's lag must be a positive integer")],
)
def test_a_cross_sectional_formula_naming_no_input_column_is_a_422(client: TestClient, expression: str, says: str) -> None:
    inputs = _create(client, {"expressions": {"mom": "close / ref(close, 20) - 1"}})
    created = client.post("/api/v1/features", json={
        "name": "bad", "type": "cross_sectional", "plugin_key": "cross_sectional.expression",
        "parameters": {"feature_id": inputs["id"], "expression": expression},
    })
    if created.status_code == 201:
        answer = client.post(f"/api/v1/features/{created.json()['id']}/panels",
                             json={"universe": "SP20", "start_date": "2016-01-01", "end_date": "2017-01-01"})
    else:
        answer = created
    assert answer.status_code == 422 and says in answer.json()["detail"], answer.text


def test_a_formula_over_a_macro_series_and_another_feature_matches_talib_and_vix(client: TestClient) -> None:
    feature = _create(client, {
        "expression": "rsi - vix", "name": "rsi_minus_vix", "macro": {"vix": "VIX"},
        "features": {"rsi": {"plugin_key": "technical.rsi", "parameters": {"period": 14}}},
    })
    body = client.post(f"/api/v1/features/{feature['id']}/generate", json=GSPC)
    assert body.status_code == 200, body.text
    stored = _dataset(client, body.json()["dataset"])["rsi_minus_vix"]
    raw = sp500.load()
    raw.index = pd.DatetimeIndex(raw.index).tz_localize("UTC")
    rsi = pd.Series(talib.RSI(raw["Close"].to_numpy(), timeperiod=14), index=raw.index)
    closes = vix.load()["vix"].dropna()
    closes.index = pd.DatetimeIndex(closes.index).tz_localize("UTC")
    # a daily VIX close is usable from the next day on: nothing before the day after its first close
    first = closes.index[0]
    assert stored[stored.index <= first].isna().all() and stored[stored.index > first].notna().all()
    for bar in stored.index[stored.index > first][[0, 1, 250, -1]]:
        known = closes[closes.index < bar].iloc[-1]
        assert stored[bar] == pytest.approx(rsi[bar] - known, rel=1e-12), bar


@pytest.mark.parametrize(
    ("parameters", "says"),
    [
        ({"expression": "close", "macro": {"close": "VIX"}}, "other than a bar field"),
        ({"expression": "x", "features": {"x": {"plugin_key": "technical.macd"}}}, "one of technical.macd's columns"),
        ({"expression": "x", "features": {"x": {"plugin_key": "cross_sectional.rank"}}}, "cannot be an input"),
        ({"expression": "x", "features": {"x": {"plugin_key": "technical.nope"}}}, "unknown feature plugin"),
        ({"expression": "vix + 1"}, "unknown name 'vix'"),
    ],
)
def test_bad_inputs_are_a_422_naming_them(client: TestClient, parameters: dict, says: str) -> None:
    response = client.post("/api/v1/features", json={
        "name": "bad", "type": "automated", "plugin_key": "automated.expression", "parameters": parameters,
    })
    assert response.status_code == 422 and says in response.json()["detail"], response.text


def _generated(client: TestClient, feature: dict) -> tuple[dict, pd.Series]:
    body = client.post(f"/api/v1/features/{feature['id']}/generate", json=GSPC)
    assert body.status_code == 200, body.text
    dataset = body.json()["dataset"]
    return dataset, _dataset(client, dataset)["value"]


def test_a_feature_named_by_id_equals_it_by_key_and_talib_and_follows_its_edits(client: TestClient) -> None:
    rsi = _create(client, {"period": 14}, plugin_key="technical.rsi")
    by_id = _create(client, {"expression": "rsi14 / 100", "features": {"rsi14": {"feature_id": rsi["id"]}}})
    by_key = _create(client, {"expression": "rsi14 / 100", "features": {"rsi14": {
        "plugin_key": "technical.rsi", "parameters": {"period": 14}}}})
    dataset, stored = _generated(client, by_id)
    _, keyed = _generated(client, by_key)
    raw = sp500.load()
    raw.index = pd.DatetimeIndex(raw.index).tz_localize("UTC")

    def talib_rsi(period: int) -> pd.Series:
        values = pd.Series(talib.RSI(raw["Close"].to_numpy(), timeperiod=period) / 100, index=raw.index)
        return _in_range(values, GSPC["start_date"], GSPC["end_date"])

    pd.testing.assert_series_equal(stored, keyed, check_exact=True)
    np.testing.assert_allclose(stored.to_numpy(), talib_rsi(14).to_numpy(), rtol=1e-12)
    assert not stored.isna().any()  # the reference's warm-up came from before the range
    assert dataset["lineage"]["input_features"]["rsi14"]["parameters"] == {"period": 14, "column": "close"}

    # An edit of the referenced definition is a new version of the expression's dataset.
    patched = client.patch(f"/api/v1/features/{rsi['id']}", json={"parameters": {"period": 21}})
    assert patched.status_code == 200, patched.text
    edited, values = _generated(client, by_id)
    assert edited["version_hash"] != dataset["version_hash"] and edited["id"] != dataset["id"]
    np.testing.assert_allclose(values.to_numpy(), talib_rsi(21).to_numpy(), rtol=1e-12)


def _refusal(response: object, says: str, field: str) -> None:
    assert response.status_code == 422 and says in response.json()["detail"], response.text  # type: ignore[attr-defined]
    assert response.json()["field"] == field, response.text  # type: ignore[attr-defined]


def test_a_feature_named_by_id_is_refused_unless_it_can_be_an_input(client: TestClient) -> None:
    macd = _create(client, {}, plugin_key="technical.macd")
    ranked = _create(client, {"feature_id": macd["id"], "column": "macd"}, plugin_key="cross_sectional.rank")

    def create(reference: dict) -> object:
        return client.post("/api/v1/features", json={
            "name": "bad", "type": "automated", "plugin_key": "automated.expression",
            "parameters": {"expression": "x", "features": {"x": reference}},
        })

    where = "parameters.features.x.feature_id"
    _refusal(create({"feature_id": "00000000-0000-0000-0000-000000000000"}),
             "names no feature (00000000-0000-0000-0000-000000000000)", where)
    _refusal(create({"feature_id": ranked["id"]}), "a cross-sectional feature (cross_sectional.rank)", where)
    _refusal(create({"feature_id": macd["id"]}), "name `column`, one of feature", "parameters.features.x.column")
    _refusal(create({"feature_id": macd["id"], "column": "signal"}), "['macd', 'macd_signal', 'macd_hist']",
             "parameters.features.x.column")

    # Itself, directly or through another expression that names it: refused on edit.
    inner = _create(client, {"expression": "x * 2", "features": {"x": {"feature_id": macd["id"], "column": "macd"}}})
    outer = _create(client, {"expression": "y + 1", "features": {"y": {"feature_id": inner["id"]}}})
    for target, reference in ((outer, outer), (inner, outer)):
        response = client.patch(f"/api/v1/features/{target['id']}", json={"parameters": {
            "expression": "x", "features": {"x": {"feature_id": reference["id"]}}}})
        _refusal(response, "would make the feature its own input", where)


def test_a_feature_named_by_id_and_deleted_since_is_a_422_on_generate(client: TestClient) -> None:
    rsi = _create(client, {"period": 9}, plugin_key="technical.rsi")
    feature = _create(client, {"expression": "r", "features": {"r": {"feature_id": rsi["id"]}}})
    assert client.delete(f"/api/v1/features/{rsi['id']}").status_code == 204
    response = client.post(f"/api/v1/features/{feature['id']}/generate", json=GSPC)
    _refusal(response, f"names no feature ({rsi['id']})", "parameters.features.r.feature_id")
