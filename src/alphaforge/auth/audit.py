"""The audit trail: one row per mutating request (who, what, when, outcome).

Rows are written by a background writer in batches (every ``FLUSH_INTERVAL_S``, before a
read of the trail, and when the service stops), so recording costs a request a queue put
instead of a database commit: a cache-hit generate pays no database write for its audit row.
A crash of the API process can lose the rows of its last fraction of a second; a database
that is down keeps rows queued (up to ``CAPACITY``) until it is back.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import insert, select

from alphaforge.errors import DependencyUnavailable
from alphaforge.marketdata.times import to_utc
from alphaforge.storage.db import Database, utcnow
from alphaforge.storage.tables import AuditEvent

log = logging.getLogger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FLUSH_INTERVAL_S = 0.1
CAPACITY = 100_000


@dataclass(frozen=True)
class Entry:
    key_id: uuid.UUID | None
    role: str | None
    method: str
    path: str
    status_code: int
    request_id: str
    client: str | None
    at: datetime = field(default_factory=utcnow)


def outcome(status_code: int) -> str:
    if status_code in (401, 403):
        return "denied"
    if status_code >= 500:
        return "error"
    if status_code >= 400:
        return "refused"
    return "success"


def _row(entry: Entry) -> dict[str, object]:
    row = asdict(entry)
    row.update(path=entry.path[:1000], outcome=outcome(entry.status_code), client=(entry.client or None) and entry.client[:64])
    return row


class AuditWriter:
    """Queues audit entries and writes them in batches from one thread."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: queue.Queue[Entry] = queue.Queue(CAPACITY)
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def record(self, entry: Entry) -> None:
        self._ensure_thread()
        try:
            self._queue.put_nowait(entry)
        except queue.Full:  # the database has been down for long: say so rather than block requests
            log.error("audit queue full: %s %s (%s) by key %s not recorded", entry.method, entry.path,
                      entry.status_code, entry.key_id)

    @property
    def pending(self) -> int:
        """Entries queued, not yet written."""
        return self._queue.qsize()

    def flush(self) -> None:
        """Write every queued entry now (reads of the trail call this first)."""
        with self._write_lock:
            batch: list[Entry] = []
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                return
            try:
                with self.db.session() as session:
                    session.execute(insert(AuditEvent), [_row(e) for e in batch])
            except DependencyUnavailable:  # keep them for the next flush
                for entry in batch:
                    try:
                        self._queue.put_nowait(entry)
                    except queue.Full:
                        log.error("audit queue full: an entry of %s was dropped", entry.at.isoformat())
                raise

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.flush()
        except DependencyUnavailable as exc:
            log.error("audit rows not written at shutdown: %s", exc.message)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="audit-writer", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            try:
                self.flush()
            except DependencyUnavailable as exc:
                log.warning("audit rows wait: %s", exc.message)
            except Exception:  # noqa: BLE001 - logged; the writer keeps going
                log.exception("writing audit rows failed")


def list_events(
    db: Database, *, key_id: uuid.UUID | None = None, outcome_name: str | None = None,
    since: datetime | None = None, until: datetime | None = None, skip: int = 0, limit: int = 100,
) -> list[AuditEvent]:
    """Newest first."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).offset(skip).limit(limit)
    if key_id is not None:
        query = query.where(AuditEvent.key_id == key_id)
    if outcome_name is not None:
        query = query.where(AuditEvent.outcome == outcome_name)
    if since is not None:
        query = query.where(AuditEvent.at >= to_utc(since))
    if until is not None:
        query = query.where(AuditEvent.at < to_utc(until))
    with db.session() as session:
        return list(session.scalars(query))
