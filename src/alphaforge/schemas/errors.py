"""The one error shape every operation answers with, and the statuses each may return."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorResponse(BaseModel):
    """``detail`` says what to change; ``error`` is a stable code; more fields may say more
    (``dependency`` on a 503, ``errors`` on a request-validation 422, ``bad_rows`` on a
    rejected upload)."""

    model_config = ConfigDict(extra="allow")

    detail: str = Field(description="What went wrong and what to change")
    error: str = Field(description="A stable code, e.g. not_found, invalid_input, dependency_unavailable")
    request_id: str | None = Field(None, description="Also in the X-Request-ID header and the server's log")


_DESCRIPTIONS = {
    400: "Bad request (e.g. a Host this service does not answer to)",
    401: "No API key, or an unknown or revoked one",
    403: "The key's role does not allow this operation",
    404: "Not found",
    409: "Conflict with the current state (stale version, already finished, …)",
    413: "Request body over the size limit",
    415: "Unsupported content type",
    422: "Invalid input: what to change is in detail",
    429: "Too many unfinished tasks for this key",
    502: "A dependency answered with an error",
    503: "A dependency (named in detail and dependency) is unavailable",
}

#: What every /api/v1 operation may answer besides its own statuses.
COMMON = (400, 401, 403, 413, 422, 503)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all with the ErrorResponse body."""
    return {status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]} for status in statuses}
