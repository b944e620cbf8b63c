"""Migrations on SQLite and PostgreSQL: they build exactly the models' schema, the schema
carries its rules (unique dataset identity, cascading delete), timestamps stay UTC."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

import alphaforge.storage.tables  # noqa: F401
from alphaforge.storage.db import Base, Database
from alphaforge.storage.migrate import downgrade, upgrade
from alphaforge.storage.tables import Feature, FeatureDataset


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nested' / 'alphaforge.db'}"
    return request.getfixturevalue("postgres").new_database()


def test_upgrade_builds_the_models_schema_and_downgrade_removes_it(database_url: str) -> None:
    upgrade(database_url)
    db = Database(database_url)
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
    downgrade(database_url, "base")
    assert set(inspect(db.engine).get_table_names()) == {"alembic_version"}
    upgrade(database_url)
    upgrade(database_url)  # idempotent
    assert {"features", "feature_datasets", "bar_series"} <= set(inspect(db.engine).get_table_names())
    db.dispose()


def _dataset(feature_id: uuid.UUID, version_hash: str) -> FeatureDataset:
    now = datetime.now(timezone.utc)
    return FeatureDataset(
        feature_id=feature_id, symbol="X", timeframe="1d", start_date=now, end_date=now, version_hash=version_hash,
        storage_uri="file:///x", row_count=0, columns=[], source_fingerprint="0" * 64, lineage={},
    )


def test_dataset_identity_is_unique_and_deletes_cascade(database_url: str) -> None:
    upgrade(database_url)
    db = Database(database_url)
    feature = Feature(name="f", type="technical", plugin_key="technical.rsi", parameters={}, version=1)
    with db.session() as session:
        session.add(feature)
        session.flush()
        session.add(_dataset(feature.id, "a" * 64))
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(_dataset(feature.id, "a" * 64))
    with db.session() as session:
        session.add(_dataset(feature.id, "b" * 64))
    with db.engine.begin() as conn:  # plain SQL: the rule lives in the schema, not the ORM
        conn.execute(text("DELETE FROM features WHERE name = 'f'"))
        assert conn.execute(text("SELECT count(*) FROM feature_datasets")).scalar() == 0
    db.dispose()


def test_timestamps_round_trip_as_aware_utc(database_url: str) -> None:
    upgrade(database_url)
    db = Database(database_url)
    tokyo = datetime(2020, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=9)))
    with db.session() as session:
        feature = Feature(name="t", type="technical", plugin_key="technical.rsi", parameters={}, version=1)
        feature.created_at = tokyo
        session.add(feature)
    with db.session() as session:
        stored = session.get(Feature, feature.id)
        assert stored.created_at == datetime(2020, 1, 1, 0, 0, tzinfo=timezone.utc)
        assert stored.created_at.tzinfo == timezone.utc
    with pytest.raises(Exception, match="naive datetime"), db.session() as session:
        session.add(Feature(name="n", type="technical", plugin_key="technical.rsi", parameters={}, version=1,
                            created_at=datetime(2020, 1, 1)))
    db.dispose()
