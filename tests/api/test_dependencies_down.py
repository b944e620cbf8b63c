"""A dependency that is down answers 503 naming it, never a bare 500."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from alphaforge.settings import Settings
from alphaforge.storage.tables import BarSeries
from conftest import ACCESS, SettingsFactory, app_client
from support import free_port, require


@pytest.mark.parametrize(
    "database_url",
    [f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing?connect_timeout=2", "sqlite:////proc/no/such/dir/x.db"],
    ids=["postgresql", "sqlite"],
)
def test_unreachable_database_is_503(tmp_path: Path, database_url: str) -> None:
    settings = Settings(data_dir=tmp_path, database_url=database_url, migrate_on_start=False, load_sample_data=False, **ACCESS)
    with app_client(settings) as client:
        assert client.get("/health").status_code == 200  # liveness does not touch the database
        for response in (
            client.get("/api/v1/features"),
            client.post("/api/v1/features", json={"name": "r", "type": "technical", "plugin_key": "technical.rsi"}),
            client.get("/health/ready"),
        ):
            assert response.status_code == 503, response.text
            assert response.json()["detail"] == "database unavailable: cannot connect to it"
            assert response.json()["dependency"] == "database"


def test_object_store_going_down_is_503(tmp_path: Path) -> None:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        require("moto S3 server", str(exc), "install the test extras")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    settings = Settings(
        data_dir=tmp_path,
        object_store_url=f"s3://down-{uuid.uuid4().hex[:8]}/x",
        s3_endpoint_url=f"http://127.0.0.1:{port}",
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
        **ACCESS,
    )
    try:
        with app_client(settings) as client:
            feature = client.post("/api/v1/features", json={"name": "r", "type": "technical", "plugin_key": "technical.rsi"}).json()
            server.stop()
            server = None
            body = {"symbol": "GSPC", "start_date": "2010-01-01", "end_date": "2011-01-01"}
            response = client.post(f"/api/v1/features/{feature['id']}/generate", json=body)
            assert response.status_code == 503, response.text
            assert response.json()["dependency"] == "object store"
            assert response.json()["detail"] == "object store unavailable: cannot connect to it"
            ready = client.get("/health/ready")
            assert ready.status_code == 503 and ready.json()["detail"] == "object store unavailable: cannot connect to it"
            # Nothing half-written: no dataset row points at an object that was not stored.
            versions = client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": "GSPC"})
            assert versions.json() == []
    finally:
        if server is not None:
            server.stop()


def test_bars_lost_from_the_object_store_are_a_409_until_ingested_again(make_settings: SettingsFactory) -> None:
    """A series whose object was lost (a bucket recreated empty, a wiped folder) says so,
    and a new upload starts the series afresh."""
    settings = make_settings(load_sample_data=False)
    rows = [
        {"timestamp": f"2020-01-{day:02d}T00:00:00Z", "open": 10.0, "high": 11.0, "low": 9.5, "close": 10.5, "volume": 1.0}
        for day in (2, 3, 6)
    ]
    with app_client(settings) as client:
        assert client.post("/api/v1/market-data/LOST/bars", json={"bars": rows}).status_code == 200
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with ctx.db.session() as session:
            uri = session.get(BarSeries, ("LOST", "1d")).storage_uri
        ctx.objects.delete(ctx.objects.key_of(uri))  # the loss, done from outside the API
    with app_client(settings) as client:  # a restarted service: nothing in memory
        response = client.get("/api/v1/market-data/LOST/bars")
        assert response.status_code == 409, response.text
        assert response.json()["detail"] == (
            "the stored 1d bars of LOST are missing from the object store; "
            "ingest them again with POST /api/v1/market-data/LOST/bars"
        )
        again = client.post("/api/v1/market-data/LOST/bars", json={"bars": rows[:2]})
        assert again.status_code == 200, again.text
        assert again.json()["inserted"] == 2 and again.json()["n_bars"] == 2  # the lost bar is not invented
        bars = client.get("/api/v1/market-data/LOST/bars").json()["bars"]
        assert [b["timestamp"][:10] for b in bars] == ["2020-01-02", "2020-01-03"]


def test_an_object_store_down_at_start_does_not_stop_the_service(tmp_path: Path) -> None:
    """The service starts and says what is down (readiness, 503s) instead of failing to start."""
    settings = Settings(
        data_dir=tmp_path, object_store_url=f"s3://down-{uuid.uuid4().hex[:8]}/x",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}", s3_access_key_id="testing",
        s3_secret_access_key="testing", s3_connect_timeout_s=1, s3_read_timeout_s=1, **ACCESS,
    )
    with app_client(settings) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["dependency"] == "object store"
        bars = client.get("/api/v1/market-data/GSPC/bars")  # the sample bars could not be loaded
        assert bars.status_code == 404 and "ingest them" in bars.json()["detail"], bars.text
        assert client.get("/api/v1/features").status_code == 200  # the database part still works
