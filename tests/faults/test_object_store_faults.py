"""The S3 server killed mid-use, restarted empty, or hung: clients get a 503 naming the
object store (never a 500, never its endpoint, bucket or keys), the API recovers without
a restart, and nothing is half-written.

Runs on the production backend (PostgreSQL + S3 over HTTP); the S3 server is moto's, in a
process of its own, so the test can kill it (no real S3 can run here).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest

from alphaforge.ingestion.bundled import sample_bars
from alphaforge.settings import Settings
from checks import RANGE_2010, RSI, assert_dependency_503, assert_no_internals, assert_nothing_half_written
from faults_support import moto_process  # noqa: F401 - a fixture
from faults_support import FAULTS, MotoProcess, StallServer
from support import LiveApi, serve

SettingsFactory = Callable[..., Settings]

pytestmark = [FAULTS, pytest.mark.parametrize("backend", ["production"], scope="module")]


def _forbidden(api: LiveApi, endpoint: str) -> list[str]:
    """What locates the object store: endpoint, host:port, bucket, key prefixes, local folder."""
    settings = api.ctx.settings
    bucket = urlsplit(settings.object_store_url).netloc
    netloc = urlsplit(endpoint).netloc
    return [endpoint, netloc, bucket, "features/", str(settings.data_dir.resolve())]


def _create(api: LiveApi, name: str, period: int) -> str:
    response = api.call("POST", "/api/v1/features", json=RSI | {"name": name, "parameters": {"period": period}})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _generate(api: LiveApi, feature_id: str, *, force: bool = False) -> httpx.Response:
    verb = "regenerate" if force else "generate"
    return api.call("POST", f"/api/v1/features/{feature_id}/{verb}", json=RANGE_2010)


def _restore_bars(api: LiveApi) -> None:
    """An S3 server restarted empty lost the bars too: a fresh worker says so (409) until
    they are ingested again, as an operator would."""
    response = api.call("POST", "/api/v1/market-data/GSPC/bars",
                        files={"file": ("gspc.csv", sample_bars("GSPC").to_csv(index=False), "text/csv")})
    assert response.status_code == 200, response.text


def test_s3_killed_mid_use_then_restarted_empty(make_settings: SettingsFactory, moto_process: MotoProcess) -> None:
    settings = make_settings(s3_endpoint_url=moto_process.endpoint)
    with serve(settings) as api:
        forbidden = _forbidden(api, moto_process.endpoint)
        features = [_create(api, f"rsi-{period}", period) for period in (10, 14, 20)]
        for feature_id in features:
            assert _generate(api, feature_id).status_code == 200

        # Load while the server dies: each request is a success or a 503 naming the store.
        seen: list[httpx.Response] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                for feature_id in features:
                    seen.append(_generate(api, feature_id, force=True))

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(1.0)
        moto_process.kill()
        time.sleep(2.0)
        stop.set()
        worker.join(timeout=120)
        assert not worker.is_alive()
        failures = [r for r in seen if r.status_code != 200]
        assert failures, "no request saw the object store down; the kill came too late"
        for response in failures:
            assert_dependency_503(response, "object store", forbidden)

        # Down: reads and writes are 503s naming the object store; the database still works.
        assert_dependency_503(_generate(api, features[0]), "object store", forbidden)
        fresh = _create(api, "rsi-while-down", 30)
        assert_dependency_503(_generate(api, fresh), "object store", forbidden)
        assert api.call("GET", f"/api/v1/features/{fresh}/versions", params={"symbol": "GSPC"}).json() == []
        assert_dependency_503(api.call("GET", "/health/ready"), "object store", forbidden)

        # Back, but empty: the bucket and every object are gone. No restart of the API.
        moto_process.start()
        _restore_bars(api)
        for feature_id in [*features, fresh]:
            response = _generate(api, feature_id)
            assert response.status_code == 200, response.text
            assert response.json()["cached"] is False  # recomputed: the stored object was lost
            assert_no_internals(response, [moto_process.endpoint])
        newer = _create(api, "rsi-after", 40)
        assert _generate(api, newer).status_code == 200
        assert api.call("GET", "/health/ready").status_code == 200

        # Each feature has one dataset for the range (no duplicate identities), and every
        # dataset row's object is stored. (Bars are not checked: GSPC's were ingested again
        # above, IXIC's stay lost until someone does the same.)
        for feature_id in [*features, fresh, newer]:
            versions = api.call("GET", f"/api/v1/features/{feature_id}/versions", params={"symbol": "GSPC"})
            assert len(versions.json()) == 1, versions.text
        counts = assert_nothing_half_written(api.ctx, bars=False)
        assert counts["datasets"] == 5


def test_s3_that_accepts_and_never_answers(make_settings: SettingsFactory, moto_process: MotoProcess) -> None:
    # Short timeouts keep the test quick; the defaults are measured in bench/object_store_stall.py.
    settings = make_settings(s3_endpoint_url=moto_process.endpoint, s3_connect_timeout_s=1, s3_read_timeout_s=2)
    with serve(settings) as api:
        forbidden = _forbidden(api, moto_process.endpoint)
        cached = _create(api, "rsi-cached", 14)
        assert _generate(api, cached).status_code == 200
        fresh = _create(api, "rsi-fresh", 21)

        moto_process.kill()
        stall = StallServer(moto_process.port)
        try:
            # A read (the cached dataset), a write (a new one), readiness: each is a 503
            # naming the object store, answered before the client's own timeout (60 s).
            for response in (_generate(api, cached), _generate(api, fresh), api.call("GET", "/health/ready")):
                assert_dependency_503(response, "object store", forbidden)
                assert "did not answer" in response.json()["detail"]
            assert stall.accepted > 0  # the requests did reach the hung server
            assert api.call("GET", f"/api/v1/features/{fresh}/versions", params={"symbol": "GSPC"}).json() == []
        finally:
            stall.close()

        moto_process.start()  # an answering server again (empty): the API recovers
        _restore_bars(api)
        for feature_id in (cached, fresh):
            assert _generate(api, feature_id).status_code == 200
        assert_nothing_half_written(api.ctx, bars=False)
