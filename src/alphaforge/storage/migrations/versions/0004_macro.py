"""macro observations (point-in-time macro series)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from alphaforge.storage.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "macro_observations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("series", sa.String(40), nullable=False),
        sa.Column("observation_date", UTCDateTime(), nullable=False),
        sa.Column("available_at", UTCDateTime(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("ingested_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("series", "observation_date", "available_at", name="uq_macro_observations_identity"),
    )
    op.create_index("ix_macro_observations_series_available", "macro_observations", ["series", "available_at"])


def downgrade() -> None:
    op.drop_index("ix_macro_observations_series_available", table_name="macro_observations")
    op.drop_table("macro_observations")
