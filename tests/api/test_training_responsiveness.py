"""While a training computes, the API keeps answering: compute runs off the event loop.

A real uvicorn server in a thread (TestClient would serialize the calls); the check is on
order of events, not on timings: /health answers while the train request is still open
(the training itself runs in a worker process).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from alphaforge.settings import Settings
from support import ACCESS, serve


def test_health_answers_while_a_training_runs(tmp_path: Path) -> None:
    with serve(Settings(data_dir=tmp_path, **ACCESS)) as http:
        feature = http.call("POST",
            "/api/v1/features", json={"name": "rsi", "type": "technical", "plugin_key": "technical.rsi"}
        ).json()
        model = http.call(
            "POST", "/api/v1/models",
            json={"name": "slow", "model_type": "random_forest", "family": "machine_learning",
                  "parameters": {"n_estimators": 400, "min_samples_leaf": 1}},
        ).json()
        body = {
            "dataset": {"feature_ids": [feature["id"]], "symbol": "GSPC", "start_date": "1999-01-01", "end_date": "2019-01-01"},
            "cv": {"n_splits": 5},
        }
        outcome: dict[str, httpx.Response] = {}
        training = threading.Thread(target=lambda: outcome.setdefault(
            "train", http.call("POST", f"/api/v1/models/{model['id']}/train", json=body, timeout=600)))
        training.start()
        answered_during_training = 0
        while training.is_alive():
            health = http.call("GET", "/health", timeout=5)
            assert health.status_code == 200
            if training.is_alive():
                answered_during_training += 1
            time.sleep(0.05)
        training.join()
    assert outcome["train"].status_code == 200, outcome["train"].text
    assert answered_during_training >= 3
