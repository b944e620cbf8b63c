"""Helpers shared by test modules (importable as ``support`` via pytest's pythonpath)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: The bootstrap admin key of every test app (ALPHAFORGE_ADMIN_API_KEY), and what it sends.
ADMIN_KEY = "af_test_admin_key_for_the_suite_only"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
#: Access settings every test app gets: TestClient's host name is "testserver".
ACCESS = {"admin_api_key": ADMIN_KEY, "allowed_hosts": ["testserver"]}
#: A request that takes longer than this is a hang: the test fails instead of waiting.
CLIENT_TIMEOUT_S = 60.0


def require(service: str, reason: str, how: str) -> None:
    """Skip a leg whose service is missing, or fail it when CI=true makes it mandatory."""
    message = f"{service} not available ({reason}); {how}"
    if CI:
        pytest.fail(f"CI=true makes this leg mandatory: {message}")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the API, served for real -----------------------------------------------------------
class LiveApi:
    """The API on a real socket; every HTTP call goes through ``call`` (one place for headers)."""

    def __init__(self, base_url: str, app: Any) -> None:
        self.base_url = base_url
        self.app = app
        self._http = httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT_S, headers=ADMIN_HEADERS)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._http.request(method, path, **kwargs)

    @property
    def ctx(self) -> Any:
        """The running service's context: for checking what it stored, never for driving it."""
        return self.app.state.ctx

    def close(self) -> None:
        self._http.close()


@contextmanager
def serve(settings: Any) -> Iterator[LiveApi]:
    """The app on a real socket (uvicorn in a thread), called with the admin key."""
    from alphaforge.api.app import create_app

    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    api = LiveApi(f"http://127.0.0.1:{port}", app)
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start (see the log above)")
        time.sleep(0.05)
    try:
        yield api
    finally:
        api.close()
        server.should_exit = True
        thread.join(timeout=30)


def locked_versions() -> dict[str, str]:
    """requirements.lock as {canonical distribution name: exact version}."""
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (Path(__file__).resolve().parents[1] / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, pinned = line.partition("==")
        assert pinned, f"requirements.lock: {line!r} is not an exact pin"
        pins[canonicalize_name(name)] = pinned
    return pins
