"""Shapes of API keys and the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from alphaforge.auth.roles import Role
from alphaforge.schemas.request import RequestModel


class KeyCreate(RequestModel):
    name: str = Field(min_length=1, max_length=100, examples=["alice's notebook"])
    role: Role = Field(description="read: every GET; research: + definitions, generate, train, tune, predict; admin: everything")


class KeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    role: Role
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    created_at: datetime
    created_by: uuid.UUID | None
    revoked_at: datetime | None


class KeyCreated(KeyRead):
    key: str = Field(description="The key itself: shown this once, stored only as a hash")


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    key_id: uuid.UUID | None
    role: str | None
    method: str
    path: str
    status_code: int
    outcome: str = Field(description="success, denied (401/403), refused (other 4xx) or error (5xx)")
    request_id: str
    client: str | None
