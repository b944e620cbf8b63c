"""PostgreSQL stopped under load (``pg_ctl stop -m immediate``: a crash, as far as the
clients can tell) and started again: every response is a success or a 503 naming only
"database", the API recovers without a restart, and afterwards no committed row is lost,
no row points at a missing object and no identity is duplicated.

The cluster is the test's own (initdb + pg_ctl on a free port); the object store is the
embedded folder, so the database is the only thing that fails.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from alphaforge.settings import Settings
from alphaforge.storage.tables import Feature
from checks import RSI, assert_dependency_503, assert_nothing_half_written
from faults_support import private_postgres  # noqa: F401 - a fixture
from faults_support import FAULTS, PrivatePostgres
from support import LiveApi, serve

pytestmark = [FAULTS, pytest.mark.parametrize("backend", ["embedded"], scope="module")]

CLIENTS = 4
OUTAGE_S = 6.0
RECOVERY_DEADLINE_S = 60.0
RANGES = [("2010-01-01", "2011-01-01"), ("2012-01-01", "2013-01-01"), ("2014-01-01", "2014-07-01")]


class Load:
    """Client threads that create features, generate datasets and list, recording every answer."""

    def __init__(self, api: LiveApi, feature_ids: list[str]) -> None:
        self.api = api
        self.feature_ids = list(feature_ids)
        self.answers: list[tuple[float, str, httpx.Response]] = []
        self.created: list[str] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(CLIENTS)]

    def _run(self, index: int) -> None:
        step = index
        try:
            while not self._stop.is_set():
                step += 1
                kind = ("create", "generate", "generate", "list")[step % 4]
                if kind == "create":
                    body = RSI | {"name": f"load-{index}-{step}", "parameters": {"period": 5 + step % 30}}
                    response = self.api.call("POST", "/api/v1/features", json=body)
                    if response.status_code == 201:
                        self.created.append(response.json()["id"])
                        self.feature_ids.append(response.json()["id"])
                elif kind == "generate":
                    feature_id = self.feature_ids[step % len(self.feature_ids)]
                    start, end = RANGES[step % len(RANGES)]
                    body = {"symbol": "GSPC", "start_date": start, "end_date": end}
                    response = self.api.call("POST", f"/api/v1/features/{feature_id}/generate", json=body)
                else:
                    response = self.api.call("GET", "/api/v1/features", params={"limit": 20})
                self.answers.append((time.monotonic(), kind, response))
        except BaseException as exc:  # a client timeout is a hang: reported by the test
            self.errors.append(exc)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in self._threads)


def test_postgres_stopped_under_load(
    make_settings: Callable[..., Settings], private_postgres: PrivatePostgres
) -> None:
    settings = make_settings(database_url=private_postgres.url, load_sample_data=True)
    forbidden = ["127.0.0.1", f":{private_postgres.port}", str(private_postgres.port), str(private_postgres.folder),
                 "psycopg", "postgresql://", str(settings.data_dir.resolve())]
    with serve(settings) as api:
        seeds = []
        for period in (7, 14):
            response = api.call("POST", "/api/v1/features", json=RSI | {"name": f"seed-{period}", "parameters": {"period": period}})
            assert response.status_code == 201, response.text
            seeds.append(response.json()["id"])

        load = Load(api, seeds)
        load.start()
        time.sleep(2.0)
        stopped_at = time.monotonic()
        private_postgres.stop("immediate")
        time.sleep(OUTAGE_S)
        private_postgres.start()
        restarted_at = time.monotonic()
        # Keep the load on until every kind of request succeeded again after the restart.
        deadline = restarted_at + RECOVERY_DEADLINE_S
        while time.monotonic() < deadline:
            recovered = {kind for at, kind, r in list(load.answers) if at > restarted_at and r.status_code < 300}
            if recovered == {"create", "generate", "list"}:
                break
            time.sleep(0.5)
        time.sleep(1.0)
        load.stop()
        assert load.errors == [], f"a client got no answer: {load.errors[:3]}"

        # What the clients saw: successes, or 503s that name the database and nothing else.
        statuses = [r.status_code for _, _, r in load.answers]
        unexpected = [(kind, r.status_code, r.text) for _, kind, r in load.answers if r.status_code not in (200, 201, 503)]
        assert unexpected == [], unexpected[:5]
        unavailable = [r for at, _, r in load.answers if r.status_code == 503]
        assert unavailable, "no request saw the database down"
        for response in unavailable:
            assert_dependency_503(response, "database", forbidden)
        assert all(stopped_at <= at for at, _, r in load.answers if r.status_code == 503)

        # Recovered without a restart: after the restart, every kind of request succeeds.
        recovered = {kind for at, kind, r in load.answers if at > restarted_at and r.status_code < 300}
        assert recovered == {"create", "generate", "list"}, (recovered, statuses[-20:])
        ready = api.call("GET", "/health/ready")
        assert ready.status_code == 200, ready.text

        # What was stored: every feature whose creation was acknowledged exists; every
        # dataset row's object (and bar series') is stored; no identity is duplicated.
        with api.ctx.db.session() as session:
            stored = {str(i) for i in session.scalars(select(Feature.id))}
        assert set(load.created) | set(seeds) <= stored
        counts = assert_nothing_half_written(api.ctx)
        assert counts["datasets"] > 0 and counts["bar_series"] == 22  # GSPC, IXIC and the SP20 stocks
        for _, kind, response in load.answers:
            if kind == "generate" and response.status_code == 200:
                assert response.json()["dataset"]["feature_id"] in stored
