"""Dependencies injected into the routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from alphaforge.context import Context


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
