"""Bars from an external market-data service over HTTP.

The service's contract (all times ISO 8601 UTC, ``end`` exclusive)::

    GET {base_url}/api/v1/ohlcv?symbol=GSPC&timeframe=1d&start=2010-01-01T00:00:00Z&end=2011-01-01T00:00:00Z
        -> 200 [{"timestamp": ..., "open": ..., "high": ..., "low": ..., "close": ..., "volume": ...}, ...]
        -> 404 when the symbol is unknown
    GET {base_url}/api/v1/symbols
        -> 200 [{"symbol": ..., "timeframe": ..., "first_bar": ..., "last_bar": ..., "n_bars": ...}, ...]

Every request carries ``Accept: application/json`` and, when a key is configured,
``X-API-Key``. The service serves 1h and 1d bars; 1w is aggregated here from 1d, exactly as
the local bar store does, so both providers give the same frames for the same bars.

The service cannot answer "the N bars before ``start``", so a warm-up is fetched by asking
from an earlier start padded by calendar time, and asking further back (each time four
times as far) while fewer than N bars came back, down to 1970-01-01.

Errors: 404 -> empty frame (unknown symbol); 400/422 -> ``InvalidInput`` with the service's
message; 401/403 -> ``DependencyFailed`` (bad credentials); 429 -> ``DependencyUnavailable``
with Retry-After; 503/504, timeouts and connection errors -> retried once, then
``DependencyUnavailable``; other 5xx -> retried once, then ``DependencyFailed``; a body
that is not JSON, or bars that fail the data-quality gate -> ``DependencyFailed``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

import httpx
import pandas as pd
from pydantic import BaseModel, TypeAdapter, ValidationError

from alphaforge.errors import DependencyFailed, DependencyUnavailable, InvalidInput
from alphaforge.ingestion.bars import BarsQualityReport, parse_bars_upload
from alphaforge.marketdata.bars import STORED_TIMEFRAMES, Timeframe, aggregate_weekly, empty_frame
from alphaforge.marketdata.times import to_utc
from alphaforge.marketdata.provider import BarProvider, SeriesInfo

log = logging.getLogger(__name__)

DEPENDENCY = "market data"
API_KEY_SETTING = "ALPHAFORGE_MARKET_DATA_API_KEY"
URL_SETTING = "ALPHAFORGE_MARKET_DATA_URL"
BARS_PATH = "/api/v1/ohlcv"
SYMBOLS_PATH = "/api/v1/symbols"

#: The earliest time ever requested for a warm-up (and the start of a full-history request).
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: A warm-up this large means "all the history there is" (generation asks 10**9).
FULL_HISTORY_WARMUP = 10**6
#: Calendar padding per warm-up bar is twice the bar length (weekends, holidays, nights),
#: plus this margin for long market closures.
PADDING_MARGIN = timedelta(days=14)
#: When the padded request held too few warm-up bars, ask this many times further back.
BACKFILL_FACTOR = 4
BAR_LENGTH = {Timeframe.HOUR: timedelta(hours=1), Timeframe.DAY: timedelta(days=1), Timeframe.WEEK: timedelta(weeks=1)}


class HttpBarProvider(BarProvider):
    """A ``BarProvider`` backed by the market-data service at ``base_url``."""

    #: Pause before the single retry of a transient failure (seconds).
    retry_delay_s: float = 0.2

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 10.0) -> None:
        self.base_url = _checked_base_url(base_url)
        self.timeout_s = timeout_s
        self.has_api_key = bool(api_key)
        headers = {"Accept": "application/json"}
        if api_key:
            headers["X-API-Key"] = api_key
        # One client per provider: its connection pool is reused by every request (thread-safe).
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s, follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    # -- BarProvider --------------------------------------------------------------------
    def get_bars(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime, warmup: int = 0
    ) -> pd.DataFrame:
        """See ``BarProvider.get_bars``; same frames as the local store for the same bars."""
        start, end = to_utc(start), to_utc(end)
        if end <= start:
            return empty_frame()
        source = Timeframe.DAY if timeframe == Timeframe.WEEK else timeframe
        earliest = min(EPOCH, _week_floor(start) if timeframe == Timeframe.WEEK else start)
        lo = _first_start(timeframe, start, warmup, earliest)
        # A week that straddles ``end`` is stamped by its last daily bar, which may lie past
        # ``end``: fetch the whole week so it is judged as the local store judges it.
        hi = _week_ceil(end) if timeframe == Timeframe.WEEK else end
        raw = self._fetch_bars(symbol, source, lo, hi)
        if raw is None:
            return empty_frame()
        frame = _as_timeframe(raw, timeframe)
        if _count_in(frame, start, end) == 0:
            return frame.iloc[0:0]
        while _count_before(frame, start) < warmup and lo > earliest:
            lo, hi = _further_back(timeframe, start, lo, earliest), lo
            earlier = self._fetch_bars(symbol, source, lo, hi)
            if earlier is None:
                break
            if len(earlier):
                raw = pd.concat([earlier, raw])
                frame = _as_timeframe(raw, timeframe)
        return _slice(frame, start, end, warmup)

    def list_series(self) -> list[SeriesInfo]:
        """The service's 1h and 1d series, plus a 1w series derived from each 1d one."""
        response = self._get(SYMBOLS_PATH, {}, "the symbol list")
        if response.status_code == 404:
            raise DependencyFailed(
                DEPENDENCY,
                f"the service answered 404 for GET {SYMBOLS_PATH}; check {URL_SETTING} points at the service",
                upstream_status=404,
            )
        rows = _parse_series(_json(response, "the symbol list"))
        served = [r for r in rows if r.timeframe in STORED_TIMEFRAMES]
        weekly = [
            SeriesInfo(r.symbol, Timeframe.WEEK.value, r.first_bar, r.last_bar, None)
            for r in served
            if r.timeframe == Timeframe.DAY.value
        ]
        return sorted(served + weekly, key=lambda s: (s.symbol, s.timeframe))

    # -- fetching -------------------------------------------------------------------------
    def _fetch_bars(self, symbol: str, timeframe: Timeframe, lo: datetime, hi: datetime) -> pd.DataFrame | None:
        """Canonical bars with ``lo <= t < hi``, or None when the service does not know the symbol."""
        what = f"{symbol} {timeframe.value} bars"
        params = {"symbol": symbol, "timeframe": timeframe.value, "start": _iso(lo), "end": _iso(hi)}
        response = self._get(BARS_PATH, params, what)
        if response.status_code == 404:
            return None
        frame = _parse_bars(_json(response, what), what)
        # Never trust the range: chunks fetched one after another must not overlap.
        return frame[(frame.index >= pd.Timestamp(lo)) & (frame.index < pd.Timestamp(hi))]

    def _get(self, path: str, params: dict[str, str], what: str) -> httpx.Response:
        """GET with one retry of a transient failure. Returns a 2xx or 404 response; every
        other outcome is raised as the domain error it maps to (never an httpx exception)."""
        outcome = self._attempt(path, params, what)
        if isinstance(outcome, _Failure) and outcome.retryable:
            log.warning("market data: %s; retrying once", outcome.message)
            time.sleep(self.retry_delay_s)
            outcome = self._attempt(path, params, what)
            if isinstance(outcome, _Failure) and outcome.retryable:
                outcome.throw(attempts=2)
        if isinstance(outcome, _Failure):
            outcome.throw()
        return outcome

    def _attempt(self, path: str, params: dict[str, str], what: str) -> httpx.Response | _Failure:
        try:
            response = self._client.get(path, params=params)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # The service's address and the transport's words go to the log, not to the client.
            log.warning("market data at %s: request for %s failed: %s", self.base_url, what, _exc_text(exc))
            if isinstance(exc, httpx.UnsupportedProtocol):
                text = f"cannot call the service (unsupported protocol); check {URL_SETTING}"
                return _Failure(DependencyUnavailable, text)
            if isinstance(exc, httpx.TimeoutException):
                return _Failure(DependencyUnavailable, f"no answer for {what} within {self.timeout_s:g} s", True)
            if isinstance(exc, httpx.TransportError):
                return _Failure(DependencyUnavailable, f"cannot reach the service ({type(exc).__name__})", True)
            return _Failure(DependencyFailed, f"request for {what} failed ({type(exc).__name__})")
        return self._check_status(response, what) or response

    def _check_status(self, response: httpx.Response, what: str) -> _Failure | None:
        status = response.status_code
        if 200 <= status < 300 or status == 404:
            return None
        message = _service_message(response)
        context: dict[str, Any] = {"upstream_status": status}
        if status in (400, 422):
            raise InvalidInput(f"the market-data service rejected the request for {what}: {message}", **context)
        if status in (401, 403):
            hint = "check" if self.has_api_key else "no key is configured; set"
            text = f"the service rejected the credentials (HTTP {status}: {message}); {hint} {API_KEY_SETTING}"
            return _Failure(DependencyFailed, text, context=context)
        retry_after = response.headers.get("Retry-After")
        if retry_after:
            context["retry_after"] = retry_after
        later = f"; retry after {_retry_after_text(retry_after)}" if retry_after else ""
        if status == 429:
            return _Failure(DependencyUnavailable, f"rate limited by the service (HTTP 429){later}", context=context)
        if status >= 500:
            # A server error's text may describe the service's insides: logged, not passed on.
            log.warning("market data at %s: HTTP %d for %s: %s", self.base_url, status, what, message)
        if status in (503, 504):
            return _Failure(DependencyUnavailable, f"the service is unavailable (HTTP {status}){later}", True, context)
        if status >= 500:
            return _Failure(DependencyFailed, f"the service failed on {what} (HTTP {status})", True, context)
        return _Failure(DependencyFailed, f"unexpected HTTP {status} for {what}: {message}", context=context)


@dataclass
class _Failure:
    """One failed attempt: the error it maps to, and whether a second attempt may help."""

    error: type[DependencyUnavailable]
    message: str
    retryable: bool = False
    context: dict[str, Any] = field(default_factory=dict)

    def throw(self, attempts: int = 1) -> NoReturn:
        suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
        raise self.error(DEPENDENCY, self.message + suffix, **self.context)


# -- warm-up windows --------------------------------------------------------------------
def _first_start(timeframe: Timeframe, start: datetime, warmup: int, earliest: datetime) -> datetime:
    """Where the first request begins: far enough back that ``warmup`` bars are likely in it."""
    if warmup >= FULL_HISTORY_WARMUP:
        return earliest
    padding = warmup * BAR_LENGTH[timeframe] * 2 + PADDING_MARGIN
    return _back_from(timeframe, start, padding, earliest)


def _further_back(timeframe: Timeframe, start: datetime, lo: datetime, earliest: datetime) -> datetime:
    """The next, earlier request start when ``[lo, start)`` held too few warm-up bars."""
    return _back_from(timeframe, start, (start - lo) * BACKFILL_FACTOR, earliest)


def _back_from(timeframe: Timeframe, start: datetime, span: timedelta, earliest: datetime) -> datetime:
    if span >= start - earliest:  # also keeps the subtraction clear of datetime.min
        return earliest
    lo = start - span
    return max(earliest, _week_floor(lo)) if timeframe == Timeframe.WEEK else lo


def _week_floor(t: datetime) -> datetime:
    """Monday 00:00 UTC of the week holding ``t``: weekly requests start on whole weeks."""
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def _week_ceil(t: datetime) -> datetime:
    """The first Monday 00:00 UTC at or after ``t``."""
    floor = _week_floor(t)
    return floor if floor == t else floor + timedelta(weeks=1)


# -- frames -----------------------------------------------------------------------------
def _as_timeframe(raw: pd.DataFrame, timeframe: Timeframe) -> pd.DataFrame:
    return aggregate_weekly(raw) if timeframe == Timeframe.WEEK else raw


def _count_before(frame: pd.DataFrame, start: datetime) -> int:
    return int(frame.index.searchsorted(pd.Timestamp(start), side="left"))


def _count_in(frame: pd.DataFrame, start: datetime, end: datetime) -> int:
    return int(frame.index.searchsorted(pd.Timestamp(end), side="left")) - _count_before(frame, start)


def _slice(frame: pd.DataFrame, start: datetime, end: datetime, warmup: int) -> pd.DataFrame:
    """The local store's slice: up to ``warmup`` bars before ``start``, then ``[start, end)``."""
    lo = _count_before(frame, start)
    hi = int(frame.index.searchsorted(pd.Timestamp(end), side="left"))
    if hi <= lo:
        return frame.iloc[0:0]
    return frame.iloc[max(0, lo - warmup):hi]


# -- parsing responses ------------------------------------------------------------------
def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        snippet = response.text[:120] if response.content else "an empty body"
        log.warning("market data: malformed JSON for %s (%s): %r", what, exc, snippet)
        raise DependencyFailed(
            DEPENDENCY, f"the service sent malformed JSON for {what}", upstream_status=response.status_code
        ) from None


def _parse_bars(payload: Any, what: str) -> pd.DataFrame:
    """JSON records -> canonical frame, through the same data-quality gate as an upload."""
    if not isinstance(payload, list) or not all(isinstance(row, dict) for row in payload):
        raise DependencyFailed(DEPENDENCY, f"the service sent {what} that are not a JSON array of objects")
    if not payload:
        return empty_frame()
    try:
        frame, report = parse_bars_upload(pd.DataFrame.from_records(payload))
    except InvalidInput as exc:
        raise DependencyFailed(DEPENDENCY, f"the service sent unusable {what}: {exc.message}") from None
    if not report.ok:
        raise DependencyFailed(
            DEPENDENCY,
            f"the service sent {what} that fail the data-quality gate: {_describe(report)}",
            n_bad_rows=report.n_bad_rows,
        )
    return frame


def _describe(report: BarsQualityReport, limit: int = 5) -> str:
    shown = "; ".join(f"row {b.row} ({b.timestamp}): {', '.join(b.problems)}" for b in report.bad_rows[:limit])
    more = report.n_bad_rows - min(limit, len(report.bad_rows))
    return f"{report.n_bad_rows} bad bar(s): {shown}" + (f"; and {more} more" if more > 0 else "")


class _SeriesRow(BaseModel):
    symbol: str
    timeframe: str
    first_bar: datetime
    last_bar: datetime
    n_bars: int | None = None


_SERIES_ROWS = TypeAdapter(list[_SeriesRow])


def _parse_series(payload: Any) -> list[SeriesInfo]:
    try:
        rows = _SERIES_ROWS.validate_python(payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise DependencyFailed(DEPENDENCY, f"the service sent a malformed symbol list: {problems}") from None
    return [SeriesInfo(r.symbol, r.timeframe, to_utc(r.first_bar), to_utc(r.last_bar), r.n_bars) for r in rows]


def _service_message(response: httpx.Response, limit: int = 300) -> str:
    """The service's own words: ``detail``/``message``/``error`` of a JSON body, else its text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("detail", "message", "error"):
            if body.get(key):
                text = body[key] if isinstance(body[key], str) else str(body[key])
                return text[:limit]
    text = response.text.strip()
    return text[:limit] if text else response.reason_phrase or "no message"


# -- small helpers ----------------------------------------------------------------------
def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _retry_after_text(value: str) -> str:
    """Retry-After is either seconds or an HTTP date."""
    return f"{value} s" if value.strip().isdigit() else value


def _exc_text(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _checked_base_url(base_url: str) -> str:
    """Fail at start-up, not on the first request, when the URL cannot be an HTTP service."""
    url = base_url.strip().rstrip("/")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"{URL_SETTING} is not a valid URL ({exc}): {base_url!r}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{URL_SETTING} must be an http:// or https:// URL, got {base_url!r}")
    return url
