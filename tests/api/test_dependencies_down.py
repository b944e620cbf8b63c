"""A dependency that is down answers 503 naming it, never a bare 500."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from alphaforge.settings import Settings
from conftest import ACCESS, app_client
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
            assert response.json()["detail"].startswith("database unavailable")
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
            assert response.json()["detail"].startswith("object store unavailable")
            # Nothing half-written: no dataset row points at an object that was not stored.
            versions = client.get(f"/api/v1/features/{feature['id']}/versions", params={"symbol": "GSPC"})
            assert versions.json() == []
    finally:
        if server is not None:
            server.stop()
