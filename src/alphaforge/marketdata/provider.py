"""The market-data provider interface every bar source implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from alphaforge.marketdata.bars import Timeframe, fingerprint


@dataclass(frozen=True)
class SeriesInfo:
    symbol: str
    timeframe: str
    first_bar: datetime
    last_bar: datetime
    n_bars: int | None  # None for series derived on read (1w from 1d)


@dataclass(frozen=True)
class SeriesState:
    """What a panel request needs to know of a stored series without reading its bars: a
    fingerprint of its whole content (any restatement changes it), its span and its fields."""

    fingerprint: str
    first_bar: datetime
    last_bar: datetime
    fields: tuple[str, ...]


@dataclass(frozen=True)
class BarRequest:
    """One ``get_bars`` call's arguments (``get_bars_many`` takes many)."""

    symbol: str
    timeframe: Timeframe
    start: datetime
    end: datetime
    warmup: int = 0


@dataclass(frozen=True)
class BarWindow:
    """Bars a request asked for and their fingerprint (``bars.fingerprint``)."""

    bars: pd.DataFrame
    fingerprint: str


class BarProvider(ABC):
    """Where bars come from. Implementations: the local bar store, an HTTP service."""

    #: Name used in error messages when this provider is down.
    dependency = "market data"

    @abstractmethod
    def get_bars(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime, warmup: int = 0
    ) -> pd.DataFrame:
        """Canonical bars with ``start <= t < end``, preceded by up to ``warmup`` earlier bars.

        ``symbol`` is already normalized; ``start``/``end`` are UTC-aware. An unknown symbol
        gives an empty frame; a symbol that lacks the timeframe raises ``InvalidInput``.
        """

    def get_bars_many(self, requests: Sequence[BarRequest]) -> list[BarWindow]:
        """``get_bars`` of each request, in order, with the bars' fingerprint: a provider may
        look its series up once for all of them (a panel's batch of pieces reads 64 members'
        bars at a time) and remember fingerprints (ten features over one universe hash the
        same windows ten times)."""
        out = []
        for r in requests:
            bars = self.get_bars(r.symbol, r.timeframe, r.start, r.end, r.warmup)
            out.append(BarWindow(bars, fingerprint(bars)))
        return out

    @abstractmethod
    def list_series(self) -> list[SeriesInfo]:
        """Every (symbol, timeframe) the provider can serve, with its first and last bar."""

    def series_states(self, symbols: list[str], timeframe: Timeframe) -> dict[str, SeriesState] | None:
        """Each stored series' state in one call (symbols without bars absent); None when
        the provider cannot say, and panels then plan each member from its bars."""
        return None
