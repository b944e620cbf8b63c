"""feature panels: one feature over a universe, keyed by (timestamp, symbol)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from alphaforge.storage.db import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "feature_panels",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("feature_id", sa.Uuid(), nullable=False),
        sa.Column("universe_id", sa.Uuid(), nullable=True),
        sa.Column("symbols", JSON, nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("start_date", UTCDateTime(), nullable=False),
        sa.Column("end_date", UTCDateTime(), nullable=False),
        sa.Column("version_hash", sa.String(64), nullable=False),
        sa.Column("storage_uri", sa.String(1000), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("columns", JSON, nullable=False),
        sa.Column("lineage", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(["feature_id"], ["features.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["universe_id"], ["universes.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("feature_id", "version_hash", name="uq_feature_panels_identity"),
    )
    op.create_index("ix_feature_panels_lookup", "feature_panels", ["feature_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_feature_panels_lookup", table_name="feature_panels")
    op.drop_table("feature_panels")
