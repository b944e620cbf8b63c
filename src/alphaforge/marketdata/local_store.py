"""The embedded bar store: one Parquet object per (symbol, timeframe) in the object store,
with a catalog row per series in the database."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, overload

import pandas as pd
from sqlalchemy import select

from alphaforge.errors import Conflict, InvalidInput
from alphaforge.marketdata.bars import (
    BAR_COLUMNS,
    describe_fields,
    present_fields,
    Timeframe,
    aggregate_weekly,
    canonical,
    empty_frame,
    fingerprint,
)
from alphaforge.marketdata.provider import BarProvider, BarRequest, BarWindow, SeriesInfo, SeriesState
from alphaforge.storage.db import Database
from alphaforge.storage.object_store import ObjectNotFound, ObjectStore
from alphaforge.storage.parquet import columns_with_values, from_parquet_bytes, to_parquet_bytes
from alphaforge.storage.tables import BarSeries

log = logging.getLogger(__name__)


class _Unknown:
    """``_read``'s "catalog entry not given" (None means "no row")."""


_UNKNOWN = _Unknown()


#: Series versions' states a store remembers (~300 bytes each).
_STATES_KEPT = 50_000
#: Window fingerprints a store remembers (~200 bytes each).
_WINDOW_FINGERPRINTS_KEPT = 50_000


def _stored(timeframe: Timeframe) -> Timeframe:
    """The series a timeframe is read from: weekly bars are aggregated from daily ones."""
    return Timeframe.DAY if timeframe == Timeframe.WEEK else timeframe

@dataclass(frozen=True)
class IngestResult:
    symbol: str
    timeframe: str
    received: int
    inserted: int
    replaced: int
    n_bars: int
    first_bar: datetime
    last_bar: datetime
    fingerprint: str


#: What the bar frames a store keeps in memory may take (~200 KB per 20 years of daily bars).
_CACHED_BYTES = 512 * 1024 * 1024


class _FrameCache:
    """(symbol, timeframe) -> (fingerprint, frame), the least recently used dropped first once
    the frames take more than ``limit`` bytes: a process serving many symbols (the API, a
    long-lived worker) holds the ones it reads most, not every series it ever read."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: OrderedDict[tuple[str, str], tuple[str, pd.DataFrame, int]] = OrderedDict()
        self._bytes = 0
        self._guard = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[str, pd.DataFrame] | None:
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0], entry[1]

    def __setitem__(self, key: tuple[str, str], value: tuple[str, pd.DataFrame]) -> None:
        fp, frame = value
        size = len(frame) * (frame.shape[1] + 1) * 8
        with self._guard:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            self._entries[key] = (fp, frame, size)
            self._bytes += size
            while self._bytes > self.limit and len(self._entries) > 1:
                _, (_, _, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def __len__(self) -> int:
        return len(self._entries)


class LocalBarStore(BarProvider):
    def __init__(self, objects: ObjectStore, db: Database) -> None:
        self.objects = objects
        self.db = db
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # (symbol, timeframe) -> (fingerprint, frame); validated against the catalog on read.
        self._cache = _FrameCache(_CACHED_BYTES)
        # (symbol, timeframe, fingerprint) -> that stored version's state (span and fields: both
        # functions of its content); the oldest dropped first.
        self._states: dict[tuple[str, str, str], SeriesState] = {}
        # (symbol, timeframe, series fingerprint, first row, end row) -> that window's fingerprint;
        # the oldest dropped first.
        self._window_fingerprints: dict[tuple[str, str, str, int, int], str] = {}

    @staticmethod
    def key(symbol: str, timeframe: str, fp: str) -> str:
        # Content-addressed: the catalog row switches from one complete object to the next.
        return f"bars/{symbol}/{timeframe}/{fp}.parquet"

    # -- writing ----------------------------------------------------------------------
    def append(self, symbol: str, timeframe: Timeframe, bars: pd.DataFrame) -> IngestResult:
        """Merge ``bars`` (canonical, gate passed) into the series; a bar that already
        exists is replaced (a vendor restatement)."""
        if timeframe == Timeframe.WEEK:
            raise InvalidInput("1w bars are aggregated from 1d bars; ingest 1d (or 1h) bars instead")
        with self._lock(symbol, timeframe):
            existing = self._read(symbol, timeframe, lost_ok=True)
            if existing is not None and len(existing) and present_fields(existing) != present_fields(bars):
                raise InvalidInput(
                    f"the stored {timeframe.value} bars of {symbol} have {describe_fields(present_fields(existing))}; "
                    f"this upload has {describe_fields(present_fields(bars))}: a series keeps one set of fields "
                    "(upload the same columns, or store the other kind under another symbol)"
                )
            replaced = int(existing.index.isin(bars.index).sum()) if existing is not None else 0
            if existing is not None and len(existing):
                merged = pd.concat([existing[~existing.index.isin(bars.index)], bars])
            else:
                merged = bars
            merged = canonical(merged)
            fp = fingerprint(merged)
            uri = self.objects.put(self.key(symbol, timeframe.value, fp), to_parquet_bytes(merged))
            with self.db.session() as session:
                row = session.get(BarSeries, (symbol, timeframe.value))
                if row is None:
                    row = BarSeries(symbol=symbol, timeframe=timeframe.value)
                    session.add(row)
                previous_uri = row.storage_uri
                row.first_bar = merged.index[0].to_pydatetime()
                row.last_bar = merged.index[-1].to_pydatetime()
                row.n_bars = len(merged)
                row.fingerprint = fp
                row.storage_uri = uri
            if previous_uri and previous_uri != uri:
                self.objects.delete(self.objects.key_of(previous_uri))
            self._cache[(symbol, timeframe.value)] = (fp, merged)
        return IngestResult(
            symbol=symbol,
            timeframe=timeframe.value,
            received=len(bars),
            inserted=len(bars) - replaced,
            replaced=replaced,
            n_bars=len(merged),
            first_bar=merged.index[0].to_pydatetime(),
            last_bar=merged.index[-1].to_pydatetime(),
            fingerprint=fp,
        )

    # -- reading ----------------------------------------------------------------------
    def get_bars(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime, warmup: int = 0
    ) -> pd.DataFrame:
        stored = _stored(timeframe)
        return self._window(self._read(symbol, stored), symbol, timeframe, start, end, warmup)

    def get_bars_many(self, requests: Sequence[BarRequest]) -> list[BarWindow]:
        """One catalog query for every request's series (a query per series cost ~0.5 ms a
        piece of a panel), then each read as ``get_bars`` reads it. A window's fingerprint is
        remembered by the request and its series' fingerprint (a function of both): SHA-256
        over 20 years of daily bars costs ~0.35 ms, paid by each feature of a panel."""
        wanted = {(r.symbol, _stored(r.timeframe).value) for r in requests}
        with self.db.session() as session:
            rows = session.execute(
                select(BarSeries.symbol, BarSeries.timeframe, BarSeries.fingerprint, BarSeries.storage_uri)
                .where(BarSeries.symbol.in_(sorted({s for s, _ in wanted})),
                       BarSeries.timeframe.in_(sorted({t for _, t in wanted})))
            ).all()
        catalog = {(r.symbol, r.timeframe): (r.fingerprint, r.storage_uri) for r in rows}
        out = []
        for r in requests:
            stored = _stored(r.timeframe)
            frame = self._read(r.symbol, stored, known=catalog.get((r.symbol, stored.value)))
            bars, at = self._window(frame, r.symbol, r.timeframe, r.start, r.end, r.warmup, where=True)
            cached = self._cache.get((r.symbol, stored.value))
            if frame is None or cached is None or cached[1] is not frame:
                out.append(BarWindow(bars, fingerprint(bars)))
                continue
            # Which rows of which version of the series: requests that differ only in a warm-up
            # the series' start cuts short share their window.
            key = (r.symbol, r.timeframe.value, cached[0], *at)
            fp = self._window_fingerprints.get(key)
            if fp is None:
                fp = self._window_fingerprints[key] = fingerprint(bars)
                while len(self._window_fingerprints) > _WINDOW_FINGERPRINTS_KEPT:
                    self._window_fingerprints.pop(next(iter(self._window_fingerprints)))
            out.append(BarWindow(bars, fp))
        return out

    @overload
    def _window(self, frame: pd.DataFrame | None, symbol: str, timeframe: Timeframe, start: datetime,
                end: datetime, warmup: int) -> pd.DataFrame: ...

    @overload
    def _window(self, frame: pd.DataFrame | None, symbol: str, timeframe: Timeframe, start: datetime,
                end: datetime, warmup: int, where: Literal[True]) -> tuple[pd.DataFrame, tuple[int, int]]: ...

    def _window(
        self, frame: pd.DataFrame | None, symbol: str, timeframe: Timeframe, start: datetime, end: datetime,
        warmup: int, where: bool = False,
    ) -> pd.DataFrame | tuple[pd.DataFrame, tuple[int, int]]:
        """The stored series (None: none) cut to ``[start, end)`` and ``warmup`` bars before;
        ``where``: also the rows it was cut at (positions in the series, or its weekly bars)."""
        if frame is None:
            available = self.timeframes_of(symbol)
            if available:
                raise InvalidInput(
                    f"{symbol} has no {timeframe.value} bars (it has: {', '.join(available)}); "
                    "1w is aggregated from 1d bars"
                )
            bars, at = empty_frame(), (0, 0)
        else:
            if timeframe == Timeframe.WEEK:
                frame = self._weekly(symbol, frame)
            index = frame.index
            lo = int(index.searchsorted(pd.Timestamp(start), side="left"))
            hi = int(index.searchsorted(pd.Timestamp(end), side="left"))
            at = (lo, lo) if hi <= lo else (max(0, lo - warmup), hi)
            bars = frame.iloc[at[0]:at[1]]
        return (bars, at) if where else bars

    def _weekly(self, symbol: str, daily: pd.DataFrame) -> pd.DataFrame:
        """The weekly bars of a daily series, aggregated once per stored version (~5 ms for
        20 years, paid by every weekly read and every member of a weekly panel)."""
        version = self._cache.get((symbol, Timeframe.DAY.value))
        if version is None or version[1] is not daily:  # not the cached version: nothing to key it by
            return aggregate_weekly(daily)
        kept = self._cache.get((symbol, Timeframe.WEEK.value))
        if kept is not None and kept[0] == version[0]:
            return kept[1]
        weekly = aggregate_weekly(daily)
        self._cache[(symbol, Timeframe.WEEK.value)] = (version[0], weekly)
        return weekly

    def list_series(self) -> list[SeriesInfo]:
        with self.db.session() as session:
            rows = session.scalars(select(BarSeries).order_by(BarSeries.symbol, BarSeries.timeframe)).all()
        out = [SeriesInfo(r.symbol, r.timeframe, r.first_bar, r.last_bar, r.n_bars) for r in rows]
        weekly = [
            SeriesInfo(s.symbol, Timeframe.WEEK.value, s.first_bar, s.last_bar, None)
            for s in out
            if s.timeframe == Timeframe.DAY.value
        ]
        return sorted(out + weekly, key=lambda s: (s.symbol, s.timeframe))

    def series_states(self, symbols: list[str], timeframe: Timeframe) -> dict[str, SeriesState]:
        """Each series' fingerprint from one catalog query; its span and fields are read once
        per stored version (a version's are functions of its content; decoding a hundred
        spans' timestamps was half of a warm panel request's planning). Weekly bars share
        their daily series' fingerprint: they are aggregated from it on read."""
        stored = _stored(timeframe)
        with self.db.session() as session:
            rows = session.execute(
                select(BarSeries.symbol, BarSeries.fingerprint)
                .where(BarSeries.timeframe == stored.value, BarSeries.symbol.in_(symbols))
            ).all()
            out = {symbol: self._states.get((symbol, stored.value, fp)) for symbol, fp in rows}
            unknown = sorted(symbol for symbol, state in out.items() if state is None)
            spans = session.execute(
                select(BarSeries.symbol, BarSeries.fingerprint, BarSeries.first_bar, BarSeries.last_bar,
                       BarSeries.storage_uri)
                .where(BarSeries.timeframe == stored.value, BarSeries.symbol.in_(unknown))
            ).all() if unknown else []
        for symbol, fp, first, last, uri in spans:  # read in the same session: the version the first query saw
            out[symbol] = self._states[(symbol, stored.value, fp)] = SeriesState(
                fp, first, last, self._stored_fields(symbol, stored, fp, uri))
            while len(self._states) > _STATES_KEPT:
                self._states.pop(next(iter(self._states)))
        return {symbol: state for symbol, state in out.items() if state is not None}

    def _stored_fields(self, symbol: str, timeframe: Timeframe, fp: str, uri: str) -> tuple[str, ...]:
        """The fields a stored version holds, from its object's footer when that tells (the
        API plans a panel from them: decoding 100 members' bars cost it ~80 ms on a first
        request, and kept their frames in its memory)."""
        cached = self._cache.get((symbol, timeframe.value))
        if cached is not None and cached[0] == fp:
            return present_fields(cached[1])
        try:
            have = columns_with_values(self.objects.get(self.objects.key_of(uri)))
        except ObjectNotFound:  # replaced meanwhile, or lost: read as any read does
            have = None
        if have is not None:
            return tuple(c for c in BAR_COLUMNS if c in have)
        frame = self._read(symbol, timeframe)
        return present_fields(frame) if frame is not None else ()

    def timeframes_of(self, symbol: str) -> list[str]:
        with self.db.session() as session:
            stored = session.scalars(select(BarSeries.timeframe).where(BarSeries.symbol == symbol)).all()
        return sorted(set(stored) | ({Timeframe.WEEK.value} if Timeframe.DAY.value in stored else set()))

    def _read(
        self, symbol: str, timeframe: Timeframe, *, lost_ok: bool = False,
        known: tuple[str, str] | None | _Unknown = _UNKNOWN,
    ) -> pd.DataFrame | None:
        """The stored series (None: none stored). Its object lost from the object store (e.g.
        a bucket recreated empty): None when ``lost_ok`` (an ingest starts the series
        afresh), else a 409 that says to ingest the bars again. ``known``: its catalog entry
        (fingerprint, object URI; None: no row) as just read for many series at once."""
        for attempt in range(2):
            if attempt == 0 and not isinstance(known, _Unknown):
                if known is None:
                    return None
                fp, uri = known
            else:
                with self.db.session() as session:
                    row = session.get(BarSeries, (symbol, timeframe.value))
                    if row is None:
                        return None
                    fp, uri = row.fingerprint, row.storage_uri
            cached = self._cache.get((symbol, timeframe.value))
            if cached is not None and cached[0] == fp:
                return cached[1]
            try:
                data = self.objects.get(self.objects.key_of(uri))
            except ObjectNotFound:
                if attempt == 0:
                    continue  # a concurrent ingest replaced the series; read the catalog again
                log.warning("bars %s %s: object %s is missing from the object store", symbol, timeframe.value, uri)
                if lost_ok:
                    return None
                raise Conflict(
                    f"the stored {timeframe.value} bars of {symbol} are missing from the object store; "
                    f"ingest them again with POST /api/v1/market-data/{symbol}/bars"
                ) from None
            frame = from_parquet_bytes(data)
            if list(frame.columns) != list(BAR_COLUMNS):  # selecting them all anyway copied (2 ms a series)
                frame = frame[list(BAR_COLUMNS)]
            self._cache[(symbol, timeframe.value)] = (fp, frame)
            return frame
        raise AssertionError("unreachable")

    def _lock(self, symbol: str, timeframe: Timeframe) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((symbol, timeframe.value), threading.Lock())
