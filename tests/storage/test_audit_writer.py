"""The audit writer: entries are written in batches in the background, all of them by a
read or at shutdown, and kept (not lost) while the database is down."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from alphaforge.auth import audit
from alphaforge.errors import DependencyUnavailable
from alphaforge.storage.db import Database
from alphaforge.storage.migrate import upgrade
from alphaforge.storage.tables import AuditEvent
from support import free_port


def _entry(i: int) -> audit.Entry:
    return audit.Entry(key_id=uuid.uuid4(), role="research", method="POST", path=f"/api/v1/features/{i}",
                       status_code=201 if i % 2 else 403, request_id=f"r{i}", client="127.0.0.1")


def _count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def test_entries_are_written_in_the_background_and_all_of_them_at_close(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    upgrade(url)
    db = Database(url)
    writer = audit.AuditWriter(db)
    first = _entry(1)
    writer.record(first)
    deadline = time.monotonic() + 10
    while _count(db) == 0 and time.monotonic() < deadline:  # the background flush
        time.sleep(0.02)
    with db.session() as session:
        row = session.scalars(select(AuditEvent)).one()
    assert (row.key_id, row.path, row.status_code, row.outcome, row.request_id, row.at) == (
        first.key_id, first.path, 201, "success", "r1", first.at)
    for i in range(2, 50):
        writer.record(_entry(i))
    writer.close()
    assert _count(db) == 49 and writer.pending == 0
    with db.session() as session:
        assert session.scalar(select(func.count()).where(AuditEvent.outcome == "denied")) == 24
    db.dispose()


def test_a_database_that_is_down_keeps_the_entries_queued() -> None:
    db = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none?connect_timeout=2")
    writer = audit.AuditWriter(db)
    for i in range(3):
        writer.record(_entry(i))
    with pytest.raises(DependencyUnavailable):
        writer.flush()
    time.sleep(3 * audit.FLUSH_INTERVAL_S)  # the background writer tried too
    assert writer.pending == 3
    writer.close()  # says so in the log; nothing to raise at shutdown
    assert writer.pending == 3
    db.dispose()
