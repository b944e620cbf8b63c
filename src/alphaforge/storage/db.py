"""Engine, sessions and the declarative base shared by every table."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, TypeDecorator, Uuid, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from alphaforge.errors import DependencyUnavailable

log = logging.getLogger(__name__)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a timezone first")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {
        datetime: UTCDateTime(),
        uuid.UUID: Uuid(),
        dict[str, Any]: JSONType,
        list[str]: JSONType,
        list[Any]: JSONType,
    }


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    """Owns the engine; hands out sessions that commit on success and roll back on error."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except (DBAPIError, PoolTimeout) as exc:
            session.rollback()
            unavailable = database_unavailable(exc)
            if unavailable is not None:
                raise unavailable from exc
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def database_unavailable(exc: BaseException) -> DependencyUnavailable | None:
    """The 503 for a database that cannot be reached (None when ``exc`` is something else).

    The client learns what happened; the driver's text (host, port, file path) goes to the
    log, under the request id the response carries.
    """
    if isinstance(exc, PoolTimeout):
        reason = "no connection to it came free in time; retry"
    elif isinstance(exc, DBAPIError) and (exc.connection_invalidated or _is_connection_error(exc)):
        reason = _reason(str(exc.orig).lower())
    else:
        return None
    log.warning("database unavailable: %s", _first_line(exc))
    return DependencyUnavailable("database", reason)


def _is_connection_error(exc: DBAPIError) -> bool:
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    text = str(exc.orig).lower()
    return any(
        marker in text
        for marker in ("connect", "connection", "server closed", "unable to open database", "terminat")
    )


def _reason(text: str) -> str:
    if "timeout" in text or "timed out" in text:
        return "it did not answer in time"
    if any(m in text for m in ("refused", "could not connect", "connection failed", "unable to open", "starting up")):
        return "cannot connect to it"
    return "the connection to it was lost; retry"


def _first_line(exc: BaseException) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
