"""Universes: named sets of symbols with point-in-time membership."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response

from alphaforge.api.deps import CtxDep
from alphaforge.api.security import ADMIN, READ, RESEARCH
from alphaforge.errors import InvalidInput
from alphaforge.schemas.errors import responses
from alphaforge.schemas.request import RequestTime
from alphaforge.schemas.universes import UniverseCreate, UniverseMembers, UniverseRead, UniverseUpdate
from alphaforge.storage.db import utcnow
from alphaforge.universes import definitions as service

router = APIRouter(prefix="/universes", tags=["universes"])


@router.post("", response_model=UniverseRead, status_code=201, dependencies=[RESEARCH], responses=responses(409, 502))
def create_universe(body: UniverseCreate, ctx: CtxDep) -> UniverseRead:
    """Every symbol must have bars (422 naming each unknown one); spells of one symbol must
    not overlap (422 naming them); names are unique (409)."""
    return UniverseRead.model_validate(service.create_universe(ctx, body))


@router.get("", response_model=list[UniverseRead], dependencies=[READ])
def list_universes(
    ctx: CtxDep, skip: int = Query(0, ge=0, le=10**9), limit: int = Query(100, ge=1, le=1000)
) -> list[UniverseRead]:
    return [UniverseRead.model_validate(u) for u in service.list_universes(ctx, skip, limit)]


@router.get("/{universe_id}", response_model=UniverseRead, dependencies=[READ], responses=responses(404))
def get_universe(universe_id: uuid.UUID, ctx: CtxDep) -> UniverseRead:
    return UniverseRead.model_validate(service.get_universe(ctx, universe_id))


@router.patch(
    "/{universe_id}", response_model=UniverseRead, dependencies=[RESEARCH], responses=responses(404, 409, 502)
)
def update_universe(universe_id: uuid.UUID, body: UniverseUpdate, ctx: CtxDep) -> UniverseRead:
    """Edit name, description or members (``members`` replaces every spell); every PATCH
    bumps ``version`` (send the one you read: 409 if stale)."""
    return UniverseRead.model_validate(service.update_universe(ctx, universe_id, body))


@router.delete("/{universe_id}", status_code=204, dependencies=[ADMIN], responses=responses(404))
def delete_universe(universe_id: uuid.UUID, ctx: CtxDep) -> Response:
    """Deletes the universe and its memberships."""
    service.delete_universe(ctx, universe_id)
    return Response(status_code=204)


@router.get("/{universe_id}/members", response_model=UniverseMembers, dependencies=[READ], responses=responses(404))
def members(
    universe_id: uuid.UUID,
    ctx: CtxDep,
    at: RequestTime | None = None,
    start: RequestTime | None = None,
    end: RequestTime | None = None,
) -> UniverseMembers:
    """The symbols that were members at ``at`` (from <= at < to; default: now), or, given
    ``start`` and ``end`` instead, at any time in ``[start, end)``. Naive times are UTC."""
    universe = service.get_universe(ctx, universe_id)
    if start is None and end is None:
        when = at or utcnow()
        return UniverseMembers(universe_id=universe.id, at=when, symbols=service.members_at(universe, when))
    if at is not None or start is None or end is None:
        raise InvalidInput("send either at, or both start and end")
    symbols = service.members_between(universe, start, end)
    return UniverseMembers(universe_id=universe.id, start=start, end=end, symbols=symbols)
