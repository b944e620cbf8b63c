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

Bundled series (no network), loaded on first start from the ``arch`` package by
:func:`load_bundled_macro`, with these default publication lags as ``available_at``
(:data:`BUNDLED_LAGS`):

============  =========  =======================================  =============================
series        frequency  source                                   available_at
============  =========  =======================================  =============================
VIX           daily      ``arch.data.vix`` (vix)                   observation_date + 1 day
WTI           daily      ``arch.data.wti`` (DCOILWTICO)            observation_date + 1 day
CORE_CPI      monthly    ``arch.data.core_cpi`` (CPILFESL)         15th of the following month
AAA, BAA      monthly    ``arch.data.default`` (AAA, BAA)          1st of the following month
                                                                   + 1 day
FF_MKT_RF,    monthly    ``arch.data.frenchdata`` (Mkt-RF, SMB,    last day of the following
FF_SMB,                  HML, RF; percent)                         month (observation month end
FF_HML, FF_RF                                                      + 1 month)
============  =========  =======================================  =============================

Daily closes are published after the US close, so they are usable from the next day's bar
on, never for the same day's bar. BLS publishes CPI around mid-month for the month before.
Moody's AAA/BAA monthly averages are complete once the month is over. Kenneth French's data
library updates with about a month's lag. Observations of monthly series are stamped with
the first day of their month (00:00 UTC); the Fama-French dates, which ``arch`` ships
mangled into 1970 nanoseconds whose integers are YYYYMM, are re-parsed to month starts.
Missing values in the bundled data (holidays in VIX/WTI) are dropped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from alphaforge.errors import Conflict, InvalidInput
from alphaforge.marketdata.pit import PitSeries
from alphaforge.marketdata.pit_table import PitTable, conflict_message, iso
from alphaforge.marketdata.quality import FirstValues, RecordsQualityReport, Rule, find_bad_rows
from alphaforge.marketdata.records import ColumnBuffer, Records, as_records, parse_numbers, parse_times
from alphaforge.marketdata.stores import KeyedLocks
from alphaforge.storage.db import Database
from alphaforge.storage.tables import MacroObservation

log = logging.getLogger(__name__)

SERIES_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,39}$")
RECORD_COLUMNS = ("observation_date", "available_at", "value")

# Representable as int64 nanoseconds (PitSeries) with a margin.
MIN_NS = pd.Timestamp("1678-01-01", tz="UTC").value
MAX_NS = pd.Timestamp("2261-12-31", tz="UTC").value
_LO, _HI = pd.Timestamp(MIN_NS, tz="UTC"), pd.Timestamp(MAX_NS, tz="UTC")


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


# -- the data-quality gate ----------------------------------------------------------------
@dataclass(frozen=True)
class MacroBadRow:
    row: int  # 1-based position in the upload
    observation_date: str | None
    available_at: str | None
    problems: list[str]

    def label(self) -> str:
        return f"{self.observation_date}, available {self.available_at}"


MacroQualityReport = RecordsQualityReport[MacroBadRow]


def parse_values(raw_value: pd.Series) -> np.ndarray:
    """Uploaded values as float64; anything not a number (booleans included) is NaN."""
    if pd.api.types.is_bool_dtype(raw_value.dtype):
        raw_value = pd.Series([None] * len(raw_value), dtype=object)  # true/false is no value
    elif raw_value.dtype == object:  # JSON: a true/false among the numbers (text has none)
        raw_value = raw_value.map(lambda v: None if isinstance(v, bool) else v)
    return parse_numbers(raw_value)


@dataclass(frozen=True)
class PitColumns:
    """An upload's point-in-time columns, parsed, and the gate's rules over them."""

    observation: np.ndarray  # int64 UTC ns
    available: np.ndarray
    value: np.ndarray  # float64
    obs_bad: np.ndarray  # the time is missing, unparseable or out of range
    avail_bad: np.ndarray
    rules: list[Rule]


class PitParser:
    """The point-in-time quality gate shared by macro series and fundamentals, fed chunk by
    chunk (:meth:`add`) so only the parsed arrays are kept.

    Parses observation / available times (int64 UTC ns) and values (float64); the rules
    (:meth:`finish`): unparseable or missing times, available before the observation,
    sub-microsecond times, non-finite values, and duplicate keys ((group,) observation,
    available_at)."""

    def __init__(self, observation_name: str = "observation_date") -> None:
        self.observation_name = observation_name
        self._times = ColumnBuffer(2, "int64")  # observation, available
        self._bad = ColumnBuffer(2, "bool")
        self._values = ColumnBuffer(1, "float64")
        self._given = (FirstValues(), FirstValues())  # unusable times as uploaded

    @property
    def n_rows(self) -> int:
        return self._times.n_rows

    def add(self, raw_obs: pd.Series, raw_avail: pd.Series, raw_value: pd.Series) -> None:
        (obs, obs_bad), (avail, avail_bad) = parse_times(raw_obs, _LO, _HI), parse_times(raw_avail, _LO, _HI)
        self._given[0].offer(self.n_rows, obs_bad, raw_obs)
        self._given[1].offer(self.n_rows, avail_bad, raw_avail)
        self._times.append(obs, avail)
        self._bad.append(obs_bad, avail_bad)
        self._values.append(parse_values(raw_value))

    def _time_problem(self, given_values: FirstValues, name: str) -> Callable[[int], str]:
        def problem(i: int) -> str:
            given = given_values[i]
            if given is None or (not isinstance(given, str) and pd.isna(given)):
                return f"{name} is missing"
            return f"{name} {given!r} is not a date/time (1678-2261)"

        return problem

    def finish(self, group: np.ndarray | None = None, group_name: str | None = None) -> PitColumns:
        """The parsed columns and the rules; ``group`` (int codes) joins the duplicate key."""
        (observation, available), (obs_bad, avail_bad) = self._times.values(), self._bad.values()
        value = self._values.values()[0]
        name = self.observation_name
        both = ~obs_bad & ~avail_bad
        rules: list[Rule] = [
            (obs_bad, self._time_problem(self._given[0], name)),
            (avail_bad, self._time_problem(self._given[1], "available_at")),
            (both & (available < observation), f"available_at is before {name}"),
            (~obs_bad & (observation % 1000 != 0), f"{name} is finer than a microsecond"),
            (~avail_bad & (available % 1000 != 0), "available_at is finer than a microsecond"),
            (~np.isfinite(value), "value is missing or not a finite number"),
        ]
        keys = pd.DataFrame({"o": observation, "a": available})
        label = f"{name}, available_at"
        if group is not None:
            keys["g"] = group
            label = f"{group_name}, {label}"
        rules.append((keys.duplicated(keep=False).to_numpy() & both, f"duplicate ({label})"))
        return PitColumns(observation, available, value, obs_bad, avail_bad, rules)


def parse_macro_upload(records: pd.DataFrame | Records) -> tuple[pd.DataFrame, MacroQualityReport]:
    """Parse raw uploaded rows (any case of column names) and run the quality gate.

    Returns a frame of ``observation`` / ``available`` (int64 UTC ns) and ``value``
    (float64) in upload order, and the report; the frame is only meaningful when the
    report is ok. Rows are numbered from 1 in upload order.
    """
    records = as_records(records)
    columns = {str(c).strip().lower(): c for c in records.columns}
    missing = [c for c in RECORD_COLUMNS if c not in columns]
    if missing:
        raise InvalidInput(
            "macro records need the columns observation_date, available_at, value; "
            f"missing: {', '.join(missing)}"
        )
    parser = PitParser()
    for chunk in records.chunks([columns[c] for c in RECORD_COLUMNS]):
        parser.add(chunk.iloc[:, 0], chunk.iloc[:, 1], chunk.iloc[:, 2])
    if parser.n_rows == 0:
        raise InvalidInput("the upload holds no records")
    pit = parser.finish()
    described, n_bad = find_bad_rows(parser.n_rows, pit.rules)
    bad_rows = [
        MacroBadRow(
            row=i + 1,
            observation_date=None if pit.obs_bad[i] else iso(pit.observation[i]),
            available_at=None if pit.avail_bad[i] else iso(pit.available[i]),
            problems=problems,
        )
        for i, problems in described
    ]
    frame = pd.DataFrame({"observation": pit.observation, "available": pit.available, "value": pit.value})
    return frame, MacroQualityReport(bad_rows, n_bad, "record(s)")


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
    def ingest(self, series: str, records: pd.DataFrame) -> MacroIngestReport:
        """Gate then append ``records`` (columns observation_date, available_at, value)."""
        series = normalize_series(series)
        frame, report = parse_macro_upload(records)
        if not report.ok:
            raise report.error(series)
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
        until_utc = as_utc(until) if until is not None else None
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
            query = query.where(MacroObservation.observation_date >= as_utc(start))
        if end is not None:
            query = query.where(MacroObservation.observation_date < as_utc(end))
        if as_of is not None:
            query = query.where(MacroObservation.available_at <= as_utc(as_of))
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
        return [MacroSeriesInfo(r[0], int(r[1]), as_utc(r[2]), as_utc(r[3]), as_utc(r[4])) for r in rows]

    def has_series(self, series: str) -> bool:
        with self.db.session() as session:
            return self._table.state(session, {"series": normalize_series(series)})[0] > 0


def as_utc(value: datetime | str) -> datetime:
    """Naive datetimes are UTC; aware ones are converted (SQLite aggregates may give text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise InvalidInput(f"date/time {value.isoformat()} is out of range") from None


def datetime_key(value: datetime) -> int:
    """An exact integer key (microseconds since the epoch) for any aware datetime."""
    return (value - datetime(1970, 1, 1, tzinfo=timezone.utc)) // _MICROSECOND


_MICROSECOND = pd.Timedelta(microseconds=1).to_pytimedelta()
"""The one MacroStore of a Context's (or a Database's) database, per process."""


# -- bundled series -------------------------------------------------------------------------
def _next_day(obs: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return obs + pd.Timedelta(days=1)


def _month_start(obs: pd.DatetimeIndex) -> pd.DatetimeIndex:
    naive = obs.tz_convert("UTC").tz_localize(None) if obs.tz is not None else obs
    return naive.to_period("M").to_timestamp().tz_localize("UTC").as_unit("ns")


def _cpi_release(obs: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return _month_start(obs) + pd.DateOffset(months=1, days=14)


def _month_after_plus_day(obs: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return _month_start(obs) + pd.DateOffset(months=1, days=1)


def _end_of_next_month(obs: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return _month_start(obs) + pd.DateOffset(months=2, days=-1)


@dataclass(frozen=True)
class BundledLag:
    frequency: str
    rule: str
    available_at: Callable[[pd.DatetimeIndex], pd.DatetimeIndex] = field(repr=False)


#: The documented default publication lags of the bundled series (``available_at``).
BUNDLED_LAGS: dict[str, BundledLag] = {
    "VIX": BundledLag("daily", "observation_date + 1 day", _next_day),
    "WTI": BundledLag("daily", "observation_date + 1 day", _next_day),
    "CORE_CPI": BundledLag("monthly", "15th of the following month", _cpi_release),
    "AAA": BundledLag("monthly", "1st of the following month + 1 day", _month_after_plus_day),
    "BAA": BundledLag("monthly", "1st of the following month + 1 day", _month_after_plus_day),
    **{
        name: BundledLag("monthly", "observation month end + 1 month (last day of the following month)",
                         _end_of_next_month)
        for name in ("FF_MKT_RF", "FF_SMB", "FF_HML", "FF_RF")
    },
}

_FRENCH_COLUMNS = {"FF_MKT_RF": "Mkt-RF", "FF_SMB": "SMB", "FF_HML": "HML", "FF_RF": "RF"}


def french_month_starts(index: pd.Index) -> pd.DatetimeIndex:
    """Re-parse ``arch.data.frenchdata``'s index: 1970 nanoseconds whose integers are YYYYMM."""
    raw = np.asarray(pd.DatetimeIndex(index).as_unit("ns").asi8, dtype="int64")
    year, month = raw // 100, raw % 100
    if not ((month >= 1) & (month <= 12) & (year >= 1900) & (year <= 2200)).all():
        raise ValueError("frenchdata dates are not YYYYMM integers; has the arch package changed?")
    return pd.DatetimeIndex(
        pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": 1})), tz=None
    ).tz_localize("UTC").as_unit("ns")


def bundled_observations(series: str) -> pd.Series:
    """The raw bundled values of one series, indexed by UTC observation date, NaN dropped."""
    from arch.data import core_cpi, default, frenchdata, vix, wti

    if series == "VIX":
        raw = vix.load()["vix"]
    elif series == "WTI":
        raw = wti.load()["DCOILWTICO"]
    elif series == "CORE_CPI":
        raw = core_cpi.load()["CPILFESL"]
    elif series in ("AAA", "BAA"):
        raw = default.load()[series]
    elif series in _FRENCH_COLUMNS:
        data = frenchdata.load()
        raw = pd.Series(data[_FRENCH_COLUMNS[series]].to_numpy(), index=french_month_starts(data.index))
    else:
        raise KeyError(series)
    index = pd.DatetimeIndex(raw.index)
    index = (index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")).as_unit("ns")
    out = pd.Series(pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64"), index=index, name=series)
    return out.dropna()


def bundled_records(series: str) -> pd.DataFrame:
    """The bundled series as ingestible records (observation_date, available_at, value)."""
    values = bundled_observations(series)
    obs = pd.DatetimeIndex(values.index)
    return pd.DataFrame(
        {
            "observation_date": obs,
            "available_at": BUNDLED_LAGS[series].available_at(obs).as_unit("ns"),
            "value": values.to_numpy(),
        }
    )


def load_bundled_macro(store: MacroStore) -> list[str]:
    """Ingest the bundled series the store does not hold yet; returns those loaded.

    Idempotent: a series already present (bundled or uploaded under that name) is skipped."""
    held = {info.series for info in store.list_series()}
    loaded = []
    for series in BUNDLED_LAGS:
        if series in held:
            continue
        report = store.ingest(series, bundled_records(series))
        loaded.append(series)
        log.info("loaded bundled macro series %s (%d records)", series, report.inserted)
    return loaded
