"""statistical.volatility_regime went from version 1 (simple returns, sqrt(252) whatever the
bars) to version 2 (log returns and `annualization`, as statistical.realized_volatility).

What was made with version 1 is made here with the version-1 code, frozen below and put in
the registry of this (API) process only: a dataset generated and a model trained in process
through the services, exactly as a worker running version 1 did. The task workers are other
processes and run today's version 2. Then, through the API:

- the version-1 dataset stays addressable: listed by GET /versions with its hash and lineage
  (plugin_version "1"), its stored object readable and unchanged;
- the same generate request is a new dataset (a new hash: plugin_version and parameters are
  in it), listed after the old one; the old one is never overwritten or served as a hit;
- the model trained on version 1 refuses to predict with a 422 that says to retrain, and
  predicts again once retrained.
"""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
from conftest import CreateFeature
from fastapi.testclient import TestClient
from pydantic import Field, model_validator

from alphaforge.ingestion.bars import parse_bars_upload
from alphaforge.ingestion.bundled import sample_bars
from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.features import FeatureInputs, feature_plugins
from alphaforge.plugins.features.statistical import StatisticalPlugin, VolatilityRegime
from alphaforge.schemas.features import FeatureGenerateRequest
from alphaforge.schemas.models import TrainRequest
from alphaforge.features.generation import generate_dataset, read_frame
from alphaforge.training.trainer import train_model

KEY = "statistical.volatility_regime"
RANGE = {"symbol": "GSPC", "timeframe": "1d", "start_date": "2012-01-01", "end_date": "2016-01-01"}
PREDICT = {"symbol": "GSPC", "start_date": "2015-06-01", "end_date": "2016-01-01"}


# -- version 1, as it shipped --------------------------------------------------------------
class RegimeParamsV1(PluginParams):
    window: int = Field(20, ge=2, le=1000, description="Returns in the volatility window")
    rank_window: int = Field(252, ge=10, le=5000, description="Volatility values the percentile is taken over")
    low_threshold: float = Field(0.33, gt=0, lt=1, description="Percentile at or below which the regime is low (0)")
    high_threshold: float = Field(0.67, gt=0, lt=1, description="Percentile at or above which the regime is high (2)")

    @model_validator(mode="after")
    def _ordered(self) -> RegimeParamsV1:
        if self.low_threshold >= self.high_threshold:
            raise ValueError("low_threshold must be smaller than high_threshold")
        return self


class VolatilityRegimeV1(StatisticalPlugin):
    key = KEY
    description = "Version 1 of statistical.volatility_regime (test copy)."
    version = "1"
    outputs = ("realized_vol", "volatility_regime")
    Params = RegimeParamsV1

    @property
    def lookback(self) -> int:
        return self.params.window + self.params.rank_window - 1

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        p = self.params
        close = inputs.bars.close
        simple = np.full(len(close), np.nan)
        simple[1:] = close[1:] / close[:-1] - 1.0
        vol = pd.Series(simple).rolling(p.window).std() * np.sqrt(252)
        pct = vol.rolling(p.rank_window).rank(pct=True).to_numpy()
        regime = np.where(pct <= p.low_threshold, 0.0, np.where(pct >= p.high_threshold, 2.0, 1.0))
        regime[np.isnan(pct)] = np.nan
        return {"realized_vol": vol.to_numpy(), "volatility_regime": regime}


def _versions(client: TestClient, feature_id: str) -> list[dict]:
    response = client.get(f"/api/v1/features/{feature_id}/versions", params={"symbol": "GSPC"})
    assert response.status_code == 200, response.text
    return response.json()


def _close() -> pd.Series:
    frame, report = parse_bars_upload(sample_bars("GSPC"))
    assert report.ok
    return frame["close"]


def test_version_1_dataset_stays_addressable_and_its_model_must_be_retrained(
    client: TestClient, create_feature: CreateFeature
) -> None:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    feature = create_feature(client, KEY, {"window": 20, "rank_window": 126})
    feature_id = uuid.UUID(feature["id"])

    # Made with version 1 (in this process's registry only): a dataset and a ridge model on it.
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(feature_plugins._plugins, KEY, VolatilityRegimeV1)
        assert feature_plugins.get(KEY) is VolatilityRegimeV1
        old = generate_dataset(ctx, feature_id, FeatureGenerateRequest.model_validate(RANGE))
        model = client.post("/api/v1/models", json={"name": "on v1", "model_type": "ridge", "family": "machine_learning"})
        assert model.status_code == 201, model.text
        model_id = model.json()["id"]
        trained = train_model(ctx, uuid.UUID(model_id), TrainRequest.model_validate(
            {"dataset": {"feature_ids": [feature["id"]], **RANGE}, "cv": {"method": "expanding", "n_splits": 3, "test_size": 0.1}}
        ))
    old_hash, old_uri = old.dataset.version_hash, old.dataset.storage_uri
    assert old.dataset.lineage["plugin_version"] == "1" and "annualization" not in old.dataset.lineage["parameters"]
    lineage = client.get(f"/api/v1/models/{model_id}").json()["lineage"]
    assert [f["plugin_version"] for f in lineage["features"]] == ["1"]
    assert [f["dataset_version_hash"] for f in lineage["features"]] == [old_hash]
    assert trained.version == 2

    # Today's registry again: version 2 (the task workers never had anything else).
    assert feature_plugins.get(KEY) is VolatilityRegime and VolatilityRegime.version == "2"

    # The version-1 dataset: listed with its hash and lineage, its object readable, unchanged.
    listed = _versions(client, feature["id"])
    assert [v["version_hash"] for v in listed] == [old_hash]
    assert listed[0]["lineage"]["plugin_version"] == "1" and listed[0]["storage_uri"] == old_uri
    stored = read_frame(ctx, old_uri)
    close = _close()
    simple_vol = close.pct_change().rolling(20).std() * np.sqrt(252)
    np.testing.assert_allclose(stored["realized_vol"].to_numpy(), simple_vol.reindex(stored.index).to_numpy(), rtol=1e-9)

    # The same request now: a miss, computed by version 2 under a new hash; both listed.
    response = client.post(f"/api/v1/features/{feature['id']}/generate", json=RANGE)
    assert response.status_code == 200, response.text
    new = response.json()
    assert new["cached"] is False and new["dataset"]["version_hash"] != old_hash
    assert new["dataset"]["lineage"]["plugin_version"] == "2"
    assert new["dataset"]["lineage"]["parameters"]["annualization"] == 252
    log_vol = np.log(close).diff().rolling(20).std() * np.sqrt(252)
    fresh = read_frame(ctx, new["dataset"]["storage_uri"])
    np.testing.assert_allclose(fresh["realized_vol"].to_numpy(), log_vol.reindex(fresh.index).to_numpy(), rtol=1e-9)
    listed = _versions(client, feature["id"])
    assert [v["version_hash"] for v in listed] == [old_hash, new["dataset"]["version_hash"]]
    np.testing.assert_array_equal(read_frame(ctx, old_uri).to_numpy(), stored.to_numpy())  # untouched
    again = client.post(f"/api/v1/features/{feature['id']}/generate", json=RANGE).json()
    assert again["cached"] is True and again["dataset"]["version_hash"] == new["dataset"]["version_hash"]

    # The model trained on version 1: a clear 422, not a 500 and not silently other values.
    refused = client.post(f"/api/v1/models/{model_id}/predict", json=PREDICT)
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert KEY in detail and "now version 2" in detail and "version 1" in detail and "retrain" in detail

    # Retrained (on version 2): it predicts again.
    retrain = client.post(f"/api/v1/models/{model_id}/train", json={
        "dataset": {"feature_ids": [feature["id"]], **RANGE}, "cv": {"method": "expanding", "n_splits": 3, "test_size": 0.1},
    })
    assert retrain.status_code == 200, retrain.text
    assert client.get(f"/api/v1/models/{model_id}").json()["lineage"]["features"][0]["plugin_version"] == "2"
    predicted = client.post(f"/api/v1/models/{model_id}/predict", json=PREDICT)
    assert predicted.status_code == 200, predicted.text
    assert len(predicted.json()["predictions"]) > 100
