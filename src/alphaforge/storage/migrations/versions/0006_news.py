"""news articles (deduplicated per symbol) and the sentiment-score cache

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from alphaforge.storage.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "news_articles",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.Column("headline", sa.Text(), nullable=False),
        sa.Column("headline_hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column("url", sa.String(2000), nullable=True),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("ingested_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("symbol", "published_at", "headline_hash", name="uq_news_articles_identity"),
    )
    op.create_index("ix_news_articles_symbol_published", "news_articles", ["symbol", "published_at"])
    op.create_table(
        "news_scores",
        sa.Column("scorer", sa.String(200), nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("positive", sa.Float(), nullable=False),
        sa.Column("negative", sa.Float(), nullable=False),
        sa.Column("net", sa.Float(), nullable=False),
        sa.Column("uncertainty", sa.Float(), nullable=False),
        sa.Column("scored_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("scorer", "text_hash"),
    )


def downgrade() -> None:
    op.drop_table("news_scores")
    op.drop_index("ix_news_articles_symbol_published", table_name="news_articles")
    op.drop_table("news_articles")
