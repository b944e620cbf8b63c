"""API keys, the audit trail, who created each row, and the task bounds

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from alphaforge.storage.db import JSONType, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: Tables whose rows record the API key that created them.
CREATED_BY = (
    "features", "feature_datasets", "bar_series", "models", "tasks",
    "macro_observations", "fundamental_observations", "news_articles",
)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=True),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("client", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_key_at", "audit_events", ["key_id", "at"])
    for table in CREATED_BY:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("created_by", sa.Uuid(), nullable=True))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("error_status", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("error_code", sa.String(64), nullable=True))
        batch.add_column(sa.Column("error_context", JSONType, nullable=True))
        batch.add_column(sa.Column("time_limit_s", sa.Float(), nullable=True))
    op.create_index("ix_tasks_created_by_status", "tasks", ["created_by", "status"])


def downgrade() -> None:
    op.drop_index("ix_tasks_created_by_status", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        for column in ("time_limit_s", "error_context", "error_code", "error_status"):
            batch.drop_column(column)
    for table in reversed(CREATED_BY):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("created_by")
    op.drop_index("ix_audit_events_key_at", table_name="audit_events")
    op.drop_index("ix_audit_events_at", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_table("api_keys")
