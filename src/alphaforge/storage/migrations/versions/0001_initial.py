"""features, feature datasets, bar catalog

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from alphaforge.storage.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "bar_series",
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("first_bar", UTCDateTime(), nullable=False),
        sa.Column("last_bar", UTCDateTime(), nullable=False),
        sa.Column("n_bars", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("storage_uri", sa.String(1000), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "timeframe"),
    )
    op.create_table(
        "features",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("plugin_key", sa.String(100), nullable=False),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("storage_uri", sa.String(1000), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "feature_datasets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("feature_id", sa.Uuid(), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("start_date", UTCDateTime(), nullable=False),
        sa.Column("end_date", UTCDateTime(), nullable=False),
        sa.Column("version_hash", sa.String(64), nullable=False),
        sa.Column("storage_uri", sa.String(1000), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("columns", JSON, nullable=False),
        sa.Column("source_fingerprint", sa.String(64), nullable=False),
        sa.Column("lineage", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["feature_id"], ["features.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("feature_id", "version_hash", name="uq_feature_datasets_identity"),
    )
    op.create_index(
        "ix_feature_datasets_lookup", "feature_datasets", ["feature_id", "symbol", "timeframe", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_feature_datasets_lookup", table_name="feature_datasets")
    op.drop_table("feature_datasets")
    op.drop_table("features")
    op.drop_table("bar_series")
