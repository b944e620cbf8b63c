"""A tuning study's parameter importance (``tuning.importance``), next to ``/studies``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from alphaforge.api.deps import CtxDep
from alphaforge.api.security import READ
from alphaforge.schemas.errors import responses
from alphaforge.schemas.importance import ParamImportance
from alphaforge.tuning import importance

router = APIRouter(prefix="/studies", tags=["tuning"])


@router.get("/{study_id}/importance", response_model=ParamImportance, dependencies=[READ], responses=responses(404))
async def param_importance(study_id: Annotated[int, Path(ge=0, le=2**31 - 1)], ctx: CtxDep) -> ParamImportance:
    """How much of the score's variance over the study's complete trials each sampled
    parameter explains (Optuna's fANOVA, seeded): which knobs mattered."""
    return await run_in_threadpool(importance.param_importance, ctx, study_id)
