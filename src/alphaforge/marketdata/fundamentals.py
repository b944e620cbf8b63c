"""Fundamentals, point in time: (symbol, field, period_end, available_at, value).

Fields are lower-case names such as ``eps``, ``book_value_per_share``, ``revenue``,
``revenue_growth``, ``market_cap``, ``earnings_surprise``. A value is usable from its
``available_at`` (the filing or announcement) on, never from its ``period_end``. A
restatement is a further record for the same (field, period_end) with a later
``available_at``; history is never updated or deleted (see
:class:`alphaforge.marketdata.pit.PitSeries`, whose observation is the period end).

Ingestion follows the macro store's rules (:mod:`alphaforge.marketdata.macro`): a
data-quality gate (:mod:`alphaforge.ingestion.fundamentals`; a rejected upload stores
nothing and the 422 names the bad rows), then an append-only merge per symbol:

- a record identical to a stored one (same field, period_end, available_at and value) is a
  no-op;
- a record with a new ``available_at`` is added (a restatement, or a new period);
- a record with a stored (field, period_end, available_at) but another value is a 409.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from alphaforge.errors import Conflict, InvalidInput
from alphaforge.marketdata.bars import normalize_symbol
from alphaforge.marketdata.pit import PitSeries
from alphaforge.marketdata.pit_table import PitTable, conflict_message
from alphaforge.marketdata.stores import KeyedLocks
from alphaforge.marketdata.times import datetime_key, to_utc
from alphaforge.storage.db import Database
from alphaforge.storage.tables import FundamentalObservation

FIELD_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def normalize_field(field: str) -> str:
    """Lower-case and check a fundamentals field name before it reaches storage."""
    normalized = field_name(field)
    if normalized is None:
        raise InvalidInput(
            f"invalid fundamentals field {field!r}: use 1-40 ASCII characters, lower-case letters, digits or '_', "
            "starting with a letter (e.g. eps, book_value_per_share)"
        )
    return normalized


def field_name(given: object) -> str | None:
    """The normalized field name, None when ``given`` is not one. ASCII is checked before
    lower-casing: case mapping would turn the Kelvin sign into 'k'."""
    if not isinstance(given, str) or not given.isascii():
        return None
    name = given.strip().lower()
    return name if FIELD_PATTERN.fullmatch(name) else None


# -- the store ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FundamentalsIngestReport:
    symbol: str
    received: int
    inserted: int
    unchanged: int
    n_records: int
    fingerprints: dict[str, str]  # field -> fingerprint of all its records


@dataclass(frozen=True)
class FundamentalFieldInfo:
    field: str
    n_records: int
    first_period_end: datetime
    last_period_end: datetime
    last_available_at: datetime


class FundamentalsStore:
    """Point-in-time fundamentals in the ``fundamental_observations`` table (append-only)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = KeyedLocks()
        self._table = PitTable(FundamentalObservation, "period_end")

    # -- writing ----------------------------------------------------------------------
    def append(self, symbol: str, frame: pd.DataFrame) -> FundamentalsIngestReport:
        """Merge records that passed the upload gate (``alphaforge.ingestion.fundamentals``:
        columns field, observation / available, int64 UTC ns, and value) into ``symbol``'s
        fields, all or nothing."""
        with self._lock(symbol):
            for attempt in range(3):
                try:
                    inserted, unchanged = self._append(symbol, frame)
                    break
                except IntegrityError:
                    if attempt == 2:
                        raise Conflict(f"concurrent ingestion of fundamentals for {symbol}; retry the upload") from None
        infos = self.list_fields(symbol)
        return FundamentalsIngestReport(
            symbol=symbol,
            received=len(frame),
            inserted=inserted,
            unchanged=unchanged,
            n_records=sum(i.n_records for i in infos),
            fingerprints={i.field: self.get_series(symbol, i.field).fingerprint() for i in infos},
        )

    def _append(self, symbol: str, frame: pd.DataFrame) -> tuple[int, int]:
        """Merge every field of the upload in one transaction: one conflict anywhere stores nothing."""
        rows_by_field = frame.groupby("field", sort=True).indices
        with self.db.session() as session:
            merges = [
                self._table.merge(session, {"symbol": symbol, "field": field}, frame.iloc[rows], rows + 1, f"{field}, ")
                for field, rows in rows_by_field.items()
            ]
            conflicts = [c for m in merges for c in m.conflicts]
            if conflicts:
                raise Conflict(
                    conflict_message(conflicts, "fundamentals record(s)", symbol), n_conflicts=len(conflicts)
                )
            self._table.insert(session, [row for m in merges for row in m.rows])
        return sum(len(m.rows) for m in merges), sum(m.unchanged for m in merges)

    # -- reading ----------------------------------------------------------------------
    def get_series(self, symbol: str, field: str, until: datetime | None = None) -> PitSeries:
        """All records of ``symbol``'s ``field`` with ``available_at < until`` (all when
        None), observation = period_end; empty when there are none."""
        symbol, field = normalize_symbol(str(symbol)), normalize_field(field)
        until_utc = to_utc(until) if until is not None else None
        with self.db.session() as session:
            return self._table.series(
                session, {"symbol": symbol, "field": field}, until_utc,
                None if until_utc is None else datetime_key(until_utc),
            )

    def get_records(
        self,
        symbol: str,
        field: str | None = None,
        as_of: datetime | None = None,
        latest_only: bool = False,
    ) -> list[dict[str, Any]]:
        """Records (of one field, or all) with available_at <= as_of, ordered by (field,
        period_end, available_at); ``latest_only`` keeps each period's latest vintage."""
        symbol = normalize_symbol(str(symbol))
        f = FundamentalObservation
        query = select(f.field, f.period_end, f.available_at, f.value).where(f.symbol == symbol)
        if field is not None:
            query = query.where(f.field == normalize_field(field))
        if as_of is not None:
            query = query.where(f.available_at <= to_utc(as_of))
        query = query.order_by(f.field, f.period_end, f.available_at)
        with self.db.session() as session:
            rows = session.execute(query).all()
        if latest_only:
            latest: dict[tuple[str, datetime], Any] = {}
            for row in rows:
                latest[(row[0], row[1])] = row
            rows = list(latest.values())
        return [
            {"field": r[0], "period_end": to_utc(r[1]), "available_at": to_utc(r[2]), "value": float(r[3])}
            for r in rows
        ]

    def list_fields(self, symbol: str) -> list[FundamentalFieldInfo]:
        symbol = normalize_symbol(str(symbol))
        f = FundamentalObservation
        with self.db.session() as session:
            rows = session.execute(
                select(f.field, func.count(f.id), func.min(f.period_end), func.max(f.period_end),
                       func.max(f.available_at))
                .where(f.symbol == symbol)
                .group_by(f.field)
                .order_by(f.field)
            ).all()
        return [FundamentalFieldInfo(r[0], int(r[1]), to_utc(r[2]), to_utc(r[3]), to_utc(r[4])) for r in rows]
