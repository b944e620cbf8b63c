"""models: the stored out-of-fold predictions of the last training

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("models", sa.Column("out_of_fold_uri", sa.String(1000), nullable=True))


def downgrade() -> None:
    op.drop_column("models", "out_of_fold_uri")
