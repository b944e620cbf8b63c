"""Optuna's own dashboard opens the studies alphaforge stores, on both backends.

optuna-dashboard's WSGI app (``optuna_dashboard.wsgi``, what its command line serves) is
given the storage URL the service uses, served on a real socket in a thread, and asked over
HTTP for its studies and for the study a tune just created.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import post_features

FEATURES = [("technical.rsi", {"period": 14}), ("statistical.returns", {})]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def tuned(client: TestClient) -> dict:
    dataset = {"feature_ids": post_features(client, FEATURES), "symbol": "GSPC", "start_date": "2014-01-01",
               "end_date": "2019-01-01"}
    response = client.post("/api/v1/models/tune", json={"plugin_key": "ml.ridge", "dataset": dataset,
                                                         "cv": {"n_splits": 3}, "n_trials": 4, "seed": 1})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def dashboard(client: TestClient, tuned: dict) -> Iterator[str]:
    """optuna-dashboard on the service's own storage URL (as ``optuna-dashboard <url>`` serves
    it, once the service has stored a study), in a thread; its base URL."""
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    url = client.app.state.ctx.settings.resolved_optuna_storage_url  # type: ignore[attr-defined]
    server = make_server("127.0.0.1", 0, optuna_dashboard.wsgi(url), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_the_dashboard_lists_and_opens_a_study_alphaforge_ran(tuned: dict, dashboard: str) -> None:
    listed = httpx.get(f"{dashboard}/api/studies", timeout=30)
    assert listed.status_code == 200, listed.text
    by_name = {s["study_name"]: s for s in listed.json()["study_summaries"]}
    assert tuned["study_name"] in by_name
    assert by_name[tuned["study_name"]]["study_id"] == tuned["study_id"]

    opened = httpx.get(f"{dashboard}/api/studies/{tuned['study_id']}", timeout=30)
    assert opened.status_code == 200, opened.text
    trials = opened.json()["trials"]
    assert [t["number"] for t in trials] == [t["number"] for t in tuned["trials"]]
    assert [t["state"] for t in trials] == [t["state"].capitalize() for t in tuned["trials"]]
