"""One append-only table of point-in-time records, as macro series and fundamentals use it.

A table has key columns (``series``; ``symbol`` + ``field``), an observation column
(``observation_date``; ``period_end``), ``available_at``, ``value`` and ``ingested_at``.
Rows are only ever inserted (see :mod:`alphaforge.marketdata.pit`), which makes a cheap
cache exact: a key's (row count, max id) changes with every insert.

Merging an upload into a key, inside the caller's transaction:

- a record identical to a stored one (same observation, available_at and value) is a no-op;
- a record with a new (observation, available_at) is added (a restatement, or a new one);
- a stored (observation, available_at) with another value is a conflict, reported by the
  caller as one 409 for the whole upload (history is never rewritten).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from alphaforge.marketdata.pit import PitSeries

Key = Mapping[str, str]


def ns_of(values: list[datetime]) -> np.ndarray:
    """Aware datetimes as int64 UTC nanoseconds."""
    if not values:
        return np.empty(0, "int64")
    return np.asarray(pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8, dtype="int64")


def iso(ns: int) -> str:
    return pd.Timestamp(int(ns), tz="UTC").isoformat()


@dataclass(frozen=True)
class Merge:
    rows: list[dict[str, Any]]  # to insert
    unchanged: int
    conflicts: list[tuple[int, str]]  # (upload row, "row i (observation, available ...): stored x, uploaded y")


class PitTable:
    """Reads and merges point-in-time records of one ORM table (``table``) whose
    observation column is ``observation``."""

    _CACHE_SIZE = 256

    def __init__(self, table: Any, observation: str) -> None:
        self.table = table
        self.observation = getattr(table, observation)
        self.observation_name = observation
        # (key, until ns | None) -> ((count, max id), PitSeries)
        self._cache: dict[tuple[tuple[tuple[str, str], ...], int | None], tuple[tuple[int, int], PitSeries]] = {}

    def _where(self, key: Key) -> list[Any]:
        return [getattr(self.table, name) == value for name, value in key.items()]

    def merge(self, session: Session, key: Key, frame: pd.DataFrame, rows: np.ndarray, label: str = "") -> Merge:
        """Compare ``frame`` (int64 ns ``observation``, ``available``; float ``value``) with
        what ``key`` holds. ``rows`` are the frame's 1-based upload row numbers; ``label``
        starts each conflict's description (e.g. the field)."""
        t = self.table
        obs_arr, avail_arr, val_arr = (frame[c].to_numpy() for c in ("observation", "available", "value"))
        lo, hi = (pd.Timestamp(int(f(obs_arr)), tz="UTC").to_pydatetime() for f in (np.min, np.max))
        stored_rows = session.execute(
            select(self.observation, t.available_at, t.value)
            .where(*self._where(key))
            .where(self.observation >= lo, self.observation <= hi)
        ).all()
        stored: dict[tuple[int, int], float] = {}
        if stored_rows:
            obs_ns, avail_ns = ns_of([r[0] for r in stored_rows]), ns_of([r[1] for r in stored_rows])
            stored = {(int(o), int(a)): float(r[2]) for o, a, r in zip(obs_ns, avail_ns, stored_rows, strict=True)}
        now = datetime.now(timezone.utc)
        obs_dt = pd.DatetimeIndex(obs_arr, tz="UTC").to_pydatetime()
        avail_dt = pd.DatetimeIndex(avail_arr, tz="UTC").to_pydatetime()
        new_rows: list[dict[str, Any]] = []
        conflicts: list[tuple[int, str]] = []
        unchanged = 0
        for i in range(len(frame)):
            pair = (int(obs_arr[i]), int(avail_arr[i]))
            value = float(val_arr[i])
            old = stored.get(pair)
            if old is None:
                new_rows.append({**key, self.observation_name: obs_dt[i], "available_at": avail_dt[i],
                                 "value": value, "ingested_at": now})
            elif old == value:
                unchanged += 1
            else:
                conflicts.append((int(rows[i]), (
                    f"row {int(rows[i])} ({label}{iso(pair[0])}, available {iso(pair[1])}): "
                    f"stored {old!r}, uploaded {value!r}"
                )))
        return Merge(new_rows, unchanged, conflicts)

    def insert(self, session: Session, rows: list[dict[str, Any]]) -> None:
        if rows:
            session.connection().execute(insert(self.table.__table__), rows)  # one executemany

    def state(self, session: Session, key: Key) -> tuple[int, int]:
        count, max_id = session.execute(
            select(func.count(self.table.id), func.max(self.table.id)).where(*self._where(key))
        ).one()
        return int(count or 0), int(max_id or 0)

    def series(self, session: Session, key: Key, until: datetime | None, until_key: int | None) -> PitSeries:
        """Every record of ``key`` with ``available_at < until`` (all when None); cached
        while the key's (count, max id) is unchanged."""
        cache_key = (tuple(sorted(key.items())), until_key)
        state = self.state(session, key)
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] == state:
            return cached[1]
        if state[0] == 0:
            pit = PitSeries.empty()
        else:
            query = select(self.observation, self.table.available_at, self.table.value).where(*self._where(key))
            if until is not None:
                query = query.where(self.table.available_at < until)
            rows = session.execute(query).all()
            pit = PitSeries(
                observation=ns_of([r[0] for r in rows]),
                available=ns_of([r[1] for r in rows]),
                value=np.asarray([r[2] for r in rows], dtype="float64"),
            )
        if len(self._cache) >= self._CACHE_SIZE:
            self._cache.clear()
        self._cache[cache_key] = (state, pit)
        return pit


def conflict_message(conflicts: list[tuple[int, str]], what: str, subject: str) -> str:
    """The 409 of an upload that would rewrite history, its conflicts in upload order."""
    ordered = [text for _, text in sorted(conflicts)]
    shown = "; ".join(ordered[:20]) + (f"; and {len(ordered) - 20} more" if len(ordered) > 20 else "")
    return (
        f"{len(conflicts)} {what} for {subject} would rewrite history, nothing was stored: {shown}. "
        "A restatement is a new record with a later available_at."
    )
