"""Domain errors. Each carries the HTTP status it maps to and a message a user can act on.

Services raise these; the API turns them into ``{"detail": message, "error": code}``.
"""

from __future__ import annotations

from typing import Any


class AlphaforgeError(Exception):
    status_code = 500
    code = "internal_error"
    #: Response headers that go with the status (e.g. WWW-Authenticate on a 401).
    headers: dict[str, str] = {}

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


class BadRequest(AlphaforgeError):
    status_code = 400
    code = "bad_request"


class HostNotAllowed(BadRequest):
    """A Host header this deployment does not serve (DNS rebinding, a misrouted proxy)."""

    code = "host_not_allowed"


class Unauthorized(AlphaforgeError):
    """No key, or one that is unknown or revoked (401)."""

    status_code = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="alphaforge"'}


class Forbidden(AlphaforgeError):
    """A valid key whose role does not allow the operation (403)."""

    status_code = 403
    code = "forbidden"


class PayloadTooLarge(AlphaforgeError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(AlphaforgeError):
    status_code = 429
    code = "too_many_requests"
    headers = {"Retry-After": "10"}


class ReportedError(AlphaforgeError):
    """An error raised elsewhere (in a task's worker process), answered with the status and
    code it had there."""

    def __init__(self, message: str, status_code: int, code: str, **context: Any) -> None:
        super().__init__(message, **context)
        self.status_code, self.code = status_code, code
