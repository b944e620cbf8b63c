"""API keys (admin): create (the key is shown once), list, revoke; and the audit trail."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Query, Response

from alphaforge.api.deps import CtxDep
from alphaforge.api.security import ADMIN
from alphaforge.auth import audit
from alphaforge.schemas.errors import responses
from alphaforge.schemas.keys import AuditEventRead, KeyCreate, KeyCreated, KeyRead
from alphaforge.schemas.request import RequestTime

router = APIRouter(tags=["access"], dependencies=[ADMIN])


@router.post("/keys", response_model=KeyCreated, status_code=201)
def create_key(body: KeyCreate, ctx: CtxDep) -> KeyCreated:
    """A new key with a role. The response holds the key itself, the only time it is shown."""
    row, key = ctx.keys.create(body.name, body.role)
    return KeyCreated(**KeyRead.model_validate(row).model_dump(), key=key)


@router.get("/keys", response_model=list[KeyRead])
def list_keys(ctx: CtxDep, include_revoked: bool = True) -> list[KeyRead]:
    return [KeyRead.model_validate(k) for k in ctx.keys.list(include_revoked)]


@router.delete("/keys/{key_id}", status_code=204, responses=responses(404, 409))
def revoke_key(key_id: uuid.UUID, ctx: CtxDep) -> Response:
    """Revoke a key: requests with it are 401 from now on. The last active admin key cannot be revoked (409)."""
    ctx.keys.revoke(key_id)
    return Response(status_code=204)


@router.get("/audit", response_model=list[AuditEventRead])
def list_audit_events(
    ctx: CtxDep,
    key_id: uuid.UUID | None = None,
    outcome: Literal["success", "denied", "refused", "error"] | None = None,
    since: RequestTime | None = None,
    until: RequestTime | None = None,
    skip: int = Query(0, ge=0, le=10**9),
    limit: int = Query(100, ge=1, le=1000),
) -> list[AuditEventRead]:
    """Mutating requests (POST, PUT, PATCH, DELETE), newest first: who, what, when, outcome."""
    ctx.audit.flush()  # this process's queued entries first
    events = audit.list_events(ctx.db, key_id=key_id, outcome_name=outcome, since=since, until=until, skip=skip, limit=limit)
    return [AuditEventRead.model_validate(e) for e in events]
