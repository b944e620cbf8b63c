"""Typed exceptions for what the API refuses, so callers catch ``NotFound`` or ``Conflict``
instead of parsing status codes. Each carries the API's ``detail`` (what to change), its
stable ``error`` code and the ``request_id`` the server logged the call under.

These are the client's own classes: ``alphaforge.errors`` holds the server's."""

from __future__ import annotations

from typing import Any

import httpx


class AlphaforgeError(Exception):
    """Base of every error the client raises."""


class ConnectionFailed(AlphaforgeError):
    """The server could not be reached (wrong URL, not started, network down)."""


class ApiError(AlphaforgeError):
    """The API answered with an error status; ``body`` is its whole JSON error document."""

    def __init__(self, status_code: int, detail: str, code: str, request_id: str | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{detail} ({status_code} {code})")
        self.status_code, self.detail, self.code, self.request_id = status_code, detail, code, request_id
        self.body = body or {}


class BadRequest(ApiError):
    """400: e.g. a Host the service does not answer to."""


class Unauthorized(ApiError):
    """401: no API key, or an unknown or revoked one."""


class Forbidden(ApiError):
    """403: the key's role does not allow the operation."""


class NotFound(ApiError):
    """404: no such feature, model, task, dataset, ..."""


class Conflict(ApiError):
    """409: stale ``version`` on an update, a task already finished, a duplicate name."""


class PayloadTooLarge(ApiError):
    """413: the request body is over the server's limit."""


class ValidationFailed(ApiError):
    """422 (and 415): the request is invalid; ``errors`` lists the bad fields when known."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.body.get("errors") or [])


class RateLimited(ApiError):
    """429: too many unfinished tasks for this key; retry when some have finished."""


class ServiceUnavailable(ApiError):
    """502/503: a dependency of the service (database, object store, ...) is down or failing."""


class ServerError(ApiError):
    """500 and other statuses: a bug in the service; report ``request_id``."""


class TaskFailed(AlphaforgeError):
    """A task ended in FAILURE; ``error_type`` and ``message`` are the worker's."""

    def __init__(self, task: dict[str, Any]) -> None:
        error = task.get("error") or {}
        self.task = task
        self.task_id: str = task["task_id"]
        self.error_type: str = error.get("type", "")
        self.message: str = error.get("message", "")
        super().__init__(self._describe())

    def _describe(self) -> str:
        return f"task {self.task_id} ({self.task.get('kind')}) failed: {self.error_type}: {self.message}"


class TaskCancelled(TaskFailed):
    """A task ended REVOKED (cancelled, by this client or someone else)."""

    def _describe(self) -> str:
        return f"task {self.task_id} ({self.task.get('kind')}) was cancelled"


class WaitTimeout(AlphaforgeError, TimeoutError):
    """``Task.wait(timeout=...)`` ran out; the task itself goes on (cancel it if unwanted)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: PayloadTooLarge,
    415: ValidationFailed, 422: ValidationFailed, 429: RateLimited, 502: ServiceUnavailable, 503: ServiceUnavailable,
}


def error_for(response: httpx.Response) -> ApiError:
    """The typed exception for an error response (its JSON body, or its text when not JSON)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"detail": response.text.strip() or response.reason_phrase, "error": "http_error"}
    cls = _BY_STATUS.get(response.status_code, ServerError)
    detail = str(body.get("detail", ""))
    code = str(body.get("error", "http_error"))
    return cls(response.status_code, detail, code, body.get("request_id"), body)
