"""feature panels: the request key a stored panel answers without planning its pieces

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("feature_panels", sa.Column("request_key", sa.String(64), nullable=True))
    op.create_index("ix_feature_panels_request_key", "feature_panels", ["feature_id", "request_key"])


def downgrade() -> None:
    op.drop_index("ix_feature_panels_request_key", table_name="feature_panels")
    op.drop_column("feature_panels", "request_key")
