"""The Python client against a running service: configuration from the environment, feature
datasets as DataFrames, bars in and out as DataFrames, universes and panels, typed errors."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pandas as pd
import pytest
import talib

from alphaforge.client import (
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from served import fixtures
from support import ADMIN_KEY, LiveApi, free_port

live, af = fixtures()


def test_client_takes_url_and_key_from_the_environment(live: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAFORGE_URL", live.base_url + "/")
    monkeypatch.setenv("ALPHAFORGE_API_KEY", ADMIN_KEY)
    with Client() as af:
        assert af.url == live.base_url
        assert af.health() == {"status": "ready", "database": "sqlite", "object_store": "file"}
        created = af.features.create("env RSI", "technical.rsi", {"period": 3})
        assert created["id"] in [f["id"] for f in af.features.list(limit=1000)]
    monkeypatch.delenv("ALPHAFORGE_API_KEY")
    with Client() as anonymous, pytest.raises(Unauthorized) as refused:
        anonymous.features.list()
    assert refused.value.status_code == 401 and refused.value.code == "unauthorized" and refused.value.detail


def test_rsi_for_gspc_is_a_whole_dataframe_equal_to_talib_on_the_bars_read_through_the_api(af: Client) -> None:
    rsi = af.features.create("14-period RSI", "technical.rsi", {"period": 14})
    frame = af.features.generate(rsi["id"], "GSPC", "2010-01-01", "2019-01-01")

    bars = af.market_data.bars("GSPC")  # every stored bar: RSI's warm-up starts at the first one
    independent = pd.Series(talib.RSI(bars["close"].to_numpy(dtype=float), timeperiod=14), index=bars.index)
    expected = independent[(independent.index >= "2010-01-01") & (independent.index < "2019-01-01")]
    assert len(frame) == len(expected) >= 2000
    assert list(frame.columns) == ["rsi"] and isinstance(frame.index, pd.DatetimeIndex)
    assert (frame.index == expected.index).all()
    np.testing.assert_allclose(frame["rsi"].to_numpy(), expected.to_numpy(), rtol=1e-10)
    dataset = frame.attrs["dataset"]
    assert dataset["row_count"] == len(frame) and frame.attrs["cached"] is False

    again = af.features.generate(rsi["id"], "GSPC", "2010-01-01", "2019-01-01")
    assert again.attrs["cached"] is True and again.attrs["dataset"]["id"] == dataset["id"]
    versions = af.features.versions(rsi["id"], "GSPC")
    assert [v["id"] for v in versions] == [dataset["id"]]
    pd.testing.assert_frame_equal(af.features.dataset(rsi["id"], dataset["id"]), frame)


def test_generate_async_waits_with_a_progress_bar_and_gives_the_same_frame(af: Client) -> None:
    feature = af.features.create("RSI 6", "technical.rsi", {"period": 6})
    task = af.features.generate_async(feature["id"], "IXIC", "2015-01-01", "2017-01-01")
    assert task.kind == "generate" and task.status == "PENDING"
    stream = io.StringIO()
    frame = task.wait(progress=True, file=stream)
    assert task.status == "SUCCESS" and task.progress == 1.0
    assert "generate: 100%" in stream.getvalue()
    pd.testing.assert_frame_equal(frame, af.features.generate(feature["id"], "IXIC", "2015-01-01", "2017-01-01"))
    assert len(frame) == frame.attrs["dataset"]["row_count"] > 400


def test_a_batch_generates_every_feature_for_every_symbol(af: Client) -> None:
    ids = [af.features.create(f"RSI {p}", "technical.rsi", {"period": p})["id"] for p in (5, 9)]
    result = af.features.generate_batch(ids, ["GSPC", "IXIC"], "2016-01-01", "2017-01-01").wait(progress=False)
    pairs = [(i["feature_id"], i["symbol"], i["status"]) for i in result["items"]]
    assert pairs == [(f, s, "SUCCESS") for f in ids for s in ("GSPC", "IXIC")]
    item = result["items"][-1]
    frame = af.features.dataset(item["feature_id"], item["dataset"]["id"])
    assert len(frame) == item["dataset"]["row_count"] == len(af.market_data.bars("IXIC", "2016-01-01", "2017-01-01"))

def test_bars_ingested_from_a_dataframe_read_back_equal(af: Client) -> None:
    index = pd.date_range("2020-01-01", periods=30, freq="B", tz="UTC", name="timestamp")
    close = 100 + np.cumsum(np.linspace(-1, 1, 30))
    bars = pd.DataFrame({"open": close - 0.5, "high": close + 1, "low": close - 1, "close": close,
                         "volume": np.arange(30, dtype=float) * 1000 + 5}, index=index)
    report = af.market_data.ingest_bars("CLIENTX", bars)
    assert (report["symbol"], report["received"], report["inserted"], report["replaced"]) == ("CLIENTX", 30, 30, 0)
    read = af.market_data.bars("CLIENTX", "2020-01-01", "2021-01-01")
    pd.testing.assert_frame_equal(read[["open", "high", "low", "close", "volume"]], bars, check_freq=False, check_dtype=False)
    assert "CLIENTX" in [s["symbol"] for s in af.market_data.symbols()]

    broken = bars.iloc[:3].copy()
    broken.iloc[1, broken.columns.get_loc("close")] = broken["high"].iloc[1] + 5
    with pytest.raises(ValidationFailed) as refused:
        af.market_data.ingest_bars("CLIENTY", broken)
    assert refused.value.status_code == 422 and "close > high" in refused.value.detail


def test_a_universe_and_its_panel_as_a_dataframe(af: Client) -> None:
    universe = af.universes.create(f"client pair {uuid.uuid4().hex[:6]}",
                                   [{"symbol": "GSPC", "from": "2000-01-01"}, {"symbol": "IXIC", "from": "2016-06-01"}])
    assert af.universes.members(universe["id"], "2016-01-04") == ["GSPC"]
    assert af.universes.members(universe["id"], start="2016-01-01", end="2017-01-01") == ["GSPC", "IXIC"]
    feature = af.features.create("returns 5", "statistical.returns", {"period": 5})
    panel = af.features.panel(feature["id"], "2016-01-01", "2017-01-01", universe=universe["name"])
    assert panel.attrs["panel"]["symbols"] == ["GSPC", "IXIC"]
    assert len(panel) == panel.attrs["panel"]["row_count"]
    per_symbol = panel.reset_index().groupby("symbol")["timestamp"].min()
    assert per_symbol["IXIC"] >= pd.Timestamp("2016-06-01", tz="UTC") > per_symbol["GSPC"]  # a member only from June
    sma = af.features.create("sma 5", "technical.sma", {"period": 5})
    both = af.features.panel_many([feature["id"], sma["id"]], "2016-01-01", "2017-01-01", universe=universe["name"])
    assert list(both) == [feature["id"], sma["id"]]
    pd.testing.assert_frame_equal(both[feature["id"]], panel)  # the stored panel its own request made
    assert both[feature["id"]].attrs["cached"] is True and both[sma["id"]].attrs["cached"] is False
    closes = af.market_data.bars("GSPC", start="2015-12-01", end="2017-01-01")["close"]
    expected = closes.rolling(5).mean().loc["2016-01-01":]  # pandas over the bars the client read back
    got = both[sma["id"]].xs("GSPC", level="symbol")["sma"]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-12)
    later = af.features.panel_many_async([sma["id"]], "2016-01-01", "2017-01-01", universe=universe["name"]).wait(False)
    assert later[sma["id"]].attrs["cached"] is True
    renamed = af.universes.update(universe["id"], version=universe["version"], description="two indices")
    assert renamed["version"] == universe["version"] + 1
    af.universes.delete(universe["id"])
    with pytest.raises(NotFound):
        af.universes.get(universe["id"])


def test_refusals_are_typed_errors_carrying_the_api_detail_and_code(af: Client, live: LiveApi) -> None:
    with pytest.raises(NotFound) as missing:
        af.features.get(str(uuid.uuid4()))
    assert (missing.value.status_code, missing.value.code, missing.value.detail) == (404, "not_found", "Feature not found")
    assert missing.value.request_id

    feature = af.features.create("to edit", "technical.rsi", {"period": 4})
    af.features.update(feature["id"], version=feature["version"], name="edited once")
    with pytest.raises(Conflict) as stale:
        af.features.update(feature["id"], version=feature["version"], name="edited from a stale read")
    assert stale.value.status_code == 409 and stale.value.code == "conflict" and "version" in stale.value.detail

    with pytest.raises(ValidationFailed) as invalid:
        af.features.generate(feature["id"], "GSPC", "2019-01-01", "2010-01-01")
    assert invalid.value.status_code == 422 and invalid.value.code == "invalid_input"
    assert "must be after start_date" in invalid.value.detail and invalid.value.errors

    with Client(live.base_url, "af_not_a_key") as stranger, pytest.raises(Unauthorized) as unknown:
        stranger.features.list()
    assert unknown.value.code == "unauthorized"

    read_key = live.call("POST", "/api/v1/keys", json={"name": "reader", "role": "read"}).json()["key"]
    with Client(live.base_url, read_key) as reader:
        assert reader.features.get(feature["id"])["name"] == "edited once"
        with pytest.raises(Forbidden) as forbidden:
            reader.features.create("not allowed", "technical.rsi")
    assert forbidden.value.status_code == 403 and forbidden.value.code == "forbidden"


def test_no_server_is_a_connection_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, ADMIN_KEY) as af, pytest.raises(ConnectionFailed) as failed:
        af.features.list()
    assert url in str(failed.value)
