"""Stored tuning studies: listed, summarised, their trials paged, deleted (``tuning.catalog``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from alphaforge.api.deps import CtxDep
from alphaforge.api.security import ADMIN, READ
from alphaforge.schemas.errors import responses
from alphaforge.schemas.tuning import StudyPage, StudyRead, TrialPage, TrialState
from alphaforge.tuning import catalog

router = APIRouter(prefix="/studies", tags=["tuning"])

#: Optuna's study id (an int4 column on PostgreSQL).
StudyId = Annotated[int, Path(ge=0, le=2**31 - 1)]


@router.get("", response_model=StudyPage, dependencies=[READ])
def list_studies(
    ctx: CtxDep, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**9)
) -> StudyPage:
    """Tuning and AutoML studies, newest first, each summarised (counts, best trial, stop reason)."""
    return catalog.list_studies(ctx, limit, offset)


@router.get("/{study_id}", response_model=StudyRead, dependencies=[READ], responses=responses(404))
def get_study(study_id: StudyId, ctx: CtxDep) -> StudyRead:
    return catalog.get_study(ctx, study_id)


@router.delete("/{study_id}", status_code=204, dependencies=[ADMIN], responses=responses(404, 409))
def delete_study(study_id: StudyId, ctx: CtxDep) -> Response:
    """Delete the study's trials and their stored out-of-fold forecasts (its MLflow runs stay);
    409 while a task runs its trials."""
    catalog.delete_study(ctx, study_id)
    return Response(status_code=204)


@router.get("/{study_id}/trials", response_model=TrialPage, dependencies=[READ], responses=responses(404))
def list_trials(
    study_id: StudyId,
    ctx: CtxDep,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10**9),
    sort: catalog.TrialSort = Query("number", description="number, or score (trials without one last)"),
    order: catalog.Order = Query("asc", description="asc or desc; ties are broken by number, ascending"),
    state: list[TrialState] = Query([], description="Only trials in these states (repeat the parameter)"),
) -> TrialPage:
    """A page of the study's trials; follow ``next_offset`` until it is null."""
    return catalog.list_trials(ctx, study_id, limit, offset, sort, order, state)
