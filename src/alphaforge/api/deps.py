"""Dependencies injected into the routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from alphaforge.context import Context
from alphaforge.errors import AlphaforgeError, InvalidInput
from alphaforge.ingestion.records import Records, read_csv_upload


def get_context(request: Request) -> Context:
    return request.app.state.ctx


CtxDep = Annotated[Context, Depends(get_context)]


def upload_openapi(json_model: type) -> dict[str, Any]:
    """OpenAPI for an endpoint that takes either a JSON body or a CSV upload (field ``file``)."""
    return {
        "requestBody": {
            "content": {
                "application/json": {"schema": json_model.model_json_schema()},  # type: ignore[attr-defined]
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
                },
            }
        }
    }


class UnsupportedMediaType(AlphaforgeError):
    status_code = 415
    code = "unsupported_media_type"


#: Bounds on a multipart upload's parsing: one file (the CSV), a few small text fields.
MAX_FORM_FILES = 1
MAX_FORM_FIELDS = 8
MAX_FORM_FIELD_BYTES = 64 * 1024


def _json_records(json_model: type[BaseModel], shape: str, body: bytes) -> pd.DataFrame:
    try:
        payload = json_model.model_validate_json(body)
    except ValueError as exc:
        raise InvalidInput(f"JSON upload must be {shape}: {exc}") from None
    return pd.DataFrame(getattr(payload, next(iter(json_model.model_fields))))


@asynccontextmanager
async def read_upload(
    request: Request, json_model: type[BaseModel], shape: str
) -> AsyncIterator[pd.DataFrame | Records]:
    """The uploaded records, open for the ``async with`` block: a CSV file (multipart field
    ``file``, read from its spooled temporary file block by block when a gate runs, in the
    threadpool) or JSON ``json_model`` (one list field; parsed in the threadpool). ``shape``
    describes the JSON in the 422. The CSV's temporary file is closed on exit."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(
                max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_FIELD_BYTES
            )
        except HTTPException as exc:  # Starlette's 400 for a form over the bounds, or malformed
            raise InvalidInput(f"cannot read the multipart upload: {exc.detail} Send one CSV file in the "
                               "field 'file'.") from None
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidInput("multipart upload needs a CSV file in the field 'file'")
            yield await run_in_threadpool(read_csv_upload, upload.file)
        finally:
            await form.close()
        return
    if content_type.startswith("application/json"):
        yield await run_in_threadpool(_json_records, json_model, shape, await request.body())
        return
    raise UnsupportedMediaType("send a CSV file as multipart/form-data (field 'file') or JSON (application/json)")
