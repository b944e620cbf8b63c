"""Row-lock order of task rows on PostgreSQL: a shard reporting progress while its job is
being cancelled must not deadlock (CI once saw a tune shard end FAILURE with
``DeadlockDetected``: the shard locked its own row then the parent's, the cancel the parent's
then the children's).

SQLite locks the whole database per writer, so only PostgreSQL can show the problem.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text, update

from alphaforge.context import Context
from alphaforge.settings import Settings
from alphaforge.storage.migrate import upgrade
from alphaforge.storage.tables import Task
from alphaforge.tasks.runner import _set_progress
from conftest import PostgresServer


@pytest.fixture
def ctx(postgres: PostgresServer, tmp_path: Path) -> Iterator[Context]:
    settings = Settings(data_dir=tmp_path, database_url=postgres.new_database(), load_sample_data=False)  # type: ignore[call-arg]
    upgrade(settings.resolved_database_url)
    context = Context.from_settings(settings)
    yield context
    context.close()


def _wait_until_a_session_waits_for_a_lock(ctx: Context, timeout: float = 30.0) -> None:
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
    deadline = time.monotonic() + timeout
    with ctx.db.engine.connect() as conn:
        while time.monotonic() < deadline:
            if conn.execute(query).scalar_one():
                return
            conn.rollback()
            time.sleep(0.02)
    raise AssertionError(f"the progress write never waited for the parent's lock within {timeout} s")


def test_progress_of_a_shard_does_not_deadlock_with_a_cancel_of_its_job(ctx: Context) -> None:
    parent = Task(kind="tune", status="STARTED", request={}, attempts=1, children_total=2)
    with ctx.db.session() as session:
        session.add(parent)
        session.flush()
        child = Task(kind="tune_trials", status="STARTED", request={}, attempts=1, parent_id=parent.id)
        session.add(child)

    outcome: dict[str, object] = {}

    def report_progress() -> None:
        try:
            outcome["cancelled"] = _set_progress(ctx, child.id, 0.5, "trial 1 complete", parent.id, to_parent=True)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion below
            outcome["error"] = exc

    # The cancel's order (services.tasks.cancel_task): the parent's row, then its children's.
    with ctx.db.engine.connect() as cancel:
        cancel.execute(update(Task).where(Task.id == parent.id).values(cancel_requested=True))
        shard = threading.Thread(target=report_progress)
        shard.start()
        _wait_until_a_session_waits_for_a_lock(ctx)  # the shard is blocked inside its transaction
        cancel.execute(update(Task).where(Task.parent_id == parent.id).values(cancel_requested=True))
        cancel.commit()
    shard.join(timeout=60)

    assert not shard.is_alive()
    assert "error" not in outcome, f"progress write failed: {outcome.get('error')!r}"
    assert outcome["cancelled"] is True  # and it reads the cancel request once it gets the rows
    with ctx.db.session() as session:
        assert session.get(Task, parent.id).progress == 0.5  # type: ignore[union-attr]
        assert session.get(Task, child.id).progress == 0.5  # type: ignore[union-attr]
