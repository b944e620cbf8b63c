"""A batch of panel pieces is stored as one object (a bundle), each piece one row group of
it, on both backends: every piece reads back as TA-Lib computes it on skfolio's own SP20
closes, a lost bundle is computed and stored again under the same dataset rows, a
regenerated piece gets an object of its own, and deleting the feature deletes its bundles."""

from __future__ import annotations

import io

import pandas as pd
import talib
from fastapi.testclient import TestClient

from alphaforge.features import dataset_objects

SYMBOLS = ["AAPL", "KO", "PG", "XOM", "JNJ", "MSFT"]
SHORT = {"start_date": "2008-01-01", "end_date": "2014-01-01"}


def rsi(closes: pd.DataFrame, symbol: str) -> pd.Series:
    """TA-Lib over the symbol's whole history (RSI is recursive), then the range."""
    close = closes[symbol]
    values = pd.Series(talib.RSI(close.to_numpy(), timeperiod=14), index=close.index, name="rsi")
    start, end = pd.Timestamp(SHORT["start_date"], tz="UTC"), pd.Timestamp(SHORT["end_date"], tz="UTC")
    return values[(values.index >= start) & (values.index < end)]


def _panel(client: TestClient, feature_id: str) -> dict:
    response = client.post(f"/api/v1/features/{feature_id}/panels", json={"symbols": SYMBOLS, **SHORT})
    assert response.status_code == 200, response.text
    return response.json()


def _datasets(client: TestClient, feature_id: str) -> dict[str, dict]:
    listed = client.get(f"/api/v1/features/{feature_id}/datasets").json()
    return {d["symbol"]: d for d in listed}


def _values(client: TestClient, feature_id: str, dataset: dict) -> pd.Series:
    response = client.get(f"/api/v1/features/{feature_id}/datasets/{dataset['id']}/data", params={"format": "parquet"})
    assert response.status_code == 200, response.text
    return pd.read_parquet(io.BytesIO(response.content))["rsi"]


def _all_stored(ctx: object, datasets: list[dict]) -> bool:
    """Does every row's object exist? (The module's app is shared: only these rows.)"""
    return all(dataset_objects.exists_many(ctx, [d["storage_uri"] for d in datasets]))


def test_a_batch_of_pieces_is_one_object_and_each_piece_reads_back_as_talib_computes_it(
    client: TestClient, create_feature, closes: pd.DataFrame
) -> None:
    feature = create_feature(client, "technical.rsi", {"period": 14})
    _panel(client, feature["id"])
    datasets = _datasets(client, feature["id"])
    objects = {dataset_objects.split(d["storage_uri"])[0] for d in datasets.values()}
    # Two task workers: two batches of three pieces, each batch one object of three row groups.
    assert len(objects) == 2 and all("/bundle-" in uri for uri in objects)
    assert sorted(dataset_objects.split(d["storage_uri"])[1] for d in datasets.values()) == [0, 0, 1, 1, 2, 2]
    for symbol, dataset in datasets.items():
        got = _values(client, feature["id"], dataset)
        expected = rsi(closes, symbol)
        assert len(got) == dataset["row_count"] == len(expected)
        pd.testing.assert_series_equal(got, expected, check_freq=False, check_index_type=False, check_names=False)


def test_a_lost_bundle_is_computed_and_stored_again_under_the_same_rows(
    client: TestClient, create_feature, closes: pd.DataFrame
) -> None:
    """Its pieces are misses: computed again in whatever batches the next requests make,
    stored, and their rows (same ids) point at where they now are."""
    ctx = client.app.state.ctx
    feature = create_feature(client, "technical.rsi", {"period": 14})
    first = _panel(client, feature["id"])
    before = _datasets(client, feature["id"])
    lost = dataset_objects.split(before["KO"]["storage_uri"])[0]
    in_it = sorted(s for s, d in before.items() if dataset_objects.split(d["storage_uri"])[0] == lost)
    kept = sorted(set(SYMBOLS) - set(in_it))
    ctx.objects.delete(ctx.objects.key_of(lost))

    # Two of the lost pieces with a kept one: other batches, so other objects.
    response = client.post(f"/api/v1/features/{feature['id']}/panels", json={"symbols": in_it[:2] + kept[:1], **SHORT})
    assert response.status_code == 200, response.text
    assert {p["symbol"]: p["cached"] for p in response.json()["pieces"]} == {in_it[0]: False, in_it[1]: False, kept[0]: True}
    moved = _datasets(client, feature["id"])
    assert all(dataset_objects.split(moved[s]["storage_uri"])[0] != lost for s in in_it[:2])
    assert _all_stored(ctx, [moved[s] for s in in_it[:2]])

    again = _panel(client, feature["id"])  # the whole panel: a miss for the last lost piece only
    assert again["cached"] is False and again["panel"]["id"] == first["panel"]["id"]
    assert [p["symbol"] for p in again["pieces"] if not p["cached"]] == in_it[2:]
    after = _datasets(client, feature["id"])
    assert {s: d["id"] for s, d in after.items()} == {s: d["id"] for s, d in before.items()}
    assert _all_stored(ctx, list(after.values()))
    for symbol in SYMBOLS:
        pd.testing.assert_series_equal(_values(client, feature["id"], after[symbol]), rsi(closes, symbol),
                                       check_freq=False, check_index_type=False, check_names=False)


def test_a_regenerated_piece_gets_an_object_of_its_own_and_its_bundle_still_serves_the_rest(
    client: TestClient, create_feature, closes: pd.DataFrame
) -> None:
    ctx = client.app.state.ctx
    feature = create_feature(client, "technical.rsi", {"period": 14})
    _panel(client, feature["id"])
    before = _datasets(client, feature["id"])
    response = client.post(f"/api/v1/features/{feature['id']}/regenerate", json={"symbol": "KO", **SHORT})
    assert response.status_code == 200, response.text
    assert response.json()["dataset"]["id"] == before["KO"]["id"]
    after = _datasets(client, feature["id"])
    own, part = dataset_objects.split(after["KO"]["storage_uri"])
    assert part is None and ctx.objects.exists(ctx.objects.key_of(own))
    assert {s: d["storage_uri"] for s, d in after.items() if s != "KO"} == {
        s: d["storage_uri"] for s, d in before.items() if s != "KO"}
    assert _all_stored(ctx, list(after.values()))
    for symbol in SYMBOLS:
        pd.testing.assert_series_equal(_values(client, feature["id"], after[symbol]), rsi(closes, symbol),
                                       check_freq=False, check_index_type=False, check_names=False)


def test_deleting_the_feature_deletes_its_bundles(client: TestClient, create_feature) -> None:
    ctx = client.app.state.ctx
    feature = create_feature(client, "technical.rsi", {"period": 14})
    _panel(client, feature["id"])
    prefix = ctx.objects.key_of(client.get(f"/api/v1/features/{feature['id']}").json()["storage_uri"])
    assert any("/bundle-" in key for key in ctx.objects.list(prefix))
    assert client.delete(f"/api/v1/features/{feature['id']}").status_code == 204
    assert ctx.objects.list(prefix) == []
