"""Feature definitions CRUD: the seed's contract, validation, optimistic locking, delete."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

RSI = {"name": "14-period RSI", "type": "technical", "plugin_key": "technical.rsi", "parameters": {"period": 14}}
RANGE = {"symbol": "GSPC", "start_date": "2015-01-01", "end_date": "2016-01-01"}


def test_create_returns_201_with_every_field(client: TestClient) -> None:
    response = client.post("/api/v1/features", json={**RSI, "description": "momentum oscillator"})
    assert response.status_code == 201
    body = response.json()
    assert uuid.UUID(body["id"])
    assert {k: body[k] for k in RSI} == RSI
    assert body["description"] == "momentum oscillator"
    assert body["version"] == 1
    assert body["storage_uri"] is None
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")


def test_parameters_default_to_empty(client: TestClient) -> None:
    body = client.post("/api/v1/features", json={"name": "obv", "type": "technical", "plugin_key": "technical.obv"}).json()
    assert body["parameters"] == {}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"type": "sentiment"}, "type"),
        ({"plugin_key": "technical.nope"}, "unknown feature plugin 'technical.nope'; registered: "),
        ({"parameters": {"length": 14}}, "unknown parameter 'length' (valid: period, column)"),
        ({"parameters": {"period": "14"}}, "period: Input should be a valid integer"),
        ({"parameters": {"period": 1}}, "period: Input should be greater than or equal to 2"),
        ({"type": "statistical"}, "plugin technical.rsi is in category 'technical', not 'statistical'"),
        ({"name": "x" * 256}, "name"),
    ],
)
def test_create_rejects_bad_definitions_with_a_message(client: TestClient, change: dict, expected: str) -> None:
    response = client.post("/api/v1/features", json={**RSI, **change})
    assert response.status_code == 422
    assert expected in str(response.json()["detail"])


def test_unknown_plugin_message_lists_registered_keys(client: TestClient) -> None:
    detail = client.post("/api/v1/features", json={**RSI, "plugin_key": "rsi"}).json()["detail"]
    assert "technical.rsi" in detail and "statistical.autocorr" in detail


def test_get_and_404(client: TestClient, create_feature) -> None:
    created = create_feature(client, "technical.sma", {"period": 50})
    assert client.get(f"/api/v1/features/{created['id']}").json() == created
    missing = client.get(f"/api/v1/features/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "Feature not found"


def test_malformed_id_is_422(client: TestClient) -> None:
    assert client.get("/api/v1/features/not-a-uuid").status_code == 422


def test_list_pages_in_creation_order(client: TestClient, create_feature) -> None:
    ids = [create_feature(client, "technical.ema", {"period": p})["id"] for p in (5, 6, 7)]
    listed = [f["id"] for f in client.get("/api/v1/features", params={"limit": 1000}).json()]
    positions = [listed.index(i) for i in ids]
    assert positions == sorted(positions)
    start = positions[0]
    page = client.get("/api/v1/features", params={"skip": start + 1, "limit": 1}).json()
    assert [f["id"] for f in page] == [ids[1]]
    assert client.get("/api/v1/features", params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/features", params={"skip": -1}).status_code == 422


def test_patch_is_partial_and_bumps_version(client: TestClient, create_feature) -> None:
    created = create_feature(client, "technical.rsi", {"period": 14}, description="first")
    response = client.patch(f"/api/v1/features/{created['id']}", json={"name": "renamed"})
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "renamed"
    assert body["description"] == "first"
    assert body["parameters"] == {"period": 14}
    assert body["version"] == 2
    body = client.patch(f"/api/v1/features/{created['id']}", json={"parameters": {"period": 21}}).json()
    assert body["parameters"] == {"period": 21} and body["version"] == 3


def test_patch_parameters_replace_and_are_validated_against_the_plugin(client: TestClient, create_feature) -> None:
    created = create_feature(client, "technical.macd", {"fast_period": 8, "slow_period": 21})
    url = f"/api/v1/features/{created['id']}"
    bad = client.patch(url, json={"parameters": {"fast_period": 30}})
    assert bad.status_code == 422
    assert "fast_period must be smaller than slow_period" in bad.json()["detail"]
    # Switching plugin re-validates the stored parameters against the new plugin.
    switch = client.patch(url, json={"plugin_key": "technical.rsi"})
    assert switch.status_code == 422 and "unknown parameter" in switch.json()["detail"]
    ok = client.patch(url, json={"plugin_key": "technical.rsi", "parameters": {"period": 10}})
    assert ok.status_code == 200 and ok.json()["plugin_key"] == "technical.rsi"
    assert client.get(url).json()["version"] == 2


def test_patch_with_stale_version_is_409(client: TestClient, create_feature) -> None:
    created = create_feature(client, "technical.rsi", {"period": 14})
    url = f"/api/v1/features/{created['id']}"
    assert client.patch(url, json={"name": "a", "version": 1}).status_code == 200
    stale = client.patch(url, json={"name": "b", "version": 1})
    assert stale.status_code == 409
    assert "stored version 2" in stale.json()["detail"]
    assert client.get(url).json()["name"] == "a"
    assert client.patch(url, json={"name": "b", "version": 2}).json()["version"] == 3


def test_patch_rejects_nulls_for_required_fields_and_bad_storage_uri(client: TestClient, create_feature) -> None:
    created = create_feature(client, "technical.rsi")
    url = f"/api/v1/features/{created['id']}"
    nulled = client.patch(url, json={"name": None})
    assert nulled.status_code == 422 and "name cannot be null" in nulled.json()["detail"]
    outside = client.patch(url, json={"storage_uri": "s3://somebody-elses-bucket/x"})
    assert outside.status_code == 422 and "inside the object store" in outside.json()["detail"]
    assert client.patch(url, json={"description": None}).json()["description"] is None


def test_patch_and_delete_unknown_feature_are_404(client: TestClient) -> None:
    missing = f"/api/v1/features/{uuid.uuid4()}"
    assert client.patch(missing, json={"name": "x"}).json()["detail"] == "Feature not found"
    assert client.delete(missing).status_code == 404


def test_delete_removes_definition_datasets_and_stored_objects(client: TestClient, create_feature) -> None:
    created = create_feature(client, "technical.rsi", {"period": 9})
    generated = client.post(f"/api/v1/features/{created['id']}/generate", json=RANGE)
    assert generated.status_code == 200
    ctx = client.app.state.ctx
    key = ctx.objects.key_of(generated.json()["dataset"]["storage_uri"])
    assert ctx.objects.exists(key)

    assert client.delete(f"/api/v1/features/{created['id']}").status_code == 204
    assert client.get(f"/api/v1/features/{created['id']}").status_code == 404
    assert client.get(f"/api/v1/features/{created['id']}/versions", params={"symbol": "GSPC"}).status_code == 404
    assert not ctx.objects.exists(key)


def test_plugins_available_lists_keys_and_metadata(client: TestClient) -> None:
    body = client.get("/api/v1/features/plugins/available").json()
    assert body["plugins"] == sorted(body["plugins"])
    required = {
        "technical.rsi", "technical.macd", "technical.atr", "technical.bbands", "technical.sma", "technical.ema",
        "technical.stoch", "technical.adx", "technical.obv", "technical.roc", "technical.willr", "technical.cci",
        "technical.mfi", "statistical.returns", "statistical.log_returns", "statistical.momentum",
        "statistical.z_score", "statistical.mean_reversion", "statistical.realized_volatility",
        "statistical.autocorr", "statistical.skew", "statistical.kurtosis", "statistical.hurst_exponent",
        "statistical.volatility_regime",
    }
    assert required <= set(body["plugins"])
    assert set(body["metadata"]) == set(body["plugins"])
    rsi = body["metadata"]["technical.rsi"]
    assert rsi["category"] == "technical"
    assert rsi["parameters"]["properties"]["period"] == {
        "default": 14, "description": "Bars in the indicator window", "maximum": 1000, "minimum": 2,
        "title": "Period", "type": "integer",
    }
    assert rsi["output_columns"] == ["rsi"] and rsi["lookback"] == 14 and rsi["recursive"] is True
    assert "TA-Lib" in rsi["libraries"]


def test_concurrent_patches_with_one_version_give_one_200_and_the_rest_409(client: TestClient, create_feature) -> None:
    feature = create_feature(client, "technical.rsi")
    url = f"/api/v1/features/{feature['id']}"
    barrier = threading.Barrier(20)

    def patch(i: int) -> int:
        barrier.wait()
        return client.patch(url, json={"name": f"edit {i}", "version": 1}).status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = sorted(pool.map(patch, range(20)))
    assert statuses == [200] + [409] * 19
    assert client.get(url).json()["version"] == 2
