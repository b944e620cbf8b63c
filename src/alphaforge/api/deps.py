"""Dependencies injected into the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from alphaforge.context import Context


def get_context(request: Request) -> Context:
    return request.app.state.ctx


CtxDep = Annotated[Context, Depends(get_context)]
