"""fundamental observations (point-in-time fundamentals per symbol)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from alphaforge.storage.db import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fundamental_observations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("field", sa.String(40), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("available_at", UTCDateTime(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("ingested_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "symbol", "field", "period_end", "available_at", name="uq_fundamental_observations_identity"
        ),
    )
    op.create_index(
        "ix_fundamental_observations_symbol_field_available",
        "fundamental_observations",
        ["symbol", "field", "available_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_fundamental_observations_symbol_field_available", table_name="fundamental_observations")
    op.drop_table("fundamental_observations")
