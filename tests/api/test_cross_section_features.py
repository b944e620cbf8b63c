"""Cross-sectional features (issue 13): a definition that ranks, z-scores or demeans another
feature per date across a universe, generated as a panel and used in pooled training, on
both backends.

The expected values come from TA-Lib's ROC run on skfolio's own copy of the SP20 closes
and a per-date rank / z-score / demean computed here with scipy and numpy — nothing is
read back from the service but the stored panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from conftest import post_features
from fastapi.testclient import TestClient
from scipy import stats
from test_panels import SP20, parquet, post_panel
from test_tasks import wait_for
from test_tasks_celery import celery_client, celery_settings, redis_url  # noqa: F401 - fixtures

RANGE = {"start_date": "2015-01-01", "end_date": "2020-01-01"}
SHORT = {"start_date": "2016-01-01", "end_date": "2018-01-01"}


@pytest.fixture(scope="module")
def roc(client: TestClient) -> dict:
    (feature_id,) = post_features(client, [("technical.roc", {"period": 20})])
    return {"id": feature_id}


def cs_feature(client: TestClient, create_feature, operator: str, input_id: str, **parameters: object) -> dict:
    return create_feature(client, f"cross_sectional.{operator}", {"feature_id": input_id, **parameters})


def talib_panel(frame: pd.DataFrame, symbols: list[str], start_date: str, end_date: str, name: str,
                function: str, period: int) -> pd.Series:
    """A TA-Lib indicator of each symbol over its whole history, kept in [start, end), long."""
    parts = []
    for symbol in symbols:
        close = frame[symbol].dropna()
        values = pd.Series(getattr(talib, function)(close.to_numpy(), timeperiod=period), index=close.index)
        values = values[(values.index >= pd.Timestamp(start_date, tz="UTC")) & (values.index < pd.Timestamp(end_date, tz="UTC"))]
        parts.append(values.rename_axis("timestamp").to_frame(name).assign(symbol=symbol).set_index("symbol", append=True)[name])
    return pd.concat(parts).sort_index()


def roc_panel(frame: pd.DataFrame, symbols: list[str], start_date: str, end_date: str) -> pd.Series:
    """TA-Lib ROC(20) of each symbol over its whole history, kept in [start, end), long."""
    return talib_panel(frame, symbols, start_date, end_date, "roc", "ROC", 20)


def per_date(values: pd.Series, operator: str) -> pd.Series:
    """The reference: each date's finite values ranked by scipy ((rank-1)/(n-1), 0.5 alone),
    z-scored (ddof 1) or demeaned by numpy."""
    out = pd.Series(np.nan, index=values.index)
    for _, day in values.groupby(level=0):
        day = day[np.isfinite(day)]
        x = day.to_numpy()
        if len(x) == 0:
            continue
        if operator == "rank":
            result = (stats.rankdata(x) - 1) / (len(x) - 1) if len(x) > 1 else np.full(1, 0.5)
        elif operator == "zscore":
            std = np.std(x, ddof=1) if len(x) > 1 else 0.0
            result = (x - np.mean(x)) / std if std > 0 else np.full(len(x), np.nan)
        else:
            result = x - np.mean(x)
        out.loc[day.index] = result
    return out


def test_rank_zscore_and_demean_of_roc_equal_per_date_references_and_are_cached(
    client: TestClient, create_feature, roc: dict, closes: pd.DataFrame  # noqa: F811
) -> None:
    reference = roc_panel(closes, SP20, **RANGE)
    for operator in ("rank", "zscore", "demean"):
        feature = cs_feature(client, create_feature, operator, roc["id"])
        first = post_panel(client, feature["id"], universe="SP20", **RANGE)
        panel = first["panel"]
        assert first["cached"] is False and panel["symbols"] == SP20 and panel["columns"] == [operator]
        stored = parquet(client, feature["id"], panel["id"])[operator]
        expected = per_date(reference, operator)
        assert list(stored.index) == list(expected.index), operator
        np.testing.assert_allclose(stored.to_numpy(), expected.to_numpy(), rtol=1e-9, atol=1e-12, err_msg=operator)

        # The input is a panel of its own, stored and named by hash in the lineage.
        source = panel["lineage"]["input_panel"]
        assert source["feature_id"] == roc["id"]
        assert source["version_hash"] in {p["version_hash"] for p in client.get(f"/api/v1/features/{roc['id']}/panels").json()}

        again = post_panel(client, feature["id"], universe="SP20", **RANGE)
        assert again["cached"] is True and again["panel"]["id"] == panel["id"]
        assert again["panel"]["version_hash"] == panel["version_hash"]


def test_a_member_joining_mid_range_leaves_earlier_dates_unchanged(
    client: TestClient, create_feature, roc: dict, closes: pd.DataFrame  # noqa: F811
) -> None:
    """XOM joins on 2017-01-01: the ranks before it equal those of the universe without XOM;
    after it, XOM takes part (and the others' ranks move)."""
    stamp = pd.Timestamp.now().value
    others = [{"symbol": s, "from": "2000-01-01"} for s in SP20 if s != "XOM"]
    ids = {}
    for name, members in (("without", others), ("joins", [*others, {"symbol": "XOM", "from": "2017-01-01"}])):
        response = client.post("/api/v1/universes", json={"name": f"{name} {stamp}", "members": members})
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    feature = cs_feature(client, create_feature, "rank", roc["id"])
    without_panel = post_panel(client, feature["id"], universe=ids["without"], **SHORT)["panel"]
    joins_panel = post_panel(client, feature["id"], universe=ids["joins"], **SHORT)["panel"]
    assert joins_panel["version_hash"] != without_panel["version_hash"]
    without = parquet(client, feature["id"], without_panel["id"])
    joins = parquet(client, feature["id"], joins_panel["id"])

    joined = pd.Timestamp("2017-01-01", tz="UTC")
    before = joins[joins.index.get_level_values("timestamp") < joined]
    assert "XOM" not in set(before.index.get_level_values("symbol"))
    pd.testing.assert_frame_equal(before, without.loc[before.index])
    after = joins[joins.index.get_level_values("timestamp") >= joined]
    assert "XOM" in set(after.index.get_level_values("symbol"))
    shared = after.drop(index="XOM", level="symbol").index
    assert not np.allclose(after.loc[shared, "rank"], without.loc[shared, "rank"])
    expected = per_date(roc_panel(closes, SP20, "2017-01-01", SHORT["end_date"]), "rank")
    np.testing.assert_allclose(after["rank"].to_numpy(), expected.loc[after.index].to_numpy(), rtol=1e-9)


def test_ranks_within_a_point_in_time_group_field(
    client: TestClient, create_feature, roc: dict, closes: pd.DataFrame  # noqa: F811
) -> None:
    """Sector codes from fundamentals: each symbol's code as known on each date groups the
    demean; AAPL moves from sector 1 to 2 on 2017-01-03 (usable from that instant)."""
    field = f"sector_{pd.Timestamp.now().value}"
    symbols = ["AAPL", "AMD", "BAC", "JPM", "KO", "PEP"]
    sector = {"AAPL": 1.0, "AMD": 1.0, "BAC": 2.0, "JPM": 2.0, "KO": 3.0, "PEP": 3.0}
    for symbol in symbols:
        records = [{"period_end": "2010-01-01", "available_at": "2010-01-02", "field": field, "value": sector[symbol]}]
        if symbol == "AAPL":
            records.append({"period_end": "2017-01-01", "available_at": "2017-01-03", "field": field, "value": 2.0})
        response = client.post(f"/api/v1/market-data/{symbol}/fundamentals", json={"records": records})
        assert response.status_code == 200, response.text
    feature = cs_feature(client, create_feature, "demean", roc["id"], group_field=field)
    panel = post_panel(client, feature["id"], symbols=symbols, **SHORT)["panel"]
    assert sorted(panel["lineage"]["group_fingerprints"]["members"]) == symbols
    stored = parquet(client, feature["id"], panel["id"])["demean"]

    values = roc_panel(closes, symbols, **SHORT)
    dates = values.index.get_level_values("timestamp")
    groups = np.array([sector[s] for s in values.index.get_level_values("symbol")])
    groups[(values.index.get_level_values("symbol") == "AAPL") & (dates >= pd.Timestamp("2017-01-03", tz="UTC"))] = 2.0
    expected = values.groupby([dates, groups]).transform(lambda x: x - x.mean())
    np.testing.assert_allclose(stored.to_numpy(), expected.loc[stored.index].to_numpy(), rtol=1e-9, atol=1e-12)


def test_refusals(client: TestClient, create_feature, roc: dict) -> None:
    feature = cs_feature(client, create_feature, "rank", roc["id"])
    for path in ("generate", "generate/async"):
        response = client.post(f"/api/v1/features/{feature['id']}/{path}", json={"symbol": "AAPL", **SHORT})
        assert response.status_code == 422, response.text
        assert "universe or symbols" in response.text and "/panels" in response.text
    batch = client.post("/api/v1/features/generate", json={"feature_ids": [feature["id"]], "symbols": ["AAPL"], **SHORT})
    assert batch.status_code == 422, batch.text

    def create(parameters: dict) -> object:
        return client.post("/api/v1/features", json={"name": "cs", "type": "cross_sectional",
                                                      "plugin_key": "cross_sectional.rank", "parameters": parameters})

    assert create({}).status_code == 422  # names no input
    assert "names no feature" in create({"feature_id": "00000000-0000-0000-0000-000000000000"}).text
    # An edit that would make the feature its own input (directly or through another) is refused.
    outer = cs_feature(client, create_feature, "zscore", feature["id"])
    for target, input_id in ((feature, outer["id"]), (feature, feature["id"])):
        response = client.patch(f"/api/v1/features/{target['id']}", json={"parameters": {"feature_id": input_id}})
        assert response.status_code == 422 and "its own input" in response.text, response.text
    # An input deleted later: its panels are refused, naming the parameter.
    gone = create_feature(client, "technical.rsi", {"period": 9})
    orphan = cs_feature(client, create_feature, "rank", gone["id"])
    assert client.delete(f"/api/v1/features/{gone['id']}").status_code == 204
    response = client.post(f"/api/v1/features/{orphan['id']}/panels", json={"symbols": ["AAPL", "KO"], **SHORT})
    assert response.status_code == 422 and "no longer exists" in response.text, response.text
    # A column the input does not have is refused when the panel is planned.
    bad = cs_feature(client, create_feature, "rank", roc["id"], column="nope")
    response = client.post(f"/api/v1/features/{bad['id']}/panels", json={"symbols": ["AAPL", "KO"], **SHORT})
    assert response.status_code == 422 and "parameters.column" in response.text, response.text


def test_pooled_ridge_on_rsi_and_ranked_momentum(client: TestClient, create_feature, roc: dict) -> None:
    rsi = create_feature(client, "technical.rsi", {"period": 14})
    ranked = cs_feature(client, create_feature, "rank", roc["id"])
    model = client.post("/api/v1/models", json={"name": "pooled cs", "model_type": "ridge",
                                                "family": "machine_learning", "parameters": {"alpha": 3.0}})
    assert model.status_code == 201, model.text
    body = {"feature_ids": [rsi["id"], ranked["id"]], "universe": "SP20", "target_horizon": 5, **RANGE}
    response = client.post(f"/api/v1/models/{model.json()['id']}/train",
                           json={"dataset": body, "cv": {"method": "expanding", "n_splits": 2, "test_size": 0.2}})
    assert response.status_code == 200, response.text
    result = response.json()
    folds = result["cv_metrics"]["folds"]
    assert len(folds) == 2 and all(f["cs_n_dates"] > 0 and np.isfinite(f["cs_rank_ic"]) for f in folds)
    assert result["n_train_rows"] > 20 * 1000


def test_a_pooled_model_on_a_ranked_feature_predicts_a_universe_as_a_reference_ridge_does(
    client: TestClient, create_feature, roc: dict, closes: pd.DataFrame  # noqa: F811 - the fixture
) -> None:
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    rsi = create_feature(client, "technical.rsi", {"period": 14})
    ranked = cs_feature(client, create_feature, "rank", roc["id"])
    model = client.post("/api/v1/models", json={"name": "pooled cs predict", "model_type": "ridge",
                                                "family": "machine_learning", "parameters": {"alpha": 3.0}}).json()
    body = {"feature_ids": [rsi["id"], ranked["id"]], "universe": "SP20", "target_horizon": 5, **SHORT}
    trained = client.post(f"/api/v1/models/{model['id']}/train",
                          json={"dataset": body, "cv": {"method": "expanding", "n_splits": 2, "test_size": 0.2}})
    assert trained.status_code == 200, trained.text

    def features(start: str, end: str) -> pd.DataFrame:
        return pd.concat({"rsi": talib_panel(closes, SP20, start, end, "rsi", "RSI", 14),
                          "rank": per_date(roc_panel(closes, SP20, start, end), "rank")}, axis=1)

    train = features(SHORT["start_date"], SHORT["end_date"])
    close = closes[SP20].stack().rename_axis(["timestamp", "symbol"]).sort_index()
    in_range = close[close.index.get_level_values(0) < pd.Timestamp(SHORT["end_date"], tz="UTC")]
    target = in_range.groupby(level="symbol").transform(lambda c: c.shift(-5) / c - 1.0)
    train = train.assign(target=target.reindex(train.index)).dropna()
    assert len(train) == trained.json()["n_train_rows"]
    scaler = StandardScaler().fit(train[["rsi", "rank"]].to_numpy())
    reference = Ridge(alpha=3.0).fit(scaler.transform(train[["rsi", "rank"]].to_numpy()), train["target"].to_numpy())

    window = {"start_date": "2019-01-01", "end_date": "2019-04-01"}
    response = client.post(f"/api/v1/models/{model['id']}/predict", json={"universe": "SP20", **window})
    assert response.status_code == 200, response.text
    got = response.json()
    rows = features(window["start_date"], window["end_date"]).dropna()
    assert list(zip(pd.DatetimeIndex(got["timestamps"]), got["symbols"])) == list(rows.index)
    expected = reference.predict(scaler.transform(rows[["rsi", "rank"]].to_numpy()))
    np.testing.assert_allclose(got["predictions"], expected, rtol=1e-6, atol=1e-12)
    # a rank needs every member of a date: one symbol alone is refused, saying what to send
    alone = client.post(f"/api/v1/models/{model['id']}/predict", json={"symbol": "KO", **window})
    assert alone.status_code == 422 and "predict for a universe or a list of symbols" in alone.json()["detail"]


def test_a_cross_sectional_panel_through_celery_matches_the_reference(
    celery_client: TestClient, create_feature, closes: pd.DataFrame  # noqa: F811
) -> None:
    client = celery_client
    (roc_id,) = post_features(client, [("technical.roc", {"period": 20})])
    feature = cs_feature(client, create_feature, "zscore", roc_id)
    symbols = ["AAPL", "KO", "XOM"]
    response = client.post(f"/api/v1/features/{feature['id']}/panels/async", json={"symbols": symbols, **SHORT})
    assert response.status_code == 202, response.text
    task = wait_for(client, response.json()["task_id"])
    assert task["status"] == "SUCCESS" and task["children_done"] == 2, task  # the input's pieces, a batch per worker
    stored = parquet(client, feature["id"], task["result"]["panel"]["id"])["zscore"]
    expected = per_date(roc_panel(closes, symbols, **SHORT), "zscore")
    np.testing.assert_allclose(stored.to_numpy(), expected.loc[stored.index].to_numpy(), rtol=1e-9)
    assert len(stored) == len(expected)
    again = post_panel(client, feature["id"], symbols=symbols, **SHORT)
    assert again["cached"] is True and again["panel"]["id"] == task["result"]["panel"]["id"]
