"""While a training computes, the API keeps answering: compute runs off the event loop.

A real uvicorn server in a thread (TestClient would serialize the calls); the check is on
order of events, not on timings: /health answers while the train request is still open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from alphaforge.api.app import create_app
from alphaforge.settings import Settings
from conftest import ACCESS, ADMIN_HEADERS
from support import free_port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    settings = Settings(data_dir=tmp_path, **ACCESS)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield url
    instance.should_exit = True
    thread.join(timeout=30)


def test_health_answers_while_a_training_runs(server: str) -> None:
    with httpx.Client(base_url=server, timeout=600, headers=ADMIN_HEADERS) as http:
        feature = http.post(
            "/api/v1/features", json={"name": "rsi", "type": "technical", "plugin_key": "technical.rsi"}
        ).json()
        model = http.post(
            "/api/v1/models",
            json={"name": "slow", "model_type": "random_forest", "family": "machine_learning",
                  "parameters": {"n_estimators": 400, "min_samples_leaf": 1}},
        ).json()
        body = {
            "dataset": {"feature_ids": [feature["id"]], "symbol": "GSPC", "start_date": "1999-01-01", "end_date": "2019-01-01"},
            "cv": {"n_splits": 5},
        }
        outcome: dict[str, httpx.Response] = {}
        training = threading.Thread(target=lambda: outcome.setdefault("train", http.post(f"/api/v1/models/{model['id']}/train", json=body)))
        training.start()
        answered_during_training = 0
        while training.is_alive():
            health = http.get("/health", timeout=5)
            assert health.status_code == 200
            if training.is_alive():
                answered_during_training += 1
            time.sleep(0.05)
        training.join()
    assert outcome["train"].status_code == 200, outcome["train"].text
    assert answered_during_training >= 3
