"""Dependencies injected into the routers."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, Request
from pydantic import BaseModel

from alphaforge.context import Context
from alphaforge.errors import AlphaforgeError, InvalidInput
from alphaforge.services.market_data import read_csv_upload


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


async def read_upload(request: Request, json_model: type[BaseModel], shape: str) -> pd.DataFrame:
    """The uploaded records as a frame: a CSV file (multipart field ``file``) or JSON
    ``json_model`` (one list field). ``shape`` describes the JSON in the 422."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("multipart upload needs a CSV file in the field 'file'")
        return read_csv_upload(await upload.read())
    if content_type.startswith("application/json"):
        try:
            payload = json_model.model_validate_json(await request.body())
        except ValueError as exc:
            raise InvalidInput(f"JSON upload must be {shape}: {exc}") from None
        return pd.DataFrame(getattr(payload, next(iter(json_model.model_fields))))
    raise UnsupportedMediaType("send a CSV file as multipart/form-data (field 'file') or JSON (application/json)")
