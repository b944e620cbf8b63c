"""Macro series, point in time: (series, observation_date, available_at, value).

Every record says when its value became known (``available_at``). A restatement is a
further record for the same observation with a later ``available_at``; history is never
updated or deleted, so a feature computed "as of" a time sees exactly what was known then
(see :class:`alphaforge.marketdata.pit.PitSeries`).

Ingestion follows the rules of bars: a data-quality gate (a rejected upload stores
nothing and the 422 names the bad rows), then an append-only merge:

- a record identical to a stored one (same observation, available_at and value) is a no-op;
- a record with a new ``available_at`` is added (a restatement, or a new observation);
- a record with a stored (observation_date, available_at) but another value is a 409:
  history cannot be rewritten.

The upload gate is :mod:`alphaforge.ingestion.macro`; the bundled series are loaded by
:mod:`alphaforge.ingestion.bundled`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from alphaforge.errors import Conflict, InvalidInput
from alphaforge.marketdata.pit import PitSeries
from alphaforge.marketdata.pit_table import PitTable, conflict_message
from alphaforge.marketdata.stores import KeyedLocks
from alphaforge.marketdata.times import datetime_key, to_utc
from alphaforge.storage.db import Database
from alphaforge.storage.tables import MacroObservation

SERIES_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,39}$")


def normalize_series(series: str) -> str:
    """Upper-case and check a series name before it reaches storage (ASCII checked first,
    as for symbols: case mapping would turn 'ı' into 'I')."""
    normalized = str(series).strip().upper()
    if not str(series).isascii() or not SERIES_PATTERN.fullmatch(normalized):
        raise InvalidInput(
            f"invalid macro series {series!r}: use 1-40 ASCII characters, letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. VIX, CORE_CPI)"
        )
    return normalized


# -- the store ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MacroIngestReport:
    series: str
    received: int
    inserted: int
    unchanged: int
    n_records: int
    fingerprint: str


@dataclass(frozen=True)
class MacroSeriesInfo:
    series: str
    n_records: int
    first_observation: datetime
    last_observation: datetime
    last_available_at: datetime


class MacroStore:
    """Point-in-time macro records in the ``macro_observations`` table (append-only)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = KeyedLocks()
        self._table = PitTable(MacroObservation, "observation_date")

    # -- writing ----------------------------------------------------------------------
    def append(self, series: str, frame: pd.DataFrame) -> MacroIngestReport:
        """Merge records that passed the upload gate (``alphaforge.ingestion.macro``: columns
        observation / available, int64 UTC ns, and value) into ``series``, all or nothing."""
        with self._lock(series):
            for attempt in range(3):
                try:
                    inserted, unchanged = self._append(series, frame)
                    break
                except IntegrityError:
                    # Another process stored some of these keys meanwhile: merge again.
                    if attempt == 2:
                        raise Conflict(f"concurrent ingestion into {series}; retry the upload") from None
        pit = self.get_series(series)
        return MacroIngestReport(
            series=series,
            received=len(frame),
            inserted=inserted,
            unchanged=unchanged,
            n_records=len(pit),
            fingerprint=pit.fingerprint(),
        )

    def _append(self, series: str, frame: pd.DataFrame) -> tuple[int, int]:
        with self.db.session() as session:
            merge = self._table.merge(session, {"series": series}, frame, np.arange(1, len(frame) + 1))
            if merge.conflicts:
                raise Conflict(conflict_message(merge.conflicts, "record(s)", series), n_conflicts=len(merge.conflicts))
            self._table.insert(session, merge.rows)
        return len(merge.rows), merge.unchanged

    # -- reading ----------------------------------------------------------------------
    def get_series(self, series: str, until: datetime | None = None) -> PitSeries:
        """All records of ``series`` with ``available_at < until`` (all when None); an
        unknown series gives an empty PitSeries."""
        series = normalize_series(series)
        until_utc = to_utc(until) if until is not None else None
        with self.db.session() as session:
            return self._table.series(
                session, {"series": series}, until_utc, None if until_utc is None else datetime_key(until_utc)
            )

    def fingerprint(self, series: str, until: datetime | None = None) -> str:
        return self.get_series(series, until).fingerprint()

    def get_records(
        self,
        series: str,
        start: datetime | None = None,
        end: datetime | None = None,
        as_of: datetime | None = None,
        latest_only: bool = False,
    ) -> list[dict[str, Any]]:
        """Records with start <= observation_date < end and available_at <= as_of, ordered
        by (observation_date, available_at); ``latest_only`` keeps each observation's
        latest vintage (the values known at ``as_of``)."""
        series = normalize_series(series)
        query = select(
            MacroObservation.observation_date, MacroObservation.available_at, MacroObservation.value
        ).where(MacroObservation.series == series)
        if start is not None:
            query = query.where(MacroObservation.observation_date >= to_utc(start))
        if end is not None:
            query = query.where(MacroObservation.observation_date < to_utc(end))
        if as_of is not None:
            query = query.where(MacroObservation.available_at <= to_utc(as_of))
        query = query.order_by(MacroObservation.observation_date, MacroObservation.available_at)
        with self.db.session() as session:
            rows = session.execute(query).all()
        if latest_only:
            latest: dict[datetime, Any] = {}
            for row in rows:
                latest[row[0]] = row  # ordered by available_at within an observation
            rows = list(latest.values())
        return [{"observation_date": r[0], "available_at": r[1], "value": float(r[2])} for r in rows]

    def list_series(self) -> list[MacroSeriesInfo]:
        m = MacroObservation
        with self.db.session() as session:
            rows = session.execute(
                select(
                    m.series,
                    func.count(m.id),
                    func.min(m.observation_date),
                    func.max(m.observation_date),
                    func.max(m.available_at),
                )
                .group_by(m.series)
                .order_by(m.series)
            ).all()
        return [MacroSeriesInfo(r[0], int(r[1]), to_utc(r[2]), to_utc(r[3]), to_utc(r[4])) for r in rows]

    def has_series(self, series: str) -> bool:
        with self.db.session() as session:
            return self._table.state(session, {"series": normalize_series(series)})[0] > 0
