"""The audit trail: one row per mutating request (who, what, when, outcome), written before
the response leaves, so a client never sees the outcome of a change that was not recorded."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from alphaforge.marketdata.bars import to_utc
from alphaforge.storage.db import Database
from alphaforge.storage.tables import AuditEvent

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Entry:
    key_id: uuid.UUID | None
    role: str | None
    method: str
    path: str
    status_code: int
    request_id: str
    client: str | None


def outcome(status_code: int) -> str:
    if status_code in (401, 403):
        return "denied"
    if status_code >= 500:
        return "error"
    if status_code >= 400:
        return "refused"
    return "success"


def record(db: Database, entry: Entry) -> None:
    with db.session() as session:
        session.add(
            AuditEvent(
                key_id=entry.key_id, role=entry.role, method=entry.method, path=entry.path[:1000],
                status_code=entry.status_code, outcome=outcome(entry.status_code), request_id=entry.request_id,
                client=(entry.client or None) and entry.client[:64],
            )
        )


def list_events(
    db: Database, *, key_id: uuid.UUID | None = None, outcome_name: str | None = None,
    since: datetime | None = None, until: datetime | None = None, skip: int = 0, limit: int = 100,
) -> list[AuditEvent]:
    """Newest first."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).offset(skip).limit(limit)
    if key_id is not None:
        query = query.where(AuditEvent.key_id == key_id)
    if outcome_name is not None:
        query = query.where(AuditEvent.outcome == outcome_name)
    if since is not None:
        query = query.where(AuditEvent.at >= to_utc(since))
    if until is not None:
        query = query.where(AuditEvent.at < to_utc(until))
    with db.session() as session:
        return list(session.scalars(query))
