"""``/api/v1/market-data``: bars, macro series, fundamentals and news, read as DataFrames and
ingested from DataFrames (sent as CSV uploads, which the service checks row by row and
stores all or nothing). Ingestion needs an admin key."""

from __future__ import annotations

from typing import Any

import pandas as pd

from alphaforge.client.http import TimeLike, Transport, iso, without_none


class MarketData:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def symbols(self) -> list[dict[str, Any]]:
        """Every symbol with its timeframes, first and last bar."""
        return self._transport.json("GET", "/market-data/symbols")["symbols"]

    def bars(self, symbol: str, start: TimeLike | None = None, end: TimeLike | None = None,
             timeframe: str = "1d") -> pd.DataFrame:
        """Bars with ``start <= timestamp < end`` (open, high, low, close, volume), indexed by UTC timestamp."""
        params = without_none({"timeframe": timeframe, "start": iso(start), "end": iso(end)})
        body = self._transport.json("GET", f"/market-data/{symbol}/bars", params=params)
        return records_frame(body["bars"], "timestamp")

    def ingest_bars(self, symbol: str, frame: pd.DataFrame, timeframe: str = "1d") -> dict[str, Any]:
        """Store bars: a DatetimeIndex (or a ``timestamp`` column; naive = UTC) and open,
        high, low, close, volume. A bar at an existing timestamp restates it. Returns the
        counts received, inserted and replaced."""
        return self._transport.upload_csv(f"/market-data/{symbol}/bars", frame, {"timeframe": timeframe})

    def macro(self, series: str, start: TimeLike | None = None, end: TimeLike | None = None,
              as_of: TimeLike | None = None) -> pd.DataFrame:
        """A macro series' point-in-time records (``as_of``: only what was known then)."""
        params = without_none({"start": iso(start), "end": iso(end), "as_of": iso(as_of)})
        return records_frame(self._transport.json("GET", f"/market-data/macro/{series}", params=params)["records"])

    def ingest_macro(self, series: str, frame: pd.DataFrame) -> dict[str, Any]:
        """Columns observation_date, available_at, value."""
        return self._transport.upload_csv(f"/market-data/macro/{series}", frame)

    def fundamentals(self, symbol: str, field: str | None = None, as_of: TimeLike | None = None) -> pd.DataFrame:
        params = without_none({"field": field, "as_of": iso(as_of)})
        return records_frame(self._transport.json("GET", f"/market-data/{symbol}/fundamentals", params=params)["records"])

    def ingest_fundamentals(self, symbol: str, frame: pd.DataFrame) -> dict[str, Any]:
        """Columns period_end, available_at, field, value."""
        return self._transport.upload_csv(f"/market-data/{symbol}/fundamentals", frame)

    def news(self, symbol: str, start: TimeLike | None = None, end: TimeLike | None = None,
             limit: int = 1000) -> pd.DataFrame:
        params = without_none({"start": iso(start), "end": iso(end), "limit": limit})
        return records_frame(self._transport.json("GET", f"/market-data/{symbol}/news", params=params)["articles"])

    def ingest_news(self, symbol: str, frame: pd.DataFrame) -> dict[str, Any]:
        """Columns published_at (with a zone), headline, and optional body, source, url."""
        return self._transport.upload_csv(f"/market-data/{symbol}/news", frame)


def records_frame(records: list[dict[str, Any]], index: str | None = None) -> pd.DataFrame:
    """JSON records as a DataFrame, ``index`` (a time column) parsed as UTC and made the index."""
    frame = pd.DataFrame.from_records(records)
    if index is not None:
        stamps = pd.to_datetime(frame[index], utc=True) if len(frame) else pd.DatetimeIndex([], tz="UTC")
        frame = frame.drop(columns=[index], errors="ignore").set_index(pd.DatetimeIndex(stamps, name=index))
    return frame
