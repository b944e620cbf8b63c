"""The embedded bar store: one Parquet object per (symbol, timeframe) in the object store,
with a catalog row per series in the database."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

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
from alphaforge.marketdata.provider import BarProvider, SeriesInfo, SeriesState
from alphaforge.storage.db import Database
from alphaforge.storage.object_store import ObjectNotFound, ObjectStore
from alphaforge.storage.parquet import from_parquet_bytes, to_parquet_bytes
from alphaforge.storage.tables import BarSeries

log = logging.getLogger(__name__)

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


class LocalBarStore(BarProvider):
    def __init__(self, objects: ObjectStore, db: Database) -> None:
        self.objects = objects
        self.db = db
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # (symbol, timeframe) -> (fingerprint, frame); validated against the catalog on read.
        self._cache: dict[tuple[str, str], tuple[str, pd.DataFrame]] = {}
        # (symbol, timeframe, fingerprint) -> the bar fields that stored version holds.
        self._fields: dict[tuple[str, str, str], tuple[str, ...]] = {}

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
        stored = Timeframe.DAY if timeframe == Timeframe.WEEK else timeframe
        frame = self._read(symbol, stored)
        if frame is None:
            available = self.timeframes_of(symbol)
            if available:
                raise InvalidInput(
                    f"{symbol} has no {timeframe.value} bars (it has: {', '.join(available)}); "
                    "1w is aggregated from 1d bars"
                )
            return empty_frame()
        if timeframe == Timeframe.WEEK:
            frame = aggregate_weekly(frame)
        index = frame.index
        lo = int(index.searchsorted(pd.Timestamp(start), side="left"))
        hi = int(index.searchsorted(pd.Timestamp(end), side="left"))
        if hi <= lo:
            return frame.iloc[0:0]
        return frame.iloc[max(0, lo - warmup):hi]

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
        """One catalog query; a series' fields are read once per stored version (weekly bars
        share their daily series' fingerprint: they are aggregated from it on read)."""
        stored = Timeframe.DAY if timeframe == Timeframe.WEEK else timeframe
        with self.db.session() as session:
            rows = session.execute(
                select(BarSeries.symbol, BarSeries.fingerprint, BarSeries.first_bar, BarSeries.last_bar)
                .where(BarSeries.timeframe == stored.value, BarSeries.symbol.in_(symbols))
            ).all()
        out = {}
        for symbol, fp, first, last in rows:
            fields = self._fields.get((symbol, stored.value, fp))
            if fields is None:
                frame = self._read(symbol, stored)
                fields = present_fields(frame) if frame is not None else ()
                self._fields[(symbol, stored.value, fp)] = fields
            out[symbol] = SeriesState(fp, first, last, fields)
        return out

    def timeframes_of(self, symbol: str) -> list[str]:
        with self.db.session() as session:
            stored = session.scalars(select(BarSeries.timeframe).where(BarSeries.symbol == symbol)).all()
        return sorted(set(stored) | ({Timeframe.WEEK.value} if Timeframe.DAY.value in stored else set()))

    def _read(self, symbol: str, timeframe: Timeframe, *, lost_ok: bool = False) -> pd.DataFrame | None:
        """The stored series (None: none stored). Its object lost from the object store (e.g.
        a bucket recreated empty): None when ``lost_ok`` (an ingest starts the series
        afresh), else a 409 that says to ingest the bars again."""
        for attempt in range(2):
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
