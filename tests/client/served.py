"""A real alphaforge service per test module (uvicorn on a socket, worker processes for
tasks), driven through ``alphaforge.client`` over HTTP: no mocks, no TestClient.

A module takes the fixtures with ``live, af = served.fixtures()`` (no conftest.py here: a
second module named ``conftest`` would shadow the one the other tests import)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alphaforge.client import Client
from alphaforge.settings import Settings
from conftest import seed_data_dir
from support import ACCESS, ADMIN_KEY, LiveApi, serve


def fixtures() -> tuple[Any, Any]:
    """``live``: the embedded service (SQLite, local object store, the bundled GSPC and IXIC
    bars; the client speaks HTTP, so the storage backend is not what these tests vary);
    ``af``: a client of it with the admin key. Both module-scoped."""

    @pytest.fixture(scope="module")
    def live(sqlite_templates: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
        data_dir = tmp_path_factory.mktemp("client-server")
        seed_data_dir(data_dir, sqlite_templates, {})
        with serve(Settings(data_dir=data_dir, **ACCESS)) as api:  # type: ignore[arg-type]
            yield api

    @pytest.fixture(scope="module")
    def af(live: LiveApi) -> Iterator[Client]:
        with Client(live.base_url, ADMIN_KEY) as client:
            yield client

    return live, af
