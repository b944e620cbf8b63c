"""The market-data provider interface every bar source implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from alphaforge.marketdata.bars import Timeframe


@dataclass(frozen=True)
class SeriesInfo:
    symbol: str
    timeframe: str
    first_bar: datetime
    last_bar: datetime
    n_bars: int | None  # None for series derived on read (1w from 1d)


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

    @abstractmethod
    def list_series(self) -> list[SeriesInfo]:
        """Every (symbol, timeframe) the provider can serve, with its first and last bar."""
