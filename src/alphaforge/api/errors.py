"""Every failure leaves as JSON: ``{"detail": <what to change>, "error": <code>, "request_id": ..., ...}``.

``detail`` is always a string a user can act on; request-validation failures keep the
per-field list in ``errors``. Details a client must not see (hosts, paths, tracebacks) go
to the server log under the same request id.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

from alphaforge import logs
from alphaforge.errors import AlphaforgeError, Conflict, PayloadTooLarge
from alphaforge.tasks.service import ClientGone
from alphaforge.storage.db import database_unavailable

log = logging.getLogger(__name__)

#: Content types counted as uploads (the larger body limit); everything else is JSON.
UPLOAD_TYPES = ("multipart/form-data", "text/csv")
#: Error codes of the statuses Starlette raises itself (unknown route, wrong method).
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large"}


def error_body(status_code: int, detail: str, code: str, **context: Any) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail, "error": code, **context, "request_id": logs.request_id.get()}
    return JSONResponse(jsonable_encoder(body), status_code=status_code)


def error_response(exc: AlphaforgeError) -> JSONResponse:
    response = error_body(exc.status_code, exc.message, exc.code, **exc.context)
    response.headers.update(exc.headers)
    return response


#: Errors a 422 lists: a body of thousands of bad items answers with the first ones (and
#: their count), not a reply as big as the request.
MAX_LISTED_ERRORS = 50


def validation_errors(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """A one-line summary naming the first bad fields and how many there are, and the first
    ``MAX_LISTED_ERRORS`` errors without echoed input."""
    items = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in errors[:MAX_LISTED_ERRORS]
    ]
    shown = "; ".join(f"{'.'.join(i['loc']) or 'request'}: {i['msg']}" for i in items[:10])
    more = f"; and {len(errors) - 10} more" if len(errors) > 10 else ""
    listed = f" ({MAX_LISTED_ERRORS} listed)" if len(errors) > MAX_LISTED_ERRORS else ""
    return f"invalid request: {shown}{more}{listed}", items


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AlphaforgeError)
    async def _domain(_request: Request, exc: AlphaforgeError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, items = validation_errors(list(exc.errors()))
        return error_body(422, detail, "invalid_input", errors=items)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
        if exc.status_code == 413 and limit is not None:  # a body that passed its limit while being read
            content_type = request.headers.get("content-type", "").lower()
            return error_response(too_large(limit, content_type.startswith(UPLOAD_TYPES)))
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        response = error_body(exc.status_code, detail, _HTTP_CODES.get(exc.status_code, "http_error"))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(ClientGone)
    async def _gone(_request: Request, _exc: ClientGone) -> Response:
        """The client of a synchronous call left (nginx's 499); its task goes on."""
        return Response(status_code=499)

    @app.exception_handler(StaleDataError)
    async def _stale(_request: Request, _exc: StaleDataError) -> JSONResponse:
        return error_response(Conflict("the record was changed by a concurrent request; read it again and retry"))

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _database(_request: Request, exc: DBAPIError | PoolTimeout) -> JSONResponse:
        unavailable = database_unavailable(exc)
        return internal_error(exc) if unavailable is None else error_response(unavailable)


def internal_error(exc: BaseException) -> JSONResponse:
    """A bug: the traceback goes to the log under the request id, the client gets the id."""
    log.error("unhandled error", exc_info=exc)
    return error_body(
        500, f"internal error, request {logs.request_id.get()}: this is a bug in alphaforge, please report it",
        "internal_error",
    )


def too_large(limit_bytes: int, upload: bool) -> PayloadTooLarge:
    mb = limit_bytes / (1024 * 1024)
    if upload:
        return PayloadTooLarge(f"the upload is over the {mb:g} MB limit (ALPHAFORGE_MAX_UPLOAD_MB); split it into smaller files")
    return PayloadTooLarge(
        f"the request body is over the {mb:g} MB limit for JSON (ALPHAFORGE_MAX_JSON_MB); "
        "send less, or upload records as a CSV file"
    )
