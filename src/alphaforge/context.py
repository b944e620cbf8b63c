"""The services a running alphaforge holds, built once from settings (by the API at start,
by a worker process at its start).

It sits below every domain package: it knows infrastructure (database, object store, bar
providers, MLflow, keys, audit) and, for the task executor, only the protocol, so domain
code can take a ``Context`` without the context depending on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
import uuid
from typing import Protocol

from alphaforge.auth.audit import AuditWriter
from alphaforge.auth.keys import KeyStore
from alphaforge.marketdata.fundamentals import FundamentalsStore
from alphaforge.marketdata.local_store import LocalBarStore
from alphaforge.marketdata.macro import MacroStore
from alphaforge.marketdata.news import NewsStore
from alphaforge.marketdata.provider import BarProvider
from alphaforge.tracking import Tracker
from alphaforge.settings import Settings
from alphaforge.storage.db import Database
from alphaforge.storage.object_store import ObjectStore


class Executor(Protocol):
    """Runs submitted tasks somewhere else (alphaforge.tasks.executors: embedded pool, Celery)."""

    def submit(self, task_id: uuid.UUID) -> None: ...

    def watch_ends(self, notify: Callable[[], None]) -> Callable[[], None]:
        """Call ``notify`` (from any thread) whenever a task this process supervises has
        ended, until the returned function is called; a waiter then reads its row at once
        instead of at its next poll. Executors whose tasks end elsewhere never call it."""
        ...

    def close(self) -> None: ...


@dataclass
class Context:
    settings: Settings
    db: Database
    objects: ObjectStore
    #: Where features read bars from: the local store, or an external HTTP service.
    bars: BarProvider
    #: The embedded bar store that ingestion writes to.
    bar_store: LocalBarStore
    #: Point-in-time macro series, fundamentals and news articles (in the database; one store
    #: per process, so their read caches and per-key write locks are shared by its requests).
    macro: MacroStore
    fundamentals: FundamentalsStore
    news: NewsStore
    #: MLflow, connected on first use.
    tracker: Tracker
    #: API keys (hashes in the database, a short per-process cache).
    keys: KeyStore
    #: The audit trail's writer (batched, in the background).
    audit: AuditWriter
    #: Where asynchronous tasks go; set by the API process only (workers run, never submit).
    executor: Executor | None = None
    #: When this process built its context: embedded tasks submitted before it are orphans.
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @classmethod
    def from_settings(cls, settings: Settings) -> Context:
        db = Database(settings.resolved_database_url)
        objects = ObjectStore(
            settings.resolved_object_store_url,
            endpoint_url=settings.s3_endpoint_url,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=(
                settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
            ),
            region=settings.s3_region,
            connect_timeout_s=settings.s3_connect_timeout_s,
            read_timeout_s=settings.s3_read_timeout_s,
            max_attempts=settings.s3_max_attempts,
        )
        bar_store = LocalBarStore(objects, db)
        bars: BarProvider = bar_store
        if settings.market_data_url:
            from alphaforge.marketdata.http_provider import HttpBarProvider

            bars = HttpBarProvider(
                settings.market_data_url,
                api_key=settings.market_data_api_key.get_secret_value() if settings.market_data_api_key else None,
                timeout_s=settings.market_data_timeout_s,
            )
        return cls(
            settings=settings, db=db, objects=objects, bars=bars, bar_store=bar_store,
            macro=MacroStore(db), fundamentals=FundamentalsStore(db), news=NewsStore(db),
            tracker=Tracker.from_settings(settings), audit=AuditWriter(db), keys=KeyStore(
                db, settings.admin_api_key.get_secret_value() if settings.admin_api_key else None
            ),
        )

    @property
    def bars_are_local(self) -> bool:
        return self.bars is self.bar_store

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()
        self.audit.close()
        close_bars = getattr(self.bars, "close", None)
        if close_bars is not None and not self.bars_are_local:
            close_bars()
        self.db.dispose()
