"""Every failure leaves as JSON: ``{"detail": <what to change>, "error": <code>, ...}``."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError

from alphaforge.errors import AlphaforgeError, Conflict, DependencyUnavailable
from alphaforge.storage.db import _is_connection_error, _short

log = logging.getLogger(__name__)


def error_response(exc: AlphaforgeError) -> JSONResponse:
    body: dict[str, Any] = {"detail": exc.message, "error": exc.code, **exc.context}
    return JSONResponse(jsonable_encoder(body), status_code=exc.status_code)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AlphaforgeError)
    async def _domain(_request: Request, exc: AlphaforgeError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StaleDataError)
    async def _stale(_request: Request, _exc: StaleDataError) -> JSONResponse:
        return error_response(Conflict("the record was changed by a concurrent request; read it again and retry"))

    @app.exception_handler(DBAPIError)
    async def _database(_request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated or _is_connection_error(exc):
            return error_response(DependencyUnavailable("database", _short(exc)))
        return _internal(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return _internal(exc)


def _internal(exc: Exception) -> JSONResponse:
    incident = uuid.uuid4().hex[:12]
    log.exception("unhandled error (incident %s)", incident, exc_info=exc)
    return JSONResponse(
        {"detail": f"internal error, incident {incident}: this is a bug in alphaforge, please report it",
         "error": "internal_error"},
        status_code=500,
    )
