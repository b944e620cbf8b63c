"""Feature generation through the API: content-addressed datasets, warm-up, versions,
restatements, concurrency and every error path."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import talib
from arch.data import sp500
from fastapi.testclient import TestClient

from alphaforge.plugins.features.base import FeaturePlugin
from alphaforge.features.generation import read_frame

GSPC_2010_2019 = {"symbol": "GSPC", "timeframe": "1d", "start_date": "2010-01-01T00:00:00", "end_date": "2019-01-01T00:00:00"}


def _generate(client: TestClient, feature_id: str, body: dict, action: str = "generate") -> dict:
    response = client.post(f"/api/v1/features/{feature_id}/{action}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _raw_gspc() -> pd.DataFrame:
    """The bundled bars straight from the arch package: an independent source of truth."""
    raw = sp500.load()
    raw.index = pd.DatetimeIndex(raw.index).tz_localize("UTC")
    return raw


def test_rsi_dataset_matches_talib_on_the_raw_series_from_the_first_row(client: TestClient, create_feature) -> None:
    feature = create_feature(client, "technical.rsi", {"period": 14})
    body = _generate(client, feature["id"], GSPC_2010_2019)
    dataset, preview = body["dataset"], body["preview"]

    raw = _raw_gspc()
    expected = pd.Series(talib.RSI(raw["Close"].to_numpy(), timeperiod=14), index=raw.index)
    expected = expected[(expected.index >= "2010-01-01") & (expected.index < "2019-01-01")]

    assert body["cached"] is False
    assert dataset["row_count"] == len(expected) == 2264
    assert dataset["columns"] == ["rsi"]
    assert dataset["symbol"] == "GSPC" and dataset["timeframe"] == "1d"
    assert dataset["start_date"] == "2010-01-01T00:00:00Z" and dataset["end_date"] == "2019-01-01T00:00:00Z"
    assert len(dataset["version_hash"]) == 64
    assert len(preview) == 10
    assert preview[0]["timestamp"].startswith("2010-01-04")
    assert all(row["rsi"] is not None for row in preview)  # warm-up: values from the first row
    np.testing.assert_allclose([row["rsi"] for row in preview], expected.iloc[:10].to_numpy(), rtol=1e-12)

    stored = read_frame(client.app.state.ctx, dataset["storage_uri"])
    np.testing.assert_allclose(stored["rsi"].to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert (stored.index == expected.index).all()

    feature_after = client.get(f"/api/v1/features/{feature['id']}").json()
    assert feature_after["storage_uri"] and dataset["storage_uri"].startswith(feature_after["storage_uri"])
    assert feature_after["version"] == 1  # generation is not a user edit


def test_second_generate_is_a_hit_that_computes_nothing(client: TestClient, create_feature, monkeypatch: pytest.MonkeyPatch) -> None:
    feature = create_feature(client, "technical.macd")
    first = _generate(client, feature["id"], GSPC_2010_2019)

    def must_not_run(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a cache hit must not run the plugin")

    for cls in FeaturePlugin.__subclasses__() + [c for k in FeaturePlugin.__subclasses__() for c in k.__subclasses__()]:
        if "compute" in vars(cls):
            monkeypatch.setattr(cls, "compute", must_not_run)
    second = _generate(client, feature["id"], GSPC_2010_2019)
    assert second["cached"] is True
    assert second["dataset"] == first["dataset"]
    assert second["preview"] == first["preview"]


def test_equivalent_requests_share_one_dataset(client: TestClient, create_feature) -> None:
    feature = create_feature(client, "technical.sma", {"period": 10})
    base = _generate(client, feature["id"], GSPC_2010_2019)["dataset"]["id"]
    variants = [
        {**GSPC_2010_2019, "symbol": "gspc"},
        {**GSPC_2010_2019, "start_date": "2010-01-01T00:00:00Z", "end_date": "2019-01-01"},
        {**GSPC_2010_2019, "start_date": "2010-01-01T01:00:00+01:00"},
    ]
    for variant in variants:
        assert _generate(client, feature["id"], variant)["dataset"]["id"] == base
    versions = client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": "GSPC"}).json()
    assert [v["id"] for v in versions] == [base]


def test_parameters_and_range_change_the_hash(client: TestClient, create_feature) -> None:
    a = create_feature(client, "technical.sma", {"period": 10})
    b = create_feature(client, "technical.sma", {"period": 11})
    hash_a = _generate(client, a["id"], GSPC_2010_2019)["dataset"]["version_hash"]
    hash_b = _generate(client, b["id"], GSPC_2010_2019)["dataset"]["version_hash"]
    hash_range = _generate(client, a["id"], {**GSPC_2010_2019, "end_date": "2018-06-01"})["dataset"]["version_hash"]
    assert len({hash_a, hash_b, hash_range}) == 3
    # Defaults filled in: {} and the explicit default are the same definition.
    c = create_feature(client, "technical.sma", {})
    d = create_feature(client, "technical.sma", {"period": 20, "column": "close"})
    assert (
        _generate(client, c["id"], GSPC_2010_2019)["dataset"]["version_hash"]
        == _generate(client, d["id"], GSPC_2010_2019)["dataset"]["version_hash"]
    )


@pytest.mark.parametrize(("plugin_key", "parameters"), [("technical.rsi", {}), ("technical.obv", {}), ("technical.sma", {"period": 30}), ("statistical.hurst_exponent", {})])
def test_values_do_not_depend_on_the_requested_range(client: TestClient, create_feature, plugin_key: str, parameters: dict) -> None:
    """Warm-up makes a value at t the same whichever range asked for it (recursive
    indicators warm up over the whole history, windowed ones over their lookback)."""
    feature = create_feature(client, plugin_key, parameters)
    ctx = client.app.state.ctx
    long = read_frame(ctx, _generate(client, feature["id"], GSPC_2010_2019)["dataset"]["storage_uri"])
    short = read_frame(ctx, _generate(client, feature["id"], {**GSPC_2010_2019, "start_date": "2014-03-05"})["dataset"]["storage_uri"])
    assert short.index[0] == pd.Timestamp("2014-03-05", tz="UTC")
    overlap = long.loc[short.index]
    assert not short.isna().any().any()
    np.testing.assert_allclose(short.to_numpy(), overlap.to_numpy(), rtol=1e-9, atol=1e-12)


def test_range_at_the_start_of_history_has_null_warmup_rows(client: TestClient, create_feature) -> None:
    feature = create_feature(client, "technical.sma", {"period": 5})
    body = _generate(client, feature["id"], {"symbol": "GSPC", "start_date": "1999-01-01", "end_date": "1999-03-01"})
    assert [row["sma"] is None for row in body["preview"][:5]] == [True, True, True, True, False]


def test_weekly_generation_uses_weekly_bars(client: TestClient, create_feature) -> None:
    feature = create_feature(client, "statistical.returns")
    body = _generate(client, feature["id"], {**GSPC_2010_2019, "timeframe": "1w"})
    raw = _raw_gspc()["Close"]
    # Week of 2010-01-04..08 vs the week before (ends on 2009-12-31): last closes of each week.
    expected = raw.loc["2010-01-08"] / raw.loc["2009-12-31"] - 1
    assert body["preview"][0]["timestamp"].startswith("2010-01-08")
    assert body["preview"][0]["returns"] == pytest.approx(expected, rel=1e-12)
    assert body["dataset"]["timeframe"] == "1w"
    assert 440 < body["dataset"]["row_count"] < 480


def test_restated_bar_makes_a_second_version_and_keeps_the_first(fresh_client: TestClient, create_feature) -> None:
    client = fresh_client
    feature = create_feature(client, "technical.rsi", {"period": 14})
    first = _generate(client, feature["id"], GSPC_2010_2019)

    # Regenerate with unchanged bars: recomputed, but the same version.
    again = _generate(client, feature["id"], GSPC_2010_2019, action="regenerate")
    assert again["cached"] is False and again["dataset"]["id"] == first["dataset"]["id"]

    bars = client.get("/api/v1/market-data/GSPC/bars", params={"start": "2015-06-01", "end": "2015-06-02"}).json()["bars"]
    revised = {**bars[0], "close": bars[0]["close"] * 1.01, "high": max(bars[0]["high"], bars[0]["close"] * 1.01)}
    ingest = client.post("/api/v1/market-data/GSPC/bars", json={"bars": [revised]})
    assert ingest.status_code == 200 and ingest.json()["replaced"] == 1

    second = _generate(client, feature["id"], GSPC_2010_2019, action="regenerate")
    assert second["dataset"]["id"] != first["dataset"]["id"]
    assert second["dataset"]["source_fingerprint"] != first["dataset"]["source_fingerprint"]
    versions = client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": "GSPC", "timeframe": "1d"}).json()
    assert [v["id"] for v in versions] == [first["dataset"]["id"], second["dataset"]["id"]]

    ctx = client.app.state.ctx
    old, new = read_frame(ctx, first["dataset"]["storage_uri"]), read_frame(ctx, second["dataset"]["storage_uri"])
    changed = old.index[(old["rsi"] - new["rsi"]).abs() > 0]
    assert changed[0] == pd.Timestamp("2015-06-01", tz="UTC")  # nothing before the restated bar moved
    # A plain generate also sees the restated bars (the hash covers the source bars).
    assert _generate(client, feature["id"], GSPC_2010_2019)["dataset"]["id"] == second["dataset"]["id"]


def test_concurrent_identical_generates_end_with_one_row_and_one_object(client: TestClient, create_feature) -> None:
    feature = create_feature(client, "statistical.hurst_exponent")
    barrier = threading.Barrier(4)

    def call(_: int) -> dict:
        barrier.wait()
        return _generate(client, feature["id"], GSPC_2010_2019)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, range(4)))
    assert len({r["dataset"]["id"] for r in results}) == 1
    versions = client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": "GSPC"}).json()
    assert len(versions) == 1
    ctx = client.app.state.ctx
    prefix = ctx.objects.key_of(client.get(f"/api/v1/features/{feature['id']}").json()["storage_uri"])
    assert [k for k in ctx.objects.list(prefix) if ".tmp-" not in k] == [ctx.objects.key_of(versions[0]["storage_uri"])]


def test_lost_object_is_recomputed_on_the_next_generate(client: TestClient, create_feature) -> None:
    feature = create_feature(client, "technical.willr")
    first = _generate(client, feature["id"], GSPC_2010_2019)
    ctx = client.app.state.ctx
    key = ctx.objects.key_of(first["dataset"]["storage_uri"])
    ctx.objects.delete(key)
    again = _generate(client, feature["id"], GSPC_2010_2019)
    assert again["cached"] is False and again["dataset"]["id"] == first["dataset"]["id"]
    assert ctx.objects.exists(key)
    assert again["preview"] == first["preview"]


def test_lineage_records_everything_the_hash_covers(client: TestClient, create_feature) -> None:
    feature = create_feature(client, "technical.bbands", {"period": 30})
    lineage = _generate(client, feature["id"], GSPC_2010_2019)["dataset"]["lineage"]
    assert lineage["plugin_key"] == "technical.bbands"
    assert lineage["parameters"] == {"period": 30, "nbdev_up": 2.0, "nbdev_dn": 2.0, "column": "close"}
    assert set(lineage["libraries"]) == {"TA-Lib", "numpy"}
    assert lineage["warmup_bars"] == 29
    assert lineage["start"] == "2010-01-01T00:00:00Z" and lineage["symbol"] == "GSPC"


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({**GSPC_2010_2019, "end_date": "2009-01-01"}, 422, "must be after start_date"),
        ({**GSPC_2010_2019, "end_date": "2010-01-01T00:00:00"}, 422, "must be after start_date"),
        ({**GSPC_2010_2019, "timeframe": "5m"}, 422, "1h"),
        ({**GSPC_2010_2019, "timeframe": "1h"}, 422, "GSPC has no 1h bars (it has: 1d, 1w)"),
        ({**GSPC_2010_2019, "symbol": "NOPE"}, 422, "no 1d bars for NOPE"),
        ({**GSPC_2010_2019, "start_date": "2030-01-01", "end_date": "2031-01-01"}, 422, "no 1d bars for GSPC"),
        ({**GSPC_2010_2019, "symbol": "../etc"}, 422, "invalid symbol"),
        ({**GSPC_2010_2019, "start_date": "yesterday"}, 422, "start_date"),
    ],
)
def test_generate_rejects_bad_requests(client: TestClient, create_feature, body: dict, status: int, expected: str) -> None:
    feature = create_feature(client, "technical.rsi")
    response = client.post(f"/api/v1/features/{feature['id']}/generate", json=body)
    assert response.status_code == status, response.text
    assert expected in str(response.json()["detail"])


@pytest.mark.parametrize("action", ["generate", "regenerate"])
def test_unknown_feature_is_404(client: TestClient, action: str) -> None:
    response = client.post(f"/api/v1/features/{uuid.uuid4()}/{action}", json=GSPC_2010_2019)
    assert response.status_code == 404 and response.json()["detail"] == "Feature not found"


def test_versions_requires_symbol_and_known_feature(client: TestClient, create_feature) -> None:
    feature = create_feature(client, "technical.rsi")
    assert client.get(f"/api/v1/features/{feature['id']}/versions").status_code == 422
    assert client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": "GSPC"}).json() == []
    assert client.get(f"/api/v1/features/{uuid.uuid4()}/versions", params={"symbol": "GSPC"}).status_code == 404
