"""Tables. The schema carries its rules: identities are unique, foreign keys say what a
delete does, timestamps are UTC-aware."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from alphaforge import actor
from alphaforge.storage.db import Base, utcnow


def _created_by() -> Mapped[uuid.UUID | None]:
    """The API key whose request created the row (None: the system, e.g. bundled data)."""
    return mapped_column(default=actor.current)


class Feature(Base):
    """A feature definition: which plugin, with which parameters."""

    __tablename__ = "features"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32))
    plugin_key: Mapped[str] = mapped_column(String(100))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    description: Mapped[str | None] = mapped_column(Text)
    # Optimistic lock: user edits bump it; every UPDATE is a compare-and-swap on it.
    version: Mapped[int] = mapped_column(default=1)
    storage_uri: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[uuid.UUID | None] = _created_by()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    datasets: Mapped[list[FeatureDataset]] = relationship(
        back_populates="feature", cascade="all, delete-orphan", passive_deletes=True
    )
    panels: Mapped[list[FeaturePanel]] = relationship(cascade="all, delete-orphan", passive_deletes=True)

    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class FeatureDataset(Base):
    """One computed, stored instance of a feature definition, addressed by its version hash."""

    __tablename__ = "feature_datasets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Deleting a feature deletes its datasets (the service removes their objects too).
    feature_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("features.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(20))
    timeframe: Mapped[str] = mapped_column(String(8))
    start_date: Mapped[datetime]
    end_date: Mapped[datetime]
    version_hash: Mapped[str] = mapped_column(String(64))
    storage_uri: Mapped[str] = mapped_column(String(1000))
    row_count: Mapped[int]
    columns: Mapped[list[str]] = mapped_column(default=list)
    source_fingerprint: Mapped[str] = mapped_column(String(64))
    # The canonical document the version hash was computed from (plugin, resolved
    # parameters, library versions, range, fingerprint): lineage in one place.
    lineage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[uuid.UUID | None] = _created_by()

    feature: Mapped[Feature] = relationship(back_populates="datasets")

    __table_args__ = (
        UniqueConstraint("feature_id", "version_hash", name="uq_feature_datasets_identity"),
        Index("ix_feature_datasets_lookup", "feature_id", "symbol", "timeframe", "created_at"),
    )


class FeaturePanel(Base):
    """One feature over a universe (or a list of symbols), keyed by (timestamp, symbol): the
    per-symbol datasets concatenated, addressed by the hash of its lineage."""

    __tablename__ = "feature_panels"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Deleting a feature deletes its panels (the service removes their objects too).
    feature_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("features.id", ondelete="CASCADE"))
    # A deleted universe leaves its panels, which keep its name and spells in their lineage.
    universe_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("universes.id", ondelete="SET NULL"))
    symbols: Mapped[list[str]] = mapped_column(default=list)
    timeframe: Mapped[str] = mapped_column(String(8))
    start_date: Mapped[datetime]
    end_date: Mapped[datetime]
    version_hash: Mapped[str] = mapped_column(String(64))
    #: The hash of what the request named and every member's series fingerprint, known from
    #: the catalog alone: a later identical request finds the panel without planning its
    #: pieces (None: planned piece by piece, e.g. a plugin reading other sources).
    request_key: Mapped[str | None] = mapped_column(String(64), default=None)
    storage_uri: Mapped[str] = mapped_column(String(1000))
    row_count: Mapped[int]
    columns: Mapped[list[str]] = mapped_column(default=list)
    # The document the version hash was computed from: definition, membership, pieces.
    lineage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[uuid.UUID | None] = _created_by()

    __table_args__ = (
        UniqueConstraint("feature_id", "version_hash", name="uq_feature_panels_identity"),
        Index("ix_feature_panels_lookup", "feature_id", "created_at"),
        Index("ix_feature_panels_request_key", "feature_id", "request_key"),
    )


class BarSeries(Base):
    """Catalog of the bars held in the local bar store, one row per (symbol, timeframe)."""

    __tablename__ = "bar_series"

    symbol: Mapped[str] = mapped_column(String(20), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    first_bar: Mapped[datetime]
    last_bar: Mapped[datetime]
    n_bars: Mapped[int]
    fingerprint: Mapped[str] = mapped_column(String(64))
    storage_uri: Mapped[str] = mapped_column(String(1000))
    #: The key that first ingested the series (restatements are in the audit trail).
    created_by: Mapped[uuid.UUID | None] = _created_by()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Model(Base):
    """A model definition and, once trained, where its artifact is and how it was made."""

    __tablename__ = "models"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255), index=True)
    #: As the user wrote it ("xgboost" or "ml.xgboost"); ``plugin_key`` is what it resolved to.
    model_type: Mapped[str] = mapped_column(String(100))
    plugin_key: Mapped[str] = mapped_column(String(100))
    family: Mapped[str] = mapped_column(String(50))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Optimistic lock: bumped by every edit and every training.
    version: Mapped[int] = mapped_column(default=1)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(255))
    artifact_uri: Mapped[str | None] = mapped_column(String(1000))
    #: SHA-256 of the artifact bytes, checked before every load.
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    #: The last training's test-fold predictions (Parquet, content-addressed), None before.
    out_of_fold_uri: Mapped[str | None] = mapped_column(String(1000))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: How the stored artifact was trained: dataset hashes, columns in order, range, cv, libraries.
    lineage: Mapped[dict[str, Any] | None] = mapped_column()
    trained_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[uuid.UUID | None] = _created_by()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class Universe(Base):
    """A named set of symbols with point-in-time membership: who was a member when, so a
    backtest over a past year uses that year's members (survivorship made explicit)."""

    __tablename__ = "universes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    # Optimistic lock, as on features and models: every edit bumps it.
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[uuid.UUID | None] = _created_by()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    # Loaded with the universe (it is read after its session closes), in a stable order.
    members: Mapped[list[UniverseMember]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="selectin",
        order_by="(UniverseMember.symbol, UniverseMember.valid_from)",
    )

    __table_args__ = (UniqueConstraint("name", name="uq_universes_name"),)
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class UniverseMember(Base):
    """One spell of a symbol in a universe: a member from ``valid_from`` (inclusive) until
    ``valid_to`` (exclusive; None: still a member). A symbol may have several spells; they
    never overlap (checked on the way in)."""

    __tablename__ = "universe_members"

    # Deleting a universe deletes its memberships.
    universe_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("universes.id", ondelete="CASCADE"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(20), primary_key=True)
    valid_from: Mapped[datetime] = mapped_column(primary_key=True)
    valid_to: Mapped[datetime | None]

    __table_args__ = (CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="ck_universe_members_spell"),)


class Task(Base):
    """One asynchronous job: its request, where it stands, and how it ended.

    Status names are Celery's. A task with children (a tune's trial shards, a batch's
    generations) is finished by whichever child completes last.
    """

    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    progress_message: Mapped[str | None] = mapped_column(String(500))
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column()
    error_type: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    #: How a synchronous caller answers this failure: HTTP status, error code, context.
    error_status: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_context: Mapped[dict[str, Any] | None] = mapped_column()
    #: Wall-clock limit of one run, in seconds (the request's, or the service's default).
    time_limit_s: Mapped[float | None] = mapped_column(Float)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(default=0)
    #: "host:pid" of the process running it (for operators, and tests that kill it).
    worker: Mapped[str | None] = mapped_column(String(255))
    # Children are deleted with their parent.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    children_total: Mapped[int] = mapped_column(default=0)
    children_done: Mapped[int] = mapped_column(default=0)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    created_by: Mapped[uuid.UUID | None] = _created_by()

    __table_args__ = (
        Index("ix_tasks_created_by_status", "created_by", "status"),
        Index("ix_tasks_kind_status_submitted", "kind", "status", "submitted_at"),
        Index("ix_tasks_parent", "parent_id"),
        Index("ix_tasks_status_heartbeat", "status", "heartbeat_at"),
    )


class MacroObservation(Base):
    """One point-in-time record of a macro series: an observation and when it became known.

    Append-only: a restatement is a further row with a later ``available_at``; rows are
    never updated or deleted (``alphaforge.marketdata.macro``)."""

    __tablename__ = "macro_observations"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    series: Mapped[str] = mapped_column(String(40))
    observation_date: Mapped[datetime]
    available_at: Mapped[datetime]
    value: Mapped[float] = mapped_column(Float)
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[uuid.UUID | None] = _created_by()

    __table_args__ = (
        UniqueConstraint("series", "observation_date", "available_at", name="uq_macro_observations_identity"),
        Index("ix_macro_observations_series_available", "series", "available_at"),
    )


class FundamentalObservation(Base):
    """One point-in-time fundamentals record of a symbol: a field's value for a fiscal
    period and when it became known.

    Append-only: a restatement is a further row with a later ``available_at``; rows are
    never updated or deleted (``alphaforge.marketdata.fundamentals``)."""

    __tablename__ = "fundamental_observations"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(20))
    field: Mapped[str] = mapped_column(String(40))
    period_end: Mapped[datetime]
    available_at: Mapped[datetime]
    value: Mapped[float] = mapped_column(Float)
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[uuid.UUID | None] = _created_by()

    __table_args__ = (
        UniqueConstraint("symbol", "field", "period_end", "available_at", name="uq_fundamental_observations_identity"),
        Index("ix_fundamental_observations_symbol_field_available", "symbol", "field", "available_at"),
    )


class NewsArticle(Base):
    """One news article about a symbol. Deduplicated on (symbol, published_at, headline):
    the headline's SHA-256 carries the identity, so the unique index stays small.
    ``text_hash`` (SHA-256 of the scored text) keys the sentiment-score cache."""

    __tablename__ = "news_articles"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(20))
    published_at: Mapped[datetime]
    headline: Mapped[str] = mapped_column(Text)
    headline_hash: Mapped[str] = mapped_column(String(64))
    body: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(2000))
    text_hash: Mapped[str] = mapped_column(String(64))
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[uuid.UUID | None] = _created_by()

    __table_args__ = (
        UniqueConstraint("symbol", "published_at", "headline_hash", name="uq_news_articles_identity"),
        Index("ix_news_articles_symbol_published", "symbol", "published_at"),
    )


class NewsScore(Base):
    """A sentiment score of one text by one scorer (its identity: name, model, version),
    cached by the text's SHA-256 so an article is scored once per scorer."""

    __tablename__ = "news_scores"

    scorer: Mapped[str] = mapped_column(String(200), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    positive: Mapped[float] = mapped_column(Float)
    negative: Mapped[float] = mapped_column(Float)
    net: Mapped[float] = mapped_column(Float)
    uncertainty: Mapped[float] = mapped_column(Float)
    scored_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key: only its SHA-256 is stored (the key itself is shown once, at creation).
    Keys are revoked, never deleted, so every ``created_by`` keeps pointing at one."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The key's first characters, so a person can tell keys apart in a list.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[uuid.UUID | None] = _created_by()
    revoked_at: Mapped[datetime | None]


class AuditEvent(Base):
    """One mutating request (POST, PUT, PATCH, DELETE under /api/v1): who, what, when, outcome."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    key_id: Mapped[uuid.UUID | None]
    role: Mapped[str | None] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(1000))
    status_code: Mapped[int] = mapped_column(Integer)
    #: success (2xx/3xx), denied (401/403), refused (other 4xx), error (5xx)
    outcome: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_key_at", "key_id", "at"),
    )
