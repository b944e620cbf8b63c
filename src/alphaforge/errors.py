"""Domain errors. Each carries the HTTP status it maps to and a message a user can act on.

Services raise these; the API turns them into ``{"detail": message, "error": code}``.
"""

from __future__ import annotations

from typing import Any


class AlphaforgeError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class NotFound(AlphaforgeError):
    status_code = 404
    code = "not_found"


class Conflict(AlphaforgeError):
    status_code = 409
    code = "conflict"


class InvalidInput(AlphaforgeError):
    status_code = 422
    code = "invalid_input"


class DependencyUnavailable(AlphaforgeError):
    """A service we depend on cannot be reached (503)."""

    status_code = 503
    code = "dependency_unavailable"

    def __init__(self, dependency: str, message: str, **context: Any) -> None:
        super().__init__(f"{dependency} unavailable: {message}", dependency=dependency, **context)
        self.dependency = dependency


class DependencyFailed(DependencyUnavailable):
    """A service we depend on answered, but with an error we cannot pass on (502)."""

    status_code = 502
    code = "bad_gateway"

    def __init__(self, dependency: str, message: str, **context: Any) -> None:
        AlphaforgeError.__init__(self, f"{dependency} failed: {message}", dependency=dependency, **context)
        self.dependency = dependency
