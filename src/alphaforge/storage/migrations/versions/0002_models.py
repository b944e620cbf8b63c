"""models

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from alphaforge.storage.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("model_type", sa.String(100), nullable=False),
        sa.Column("plugin_key", sa.String(100), nullable=False),
        sa.Column("family", sa.String(50), nullable=False),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("mlflow_run_id", sa.String(255), nullable=True),
        sa.Column("artifact_uri", sa.String(1000), nullable=True),
        sa.Column("artifact_sha256", sa.String(64), nullable=True),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("lineage", JSON, nullable=True),
        sa.Column("trained_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_models_name", "models", ["name"])


def downgrade() -> None:
    op.drop_index("ix_models_name", table_name="models")
    op.drop_table("models")
