"""Helpers shared by test modules (importable as ``support`` via pytest's pythonpath)."""

from __future__ import annotations

import os
import socket

import pytest

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
