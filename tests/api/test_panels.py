"""Panel datasets: one feature over a universe, keyed by (timestamp, symbol), on both backends.

The expected values come from TA-Lib run on skfolio's own copy of the SP20 closes (not from
the service), and the expected memberships are worked out by hand from the spells below: a
spell [from, to) holds a time t when from <= t < to."""

from __future__ import annotations

import io
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import talib
from fastapi.testclient import TestClient
from test_tasks import wait_for
from test_tasks_celery import celery_client, celery_settings, redis_url  # noqa: F401 - fixtures

from alphaforge.features import panels
from alphaforge.features.generation import read_frame

SP20 = ["AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO", "LLY", "MRK", "MSFT", "PEP", "PFE",
        "PG", "RRC", "UNH", "WMT", "XOM"]
RANGE = {"start_date": "2005-01-01", "end_date": "2022-12-29"}
SHORT = {"start_date": "2008-01-01", "end_date": "2014-01-01"}


def rsi(closes: pd.DataFrame, symbol: str, start: str, end: str) -> pd.Series:
    """TA-Lib over the symbol's whole history (RSI is recursive), then the range."""
    close = closes[symbol]
    values = pd.Series(talib.RSI(close.to_numpy(), timeperiod=14), index=close.index)
    return values[(values.index >= pd.Timestamp(start, tz="UTC")) & (values.index < pd.Timestamp(end, tz="UTC"))]


def post_panel(client: TestClient, feature_id: str, **body: object) -> dict:
    response = client.post(f"/api/v1/features/{feature_id}/panels", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def parquet(client: TestClient, feature_id: str, panel_id: str) -> pd.DataFrame:
    response = client.get(f"/api/v1/features/{feature_id}/panels/{panel_id}/data", params={"format": "parquet"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    return pd.read_parquet(io.BytesIO(response.content))


def test_sp20_rsi_panel_holds_each_members_values_and_a_second_request_is_a_hit(
    client: TestClient, create_feature, closes: pd.DataFrame
) -> None:
    feature = create_feature(client, "technical.rsi", {"period": 14})
    first = post_panel(client, feature["id"], universe="SP20", **RANGE)
    panel = first["panel"]
    assert first["cached"] is False and panel["symbols"] == SP20
    assert sorted(p["symbol"] for p in first["pieces"]) == SP20 and not any(p["cached"] for p in first["pieces"])
    assert panel["lineage"]["universe"]["name"] == "SP20" and panel["lineage"]["no_bars"] == []
    # Recorded as the key whose request computed it, as datasets are (the row is written by a worker).
    assert panel["created_by"] is not None and panel["created_by"] == feature["created_by"]

    stored = parquet(client, feature["id"], panel["id"])
    keys = list(zip(stored.index.get_level_values("timestamp"), stored.index.get_level_values("symbol"), strict=True))
    assert keys == sorted(keys) and len(set(keys)) == len(keys) == panel["row_count"]
    for symbol in SP20:
        expected = rsi(closes, symbol, start=RANGE["start_date"], end=RANGE["end_date"])
        mine = stored.xs(symbol, level="symbol")["rsi"]
        assert list(mine.index) == list(expected.index), symbol
        np.testing.assert_allclose(mine.to_numpy(), expected.to_numpy(), rtol=1e-12, err_msg=symbol)
        # ... and the same as the symbol's own single-symbol dataset (the cache unit).
        (version,) = client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": symbol}).json()
        assert version["version_hash"] == next(m["dataset"] for m in panel["lineage"]["members"] if m["symbol"] == symbol)
        np.testing.assert_array_equal(read_frame(client.app.state.ctx, version["storage_uri"])["rsi"], mine)

    again = post_panel(client, feature["id"], universe="SP20", **RANGE)
    assert again["cached"] is True and again["pieces"] == []
    assert again["panel"]["id"] == panel["id"] and again["panel"]["version_hash"] == panel["version_hash"]
    listed = client.get(f"/api/v1/features/{feature['id']}/panels").json()
    assert [p["id"] for p in listed] == [panel["id"]]


def test_a_member_has_rows_only_while_it_is_a_member(client: TestClient, create_feature, closes: pd.DataFrame) -> None:
    """MSFT joins in 2010, KO leaves in 2012: the panel keeps their rows inside the spells."""
    name = f"joiners {pd.Timestamp.now().value}"
    members = [
        {"symbol": "AAPL", "from": "2000-01-01"},
        {"symbol": "MSFT", "from": "2010-01-01"},
        {"symbol": "KO", "from": "2000-01-01", "to": "2012-01-01"},
        {"symbol": "PG", "from": "2015-01-01"},  # after the range: not a member in it
    ]
    universe = client.post("/api/v1/universes", json={"name": name, "members": members})
    assert universe.status_code == 201, universe.text
    feature = create_feature(client, "technical.rsi", {"period": 14})
    spells = post_panel(client, feature["id"], universe=universe.json()["id"], **SHORT)["panel"]
    whole = post_panel(client, feature["id"], symbols=["AAPL", "MSFT", "KO"], **SHORT)["panel"]
    assert spells["symbols"] == whole["symbols"] == ["AAPL", "KO", "MSFT"]
    assert spells["version_hash"] != whole["version_hash"] and spells["universe_id"] == universe.json()["id"]
    assert whole["universe_id"] is None and whole["lineage"]["universe"] is None
    assert [(m["symbol"], m["from"], m["to"]) for m in spells["lineage"]["members"]] == [
        ("AAPL", "2008-01-01T00:00:00Z", "2014-01-01T00:00:00Z"),
        ("KO", "2008-01-01T00:00:00Z", "2012-01-01T00:00:00Z"),
        ("MSFT", "2010-01-01T00:00:00Z", "2014-01-01T00:00:00Z"),
    ]

    stored = parquet(client, feature["id"], spells["id"])
    msft, ko = stored.xs("MSFT", level="symbol")["rsi"], stored.xs("KO", level="symbol")["rsi"]
    assert msft.index.min() >= pd.Timestamp("2010-01-01", tz="UTC") and ko.index.max() < pd.Timestamp("2012-01-01", tz="UTC")
    # Values do not depend on the spell: warm-up is read before the join, as for one symbol.
    np.testing.assert_allclose(msft.to_numpy(), rsi(closes, "MSFT", "2010-01-01", "2014-01-01").to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ko.to_numpy(), rsi(closes, "KO", "2008-01-01", "2012-01-01").to_numpy(), rtol=1e-12)
    full = parquet(client, feature["id"], whole["id"])
    assert len(full.xs("MSFT", level="symbol")) > len(msft) and len(full) > len(stored)
    # Both panels' rows shared by the spells are equal.
    pd.testing.assert_frame_equal(full.loc[stored.index], stored)


def test_a_cold_panels_preview_is_its_first_rows_across_every_batch(client: TestClient, create_feature) -> None:
    """The workers each preview their own batch and the panel keeps the first rows of those:
    members joining on different days put the panel's first rows in both workers' batches."""
    name = f"staggered {pd.Timestamp.now().value}"
    joins = {"AAPL": "2008-01-04", "KO": "2008-01-02", "MSFT": "2008-01-08", "PG": "2008-01-03", "XOM": "2008-01-02"}
    members = [{"symbol": s, "from": day} for s, day in joins.items()]
    universe = client.post("/api/v1/universes", json={"name": name, "members": members})
    assert universe.status_code == 201, universe.text
    feature = create_feature(client, "technical.rsi", {"period": 14})
    cold = post_panel(client, feature["id"], universe=universe.json()["id"], **SHORT)
    assert cold["cached"] is False and len(cold["pieces"]) == 5

    first = parquet(client, feature["id"], cold["panel"]["id"]).sort_index().head(10)
    expected = [(t.isoformat(), s, v) for (t, s), v in zip(first.index, first["rsi"], strict=True)]
    assert [(r["timestamp"], r["symbol"], r["rsi"]) for r in cold["preview"]] == expected
    assert {s for _, s, _ in expected} == {"AAPL", "KO", "PG", "XOM"}  # MSFT joins after the first 10 rows
    # A process that never saw the build reads the same rows from the pieces' heads.
    panels._PREVIEWS.clear()
    assert post_panel(client, feature["id"], universe=universe.json()["id"], **SHORT)["preview"] == cold["preview"]


def test_adding_a_symbol_computes_only_that_symbol(client: TestClient, create_feature) -> None:
    feature = create_feature(client, "technical.rsi", {"period": 14})
    first = post_panel(client, feature["id"], symbols=["aapl", "KO"], **SHORT)
    assert first["panel"]["symbols"] == ["AAPL", "KO"]
    assert {p["symbol"]: p["cached"] for p in first["pieces"]} == {"AAPL": False, "KO": False}
    created = {s: client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": s}).json() for s in ("AAPL", "KO")}

    second = post_panel(client, feature["id"], symbols=["AAPL", "KO", "MSFT"], **SHORT)
    assert second["cached"] is False and second["panel"]["version_hash"] != first["panel"]["version_hash"]
    assert {p["symbol"]: p["cached"] for p in second["pieces"]} == {"AAPL": True, "KO": True, "MSFT": False}
    ids = {p["symbol"]: p["dataset_id"] for p in second["pieces"]}
    for symbol, before in created.items():
        after = client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": symbol}).json()
        assert after == before and ids[symbol] == before[0]["id"]  # same row, same created_at: not recomputed


def test_a_restated_member_makes_a_new_panel_and_recomputes_only_that_member(
    fresh_client: TestClient, create_feature, closes: pd.DataFrame
) -> None:
    client = fresh_client
    feature = create_feature(client, "technical.rsi", {"period": 14})
    first = post_panel(client, feature["id"], symbols=["AAPL", "KO"], **SHORT)
    day = pd.Timestamp("2010-06-01", tz="UTC")
    restated = pd.DataFrame({"timestamp": [day], "close": [closes.loc[day, "AAPL"] * 1.1]})
    buffer = io.StringIO()
    restated.to_csv(buffer, index=False)
    upload = client.post("/api/v1/market-data/AAPL/bars", files={"file": ("bars.csv", buffer.getvalue(), "text/csv")})
    assert upload.status_code == 200, upload.text

    second = post_panel(client, feature["id"], symbols=["AAPL", "KO"], **SHORT)
    assert second["cached"] is False and second["panel"]["version_hash"] != first["panel"]["version_hash"]
    assert {p["symbol"]: p["cached"] for p in second["pieces"]} == {"AAPL": False, "KO": True}
    before, after = (parquet(client, feature["id"], r["panel"]["id"]) for r in (first, second))
    changed = (before["rsi"] != after["rsi"]).groupby(level="symbol").sum()
    assert changed["KO"] == 0 and changed["AAPL"] > 0
    assert before.xs("AAPL", level="symbol").index[before.xs("AAPL", level="symbol")["rsi"]
                                                  != after.xs("AAPL", level="symbol")["rsi"]].min() == day
    assert [p["id"] for p in client.get(f"/api/v1/features/{feature['id']}/panels").json()] == [
        first["panel"]["id"], second["panel"]["id"]]


def test_a_stored_panel_is_found_by_its_request_key_without_planning_any_member(
    client: TestClient, create_feature, monkeypatch: pytest.MonkeyPatch
) -> None:
    feature = create_feature(client, "technical.rsi", {"period": 14})
    first = post_panel(client, feature["id"], symbols=["AAPL", "KO"], **SHORT)

    def no_planning(*args: object, **kwargs: object) -> None:
        raise AssertionError("a hit planned a member's dataset")

    monkeypatch.setattr(panels, "plan_dataset", no_planning)
    again = post_panel(client, feature["id"], symbols=["KO", "AAPL"], **SHORT)
    assert again["cached"] is True and again["panel"]["id"] == first["panel"]["id"]
    assert again["preview"] == first["preview"] and len(again["preview"]) == 10
    monkeypatch.setattr(panels, "_PREVIEWS", {})  # as in a process that never saw it: read from the object's head
    assert post_panel(client, feature["id"], symbols=["KO", "AAPL"], **SHORT)["preview"] == first["preview"]


def test_a_restatement_outside_every_members_bars_keeps_the_panel(
    fresh_client: TestClient, create_feature, closes: pd.DataFrame
) -> None:
    """A new series fingerprint is a new request key; the pieces planned again hash as before
    (SMA(5) reads 4 bars before the range), so the same panel answers and remembers the key."""
    client = fresh_client
    feature = create_feature(client, "technical.sma", {"period": 5})
    first = post_panel(client, feature["id"], symbols=["AAPL", "KO"], **SHORT)
    day = pd.Timestamp("2001-06-01", tz="UTC")
    restated = pd.DataFrame({"timestamp": [day], "close": [closes.loc[day, "AAPL"] * 1.1]})
    upload = client.post("/api/v1/market-data/AAPL/bars", files={"file": ("bars.csv", restated.to_csv(index=False), "text/csv")})
    assert upload.status_code == 200, upload.text

    second = post_panel(client, feature["id"], symbols=["AAPL", "KO"], **SHORT)
    assert second["cached"] is True and second["panel"]["id"] == first["panel"]["id"]
    assert second["panel"]["request_key"] != first["panel"]["request_key"]
    assert len(client.get(f"/api/v1/features/{feature['id']}/panels").json()) == 1
    third = post_panel(client, feature["id"], symbols=["AAPL", "KO"], **SHORT)
    assert third["cached"] is True and third["panel"]["request_key"] == second["panel"]["request_key"]


def test_a_weekly_panel_holds_what_each_members_weekly_dataset_holds(client: TestClient, create_feature) -> None:
    """Weekly bars (aggregated from the daily series on read) share its catalog entry: the
    request key covers them, and the panel holds each member's weekly dataset."""
    feature = create_feature(client, "technical.sma", {"period": 2})
    body = {"timeframe": "1w", "start_date": "1990-01-01", "end_date": "1990-03-01"}
    single = {s: client.post(f"/api/v1/features/{feature['id']}/generate", json={"symbol": s, **body}) for s in ("KO", "PG")}
    assert {r.status_code for r in single.values()} == {200}, {s: r.text for s, r in single.items()}
    panel = post_panel(client, feature["id"], symbols=["KO", "PG"], **body)
    stored = parquet(client, feature["id"], panel["panel"]["id"])
    for symbol, answer in single.items():
        dataset = answer.json()["dataset"]
        expected = read_frame(client.app.state.ctx, dataset["storage_uri"])
        got = stored.xs(symbol, level="symbol")
        assert len(got) == dataset["row_count"] >= 1
        np.testing.assert_array_equal(got.index, expected.index)
        np.testing.assert_array_equal(got["sma"].to_numpy(), expected["sma"].to_numpy())
    again = post_panel(client, feature["id"], symbols=["PG", "KO"], **body)
    assert again["cached"] is True and again["panel"]["id"] == panel["panel"]["id"]


def _stored_panel(client: TestClient, create_feature) -> tuple[dict, dict, Callable[[], pd.DataFrame]]:
    """An RSI panel of PG and KO, and a reader of its values through the data route."""
    feature = create_feature(client, "technical.rsi", {"period": 14})
    first = post_panel(client, feature["id"], symbols=["PG", "KO"], **SHORT)
    data = f"/api/v1/features/{feature['id']}/panels/{first['panel']['id']}/data"
    return feature, first, lambda: pd.read_parquet(io.BytesIO(client.get(data, params={"format": "parquet"}).content))


def test_a_panel_whose_object_was_lost_is_computed_and_stored_again(client: TestClient, create_feature) -> None:
    ctx = client.app.state.ctx
    feature, first, read = _stored_panel(client, create_feature)
    expected = read()
    key = ctx.objects.key_of(first["panel"]["storage_uri"])
    ctx.objects.delete(key)
    again = post_panel(client, feature["id"], symbols=["PG", "KO"], **SHORT)
    assert again["cached"] is False and again["panel"]["id"] == first["panel"]["id"] and ctx.objects.exists(key)
    pd.testing.assert_frame_equal(read(), expected)


def test_a_panel_whose_piece_was_lost_is_a_miss_that_stores_the_piece_again(client: TestClient, create_feature) -> None:
    """The panel's object is a view over its pieces: a hit must find every piece it names."""
    ctx = client.app.state.ctx
    feature, first, read = _stored_panel(client, create_feature)
    expected = read()
    (ko,) = client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": "KO"}).json()
    ctx.objects.delete(ctx.objects.key_of(ko["storage_uri"]))
    # The download's stacked copy still holds every value; without it the lost piece is a 404.
    pd.testing.assert_frame_equal(read(), expected)
    ctx.objects.delete(panels.panel_store.stacked_key(ctx, first["panel"]["storage_uri"]))
    data = f"/api/v1/features/{feature['id']}/panels/{first['panel']['id']}/data"
    lost = client.get(data, params={"format": "parquet"})
    assert lost.status_code == 404 and "generate the panel again" in lost.json()["detail"]
    again = post_panel(client, feature["id"], symbols=["PG", "KO"], **SHORT)
    assert again["cached"] is False and again["panel"]["id"] == first["panel"]["id"]
    assert {p["symbol"]: p["cached"] for p in again["pieces"]} == {"KO": False, "PG": True}
    pd.testing.assert_frame_equal(read(), expected)


def test_async_panel_is_a_task_with_one_batch_of_members_per_worker(client: TestClient, create_feature) -> None:
    feature = create_feature(client, "technical.rsi", {"period": 14})
    response = client.post(f"/api/v1/features/{feature['id']}/panels/async", json={"symbols": ["AAPL", "PG"], **SHORT})
    assert response.status_code == 202, response.text
    task = wait_for(client, response.json()["task_id"])
    assert task["status"] == "SUCCESS", task
    assert task["kind"] == "generate_panel" and task["children_total"] == 2
    sync = post_panel(client, feature["id"], symbols=["PG", "AAPL"], **SHORT)
    assert sync["cached"] is True and sync["panel"]["id"] == task["result"]["panel"]["id"]


def test_concurrent_identical_requests_end_with_one_panel(client: TestClient, create_feature) -> None:
    ctx = client.app.state.ctx
    feature = create_feature(client, "technical.rsi", {"period": 14})
    body = {"symbols": ["JNJ", "PFE", "MRK"], **SHORT}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: client.post(f"/api/v1/features/{feature['id']}/panels", json=body), range(4)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    (row,) = client.get(f"/api/v1/features/{feature['id']}/panels").json()
    assert {a.json()["panel"]["id"] for a in answers} == {row["id"]}
    prefix = ctx.objects.key_of(row["storage_uri"]).rsplit("/", 1)[0]
    assert [k for k in ctx.objects.list(prefix) if ".tmp-" not in k] == [ctx.objects.key_of(row["storage_uri"])]


def test_pieces_committed_first_by_a_concurrent_batch_answer_with_the_stored_ids(
    client: TestClient, create_feature, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race behind the test above, made certain: another batch commits the same pieces
    after this one looked for them and before it inserts its own (CI once saw that answer
    with ids of rows that were rolled back: a 500)."""
    from alphaforge.features import generation
    from alphaforge.schemas.features import FeatureGenerateRequest

    ctx = client.app.state.ctx
    feature = create_feature(client, "technical.rsi", {"period": 14})
    requests = [FeatureGenerateRequest(symbol=s, **SHORT) for s in ("JNJ", "PFE")]
    first = generation.generate_pieces(ctx, uuid.UUID(feature["id"]), requests)
    monkeypatch.setattr(generation, "_find_many", lambda *_: {})  # the lookup ran before that commit
    second = generation.generate_pieces(ctx, uuid.UUID(feature["id"]), requests)
    assert [p.dataset.id for p in second] == [p.dataset.id for p in first]
    assert all(p.dataset.id is not None for p in first)
    stored = client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": "JNJ"}).json()
    assert [row["id"] for row in stored] == [str(first[0].dataset.id)]


def test_json_and_parquet_forms_agree(client: TestClient, create_feature) -> None:
    feature = create_feature(client, "technical.rsi", {"period": 14})
    panel = post_panel(client, feature["id"], symbols=["AAPL", "KO"], **SHORT)["panel"]
    records = client.get(f"/api/v1/features/{feature['id']}/panels/{panel['id']}/data")
    assert records.status_code == 200 and records.headers["content-type"] == "application/json"
    as_json = pd.DataFrame(records.json())
    assert list(as_json.columns) == ["timestamp", "symbol", "rsi"] and len(as_json) == panel["row_count"]
    as_json["timestamp"] = pd.to_datetime(as_json["timestamp"], utc=True)
    stored = parquet(client, feature["id"], panel["id"]).reset_index()
    stored["timestamp"] = stored["timestamp"].dt.as_unit("ns")
    as_json["timestamp"] = as_json["timestamp"].dt.as_unit("ns")
    pd.testing.assert_frame_equal(as_json.astype({"rsi": "float64"}), stored)
    assert as_json["rsi"].isna().sum() == 0  # warm-up came from before the range


def test_a_panel_of_pieces_is_stacked_for_download_by_a_task_worker_once(
    client: TestClient, create_feature, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API process never reads and sorts every piece: a stack_panel task does, once;
    later downloads read its stacked copy. A lost piece is a 404 saying what to do."""
    feature = create_feature(client, "technical.rsi", {"period": 14})
    panel = post_panel(client, feature["id"], symbols=["AAPL", "KO"], **SHORT)["panel"]

    def not_here(*args: object) -> None:
        raise AssertionError("the API process stacked a panel")

    monkeypatch.setattr(panels.panel_store, "read_frame", not_here)  # this process only; workers are others
    first = parquet(client, feature["id"], panel["id"])
    assert sorted(first.index.get_level_values("symbol").unique()) == ["AAPL", "KO"] and len(first) == panel["row_count"]
    def stacked() -> list[dict]:
        listed = client.get("/api/v1/tasks", params={"kind": "stack_panel", "limit": 500}).json()
        return [t for t in listed if (t["result"] or {}).get("panel_id") == panel["id"]]

    assert [t["status"] for t in stacked()] == ["SUCCESS"]
    pd.testing.assert_frame_equal(parquet(client, feature["id"], panel["id"]), first)
    assert len(stacked()) == 1

    other = post_panel(client, feature["id"], symbols=["AAPL", "PG"], **SHORT)["panel"]
    ctx = client.app.state.ctx
    (piece,) = client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": "PG"}).json()
    ctx.objects.delete(ctx.objects.key_of(piece["storage_uri"]))
    lost = client.get(f"/api/v1/features/{feature['id']}/panels/{other['id']}/data", params={"format": "parquet"})
    assert lost.status_code == 404 and "generate the panel again" in lost.json()["detail"]


def test_json_over_the_row_cap_is_refused(client: TestClient, create_feature, monkeypatch: pytest.MonkeyPatch) -> None:
    from alphaforge.features import panels

    feature = create_feature(client, "technical.rsi", {"period": 14})
    panel = post_panel(client, feature["id"], symbols=["AAPL"], **SHORT)["panel"]
    monkeypatch.setattr(panels, "JSON_MAX_ROWS", panel["row_count"] - 1)
    refused = client.get(f"/api/v1/features/{feature['id']}/panels/{panel['id']}/data", params={"format": "json"})
    assert refused.status_code == 422 and "format=parquet" in refused.json()["detail"]
    assert len(parquet(client, feature["id"], panel["id"])) == panel["row_count"]


def test_atr_on_sp20_is_a_422_naming_the_missing_fields(client: TestClient, create_feature) -> None:
    feature = create_feature(client, "technical.atr", {"period": 14})
    for path in ("panels", "panels/async"):
        response = client.post(f"/api/v1/features/{feature['id']}/{path}", json={"universe": "SP20", **RANGE})
        assert response.status_code == 422, (path, response.text)
        body = response.json()
        assert body["missing_fields"] == ["high", "low"] and body["symbols"] == SP20
        assert "AAPL lacks high, low" in body["detail"] and "XOM lacks high, low" in body["detail"]
    assert not client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": "AAPL"}).json()
    assert client.get(f"/api/v1/features/{feature['id']}/panels").json() == []


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({"universe": "NO SUCH UNIVERSE", **SHORT}, 404, "'NO SUCH UNIVERSE'"),
        ({"universe": "SP20", "symbols": ["AAPL"], **SHORT}, 422, "exactly one of universe and symbols"),
        ({**SHORT}, 422, "exactly one of universe and symbols"),
        ({"symbols": ["AAPL", "aapl"], **SHORT}, 422, "repeated: AAPL"),
        ({"symbols": [], **SHORT}, 422, ""),
        ({"symbols": ["NOSUCHSYM"], **SHORT}, 422, "NOSUCHSYM"),
        ({"symbols": ["AAPL"], "start_date": "2014-01-01", "end_date": "2008-01-01"}, 422, "must be after"),
        ({"symbols": ["AAPL"], "start_date": "1980-01-01", "end_date": "1981-01-01"}, 422, "no member has 1d bars"),
    ],
)
def test_bad_panel_requests_are_refused(client: TestClient, create_feature, body: dict, status: int, expected: str) -> None:
    feature = create_feature(client, "technical.rsi", {"period": 14})
    response = client.post(f"/api/v1/features/{feature['id']}/panels", json=body)
    assert response.status_code == status, response.text
    assert expected in str(response.json()["detail"])


def test_unknown_feature_or_panel_is_a_404(client: TestClient, create_feature) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.post(f"/api/v1/features/{missing}/panels", json={"universe": "SP20", **SHORT}).status_code == 404
    assert client.get(f"/api/v1/features/{missing}/panels").status_code == 404
    feature = create_feature(client, "technical.rsi", {"period": 14})
    assert client.get(f"/api/v1/features/{feature['id']}/panels/{missing}/data").status_code == 404


def test_deleting_the_universe_keeps_its_panels_and_deleting_the_feature_removes_them(
    client: TestClient, create_feature
) -> None:
    ctx = client.app.state.ctx
    name = f"to delete {pd.Timestamp.now().value}"
    universe = client.post("/api/v1/universes", json={"name": name, "members": [{"symbol": "KO", "from": "2000-01-01"}]}).json()
    feature = create_feature(client, "technical.rsi", {"period": 14})
    panel = post_panel(client, feature["id"], universe=name, **SHORT)["panel"]
    assert panel["universe_id"] == universe["id"]
    assert client.delete(f"/api/v1/universes/{universe['id']}").status_code == 204
    (kept,) = client.get(f"/api/v1/features/{feature['id']}/panels").json()
    assert kept["id"] == panel["id"] and kept["universe_id"] is None and kept["lineage"]["universe"]["name"] == name

    key = ctx.objects.key_of(panel["storage_uri"])
    assert key.endswith(f"/panels/{panel['version_hash']}.pieces.json") and ctx.objects.get(key)
    parquet(client, feature["id"], panel["id"])  # a download stacks a copy of the pieces
    stacked = key.removesuffix(".pieces.json") + ".stacked.parquet"
    assert ctx.objects.exists(stacked)
    (piece,) = client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": "KO"}).json()
    assert client.delete(f"/api/v1/features/{feature['id']}").status_code == 204
    assert client.get(f"/api/v1/features/{feature['id']}/panels").status_code == 404
    assert key not in ctx.objects.list(key.rsplit("/", 1)[0]) and not ctx.objects.exists(stacked)
    assert not ctx.objects.exists(ctx.objects.key_of(piece["storage_uri"]))


def test_a_panel_through_celery_fans_out_in_batches_of_members_and_matches_talib(
    celery_client: TestClient, create_feature, closes: pd.DataFrame  # noqa: F811
) -> None:
    client = celery_client
    feature = create_feature(client, "technical.rsi", {"period": 14})
    response = client.post(f"/api/v1/features/{feature['id']}/panels/async", json={"symbols": ["AAPL", "KO", "XOM"], **SHORT})
    task = wait_for(client, response.json()["task_id"])
    # One batch of pieces per task worker (2 here): members 1-2 and 3, each its own dataset.
    workers = client.app.state.ctx.settings.task_workers
    assert workers == 2 and task["status"] == "SUCCESS" and task["children_done"] == 2, task
    assert sorted(p["symbol"] for p in task["result"]["pieces"]) == ["AAPL", "KO", "XOM"]
    assert len({p["dataset_id"] for p in task["result"]["pieces"]}) == 3
    panel = task["result"]["panel"]
    stored = parquet(client, feature["id"], panel["id"])
    for symbol in ("AAPL", "KO", "XOM"):
        expected = rsi(closes, symbol, SHORT["start_date"], SHORT["end_date"])
        np.testing.assert_allclose(stored.xs(symbol, level="symbol")["rsi"].to_numpy(), expected.to_numpy(), rtol=1e-12)
    again = post_panel(client, feature["id"], symbols=["XOM", "KO", "AAPL"], **SHORT)
    assert again["cached"] is True and again["panel"]["id"] == panel["id"]
