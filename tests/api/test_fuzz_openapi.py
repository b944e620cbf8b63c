"""Fuzz every endpoint from our own OpenAPI schema: no generated request may get a 5xx.

Schemathesis derives valid and invalid requests from the schema (random bodies, ids,
parameters, symbols); each must end in a deliberate answer (2xx/4xx), never a server error.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from alphaforge.api.app import create_app, start_context
from alphaforge.settings import Settings
from conftest import ACCESS, ADMIN_HEADERS

_DATA_DIR = tempfile.TemporaryDirectory(prefix="alphaforge-fuzz-")
_SETTINGS = Settings(data_dir=Path(_DATA_DIR.name), **ACCESS)
app = create_app(_SETTINGS)  # no I/O until its context is started below
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def started() -> Iterator[None]:
    app.state.ctx = start_context(_SETTINGS)  # what the lifespan does, once for the module
    yield
    app.state.ctx.close()
    _DATA_DIR.cleanup()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case) -> None:
    response = case.call(headers=ADMIN_HEADERS)
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/json") or response.status_code == 204, content_type
