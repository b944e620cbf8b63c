"""Times as every store keeps them: aware UTC datetimes, and their integer forms.

Two ranges, because two representations: bars are int64 nanoseconds (pandas' whole
Timestamp range, :data:`MIN_TIME`..:data:`MAX_TIME`); point-in-time records (macro,
fundamentals, news) keep a margin inside it (:data:`MIN_NS`..:data:`MAX_NS`, 1678-2261) so
that a lag added to an observation still fits."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from alphaforge.errors import InvalidInput

#: The times int64 nanoseconds can hold (pandas' Timestamp range), to the microsecond:
#: the bounds of every time the service accepts or stores as a bar.
MIN_TIME: datetime = pd.Timestamp.min.ceil("us").tz_localize("UTC").to_pydatetime()
MAX_TIME: datetime = pd.Timestamp.max.floor("us").tz_localize("UTC").to_pydatetime()

#: The times of point-in-time records, as int64 UTC nanoseconds.
MIN_NS = pd.Timestamp("1678-01-01", tz="UTC").value
MAX_NS = pd.Timestamp("2261-12-31", tz="UTC").value

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = pd.Timedelta(microseconds=1).to_pytimedelta()


def to_utc(value: datetime | str) -> datetime:
    """Naive datetimes are read as UTC; aware ones are converted to UTC (text, as SQLite's
    aggregates give it, is parsed first)."""
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
    return (value - _EPOCH) // _MICROSECOND
