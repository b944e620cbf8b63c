"""A dataset's identity: its version hash is the SHA-256 of the lineage stored with it (as
canonical JSON, recomputed here independently), its bar fingerprint follows the documented
layout, and a handful of hashes are pinned, so moving code around cannot change them.

The pins hold for the libraries in requirements.lock (the hash covers their versions): with
other versions installed the pin test is skipped, and under CI (installed from the lock) it
must pass.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from packaging.utils import canonicalize_name

from alphaforge.ingestion.bars import parse_bars_upload
from alphaforge.ingestion.bundled import sample_bars
from conftest import post_features
from references import bars_fingerprint, version_hash
from support import CI, locked_versions

REQUEST = {"symbol": "GSPC", "start_date": "2010-01-01", "end_date": "2019-01-01"}
FEATURES = [
    ("technical.rsi", {"period": 14}),
    ("technical.macd", {}),
    ("statistical.returns", {}),
    ("statistical.volatility_regime", {}),
    ("macro.spread", {"series_a": "BAA", "series_b": "AAA"}),
]
#: Computed on 2026-12-01 with the libraries of requirements.lock, before any code move.
PINNED = {
    "technical.rsi": "126ecb23a4327d36d1a6c1da304c1f21b0f8981a3a465921806a102e4f09fae7",
    "technical.macd": "28455b143956407614adadb7884a4b12fafc38d1c9af4c4502e0d87cac73bda5",
    "statistical.returns": "14408a56f69d74605552bc9acfec2ae05b31b2c31464655b5fb9eee338c18825",
    "statistical.volatility_regime": "bb0778ee3af0ec1b19c6cb9802149b1c956d924085deb1b476c286394dce29d4",
    "macro.spread": "b212dbf78047dd76426c1caa80c47858dc77981636a8c455566f7205c6734a0b",
}


@pytest.fixture(scope="module")
def datasets(client: TestClient) -> dict[str, dict]:
    """One generated dataset per feature, as GET .../versions lists it."""
    out = {}
    for (key, _), feature_id in zip(FEATURES, post_features(client, FEATURES), strict=True):
        response = client.post(f"/api/v1/features/{feature_id}/generate", json=REQUEST)
        assert response.status_code == 200, response.text
        versions = client.get(f"/api/v1/features/{feature_id}/versions", params={"symbol": "GSPC"}).json()
        assert len(versions) == 1
        out[key] = versions[0]
    return out


def test_version_hash_is_the_sha256_of_the_stored_lineage(datasets: dict[str, dict]) -> None:
    for key, dataset in datasets.items():
        assert dataset["version_hash"] == version_hash(dataset["lineage"]), key
        assert dataset["lineage"]["plugin_key"] == key


def test_source_fingerprint_is_the_documented_encoding_of_the_bars_read(datasets: dict[str, dict]) -> None:
    frame, report = parse_bars_upload(sample_bars("GSPC"))
    assert report.ok
    before_end = frame[frame.index < pd.Timestamp(REQUEST["end_date"], tz="UTC")]
    in_range = int((before_end.index >= pd.Timestamp(REQUEST["start_date"], tz="UTC")).sum())
    for key, dataset in datasets.items():
        read = before_end.iloc[-(in_range + dataset["lineage"]["warmup_bars"]) :]
        assert dataset["source_fingerprint"] == bars_fingerprint(read) == dataset["lineage"]["source_fingerprint"], key


def test_pinned_version_hashes_do_not_move(datasets: dict[str, dict]) -> None:
    locked = locked_versions()
    differing = {
        name: (locked.get(canonicalize_name(name)), installed)
        for dataset in datasets.values()
        for name, installed in dataset["lineage"]["libraries"].items()
        if locked.get(canonicalize_name(name)) != installed
    }
    if differing and not CI:
        pytest.skip(f"libraries differ from requirements.lock (locked, installed): {differing}; the pins hold for the lock's")
    assert differing == {}
    got = {key: dataset["version_hash"] for key, dataset in datasets.items()}
    assert got == PINNED, json.dumps(got, indent=1)
