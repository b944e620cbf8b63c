"""Alembic environment: the URL comes from alphaforge's settings via the Config object."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

import alphaforge.storage.tables  # noqa: F401  (registers every table on Base.metadata)
from alphaforge.storage.db import Base

config = context.config
url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # A one-off connection. On SQLite foreign keys stay off here (its default), as batch
    # migrations that copy tables require.
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
