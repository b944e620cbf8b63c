"""Fuzz every operation from our own OpenAPI schema, on both backends: every generated
request (valid and invalid bodies, ids, parameters, symbols) must get an answer the schema
declares — a declared status code, a declared content type, a body that matches the
declared schema (the error model included) — and never a server error.

Schemathesis drives the app in-process (ASGI); each backend's services are started once
for the module. Examples per operation are bounded so the test stays within minutes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from alphaforge.api.app import create_app
from alphaforge.bootstrap import start_context
from alphaforge.settings import Settings
from conftest import ACCESS, ADMIN_HEADERS, SettingsFactory

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

_DATA_DIR = tempfile.TemporaryDirectory(prefix="alphaforge-fuzz-")
app = create_app(Settings(data_dir=Path(_DATA_DIR.name), **ACCESS))  # no I/O until a context is started
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def started(make_settings: SettingsFactory) -> Iterator[None]:
    """What the lifespan does, once per module and backend (embedded, then production)."""
    app.state.ctx = start_context(make_settings(task_time_limit_s=60))
    yield
    app.state.ctx.close()


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_one_the_schema_declares(case: schemathesis.Case, backend: str) -> None:
    response = case.call(headers=ADMIN_HEADERS)
    case.validate_response(response, checks=CHECKS, headers=ADMIN_HEADERS)
