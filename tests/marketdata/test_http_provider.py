"""The HTTP market-data provider against a real HTTP service on 127.0.0.1.

The service is a small FastAPI app run by uvicorn in a background thread. It serves the
bundled real bars and can be told to misbehave (a status code, a slow answer, bad bars,
malformed JSON) for the next requests; it records every request so the tests can count
attempts. The local bar store, loaded with the same bars, is the reference for the
``get_bars`` contract (warm-up, end exclusive, weekly aggregation).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient

from alphaforge.bootstrap import start_context
from alphaforge.context import Context
from alphaforge.errors import DependencyFailed, DependencyUnavailable, InvalidInput
from alphaforge.ingestion.bars import parse_bars_upload
from alphaforge.marketdata.bars import BAR_COLUMNS, Timeframe, aggregate_weekly, fingerprint
from alphaforge.marketdata.http_provider import HttpBarProvider
from alphaforge.ingestion.bundled import sample_bars
from alphaforge.features.generation import FULL_HISTORY
from alphaforge.settings import Settings
from conftest import ACCESS, app_client

UTC = timezone.utc
API_KEY = "test-key-123"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _bars(symbol: str) -> pd.DataFrame:
    frame, report = parse_bars_upload(sample_bars(symbol))
    assert report.ok
    return frame


def _hourly_from(daily: pd.DataFrame) -> pd.DataFrame:
    """Seven flat hourly bars per trading day (14:30-20:30 UTC): a real session's shape,
    sparse enough in calendar time that the warm-up padding alone is too short."""
    hours = [pd.Timedelta(hours=14, minutes=30) + pd.Timedelta(hours=h) for h in range(7)]
    index = pd.DatetimeIndex([t + h for t in daily.index for h in hours], name="timestamp")
    close = np.repeat(daily["close"].to_numpy(), len(hours))
    volume = np.repeat(daily["volume"].to_numpy() / len(hours), len(hours))
    return pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": volume}, index=index)


GSPC = _bars("GSPC")
SERIES: dict[tuple[str, str], pd.DataFrame] = {
    ("GSPC", "1d"): GSPC,
    ("IXIC", "1d"): _bars("IXIC"),
    # Every 10th real bar: 20 warm-up bars span ~9 months, far beyond the first padding.
    ("SPARSE", "1d"): GSPC.iloc[::10],
    # Whole weeks of real bars with two-week holes (a halted stock): a warm-up request can
    # begin mid-week and still reach bars of that week that the warm-up keeps.
    ("GAPPY", "1d"): GSPC[GSPC.index.isocalendar().week.to_numpy() % 3 == 0],
    ("HOURLY", "1h"): _hourly_from(GSPC.loc["2009-01-01":"2010-12-31"]),
}


# -- the fake market-data service ----------------------------------------------------------
@dataclass
class Answer:
    """How the service answers one request instead of serving it normally."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # JSON body; None: {"detail": ...}
    raw: bytes | None = None  # a raw body, sent as application/json
    delay_s: float = 0.0  # sleep first, then answer (status 200 -> serve normally)
    corrupt: bool = False  # serve the bars with one bar's low above its high
    whole_series: bool = False  # ignore start/end and serve every bar


@dataclass
class Seen:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


class FakeService:
    def __init__(self) -> None:
        self.url = ""  # set once the server has its port
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.api_key: str | None = None
            self.script: list[Answer] = []  # answers for the next requests, in order
            self.always: Answer | None = None  # answer for every request once the script ran out
            self.seen: list[Seen] = []

    def next_answer(self, request: Request) -> Answer | None:
        with self.lock:
            self.seen.append(Seen(request.url.path, dict(request.query_params), dict(request.headers)))
            return self.script.pop(0) if self.script else self.always

    def bar_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/api/v1/ohlcv"]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    stamps = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in frame.index]
    columns = {c: frame[c].tolist() for c in BAR_COLUMNS}
    return [{"timestamp": s, **{c: columns[c][i] for c in BAR_COLUMNS}} for i, s in enumerate(stamps)]


def service_app(service: FakeService) -> FastAPI:
    app = FastAPI()

    async def scripted(request: Request) -> tuple[Answer | None, Response | None]:
        answer = service.next_answer(request)
        if answer is not None and answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        if answer is not None and answer.raw is not None:
            return answer, Response(answer.raw, status_code=answer.status, media_type="application/json")
        if answer is not None and answer.status != 200:
            body = answer.body if answer.body is not None else {"detail": f"scripted {answer.status}"}
            return answer, JSONResponse(body, status_code=answer.status, headers=answer.headers)
        if service.api_key is not None and request.headers.get("x-api-key") != service.api_key:
            return answer, JSONResponse({"detail": "invalid or missing API key"}, status_code=401)
        return answer, None

    @app.get("/api/v1/ohlcv")
    async def ohlcv(request: Request, symbol: str, timeframe: str, start: str, end: str) -> Response:
        answer, early = await scripted(request)
        if early is not None:
            return early
        if not any(s == symbol for s, _ in SERIES):
            return JSONResponse({"detail": f"unknown symbol {symbol}"}, status_code=404)
        frame = SERIES.get((symbol, timeframe))
        if frame is None:
            return JSONResponse({"detail": f"{symbol} has no {timeframe} bars"}, status_code=422)
        try:
            lo, hi = pd.Timestamp(datetime.fromisoformat(start)), pd.Timestamp(datetime.fromisoformat(end))
        except ValueError:
            return JSONResponse({"detail": "start and end must be ISO 8601"}, status_code=422)
        if answer is None or not answer.whole_series:
            frame = frame[(frame.index >= lo) & (frame.index < hi)]
        records = _records(frame)
        if answer is not None and answer.corrupt and records:
            records[len(records) // 2]["low"] = records[len(records) // 2]["high"] + 1.0
        return JSONResponse(records)

    @app.get("/api/v1/symbols")
    async def symbols(request: Request) -> Response:
        _, early = await scripted(request)
        if early is not None:
            return early
        return JSONResponse(
            [
                {
                    "symbol": s,
                    "timeframe": tf,
                    "first_bar": f.index[0].isoformat(),
                    "last_bar": f.index[-1].isoformat(),
                    "n_bars": len(f),
                }
                for (s, tf), f in SERIES.items()
            ]
        )

    return app


@pytest.fixture(scope="module")
def service() -> Iterator[FakeService]:
    fake = FakeService()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        service_app(fake), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the fake market-data service did not start"
        time.sleep(0.01)
    yield fake
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(autouse=True)
def _fresh_service(request: pytest.FixtureRequest) -> None:
    if "service" in request.fixturenames:
        request.getfixturevalue("service").reset()


@pytest.fixture
def provider(service: FakeService) -> Iterator[HttpBarProvider]:
    bars = HttpBarProvider(service.url, timeout_s=5.0)
    bars.retry_delay_s = 0.01
    yield bars
    bars.close()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    """The embedded bar store holding the same bars: the reference implementation."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("local"), database_url=None, object_store_url=None,
        market_data_url=None, load_sample_data=False,
    )
    ctx = start_context(settings)
    for (symbol, timeframe), frame in SERIES.items():
        ctx.bar_store.append(symbol, Timeframe(timeframe), frame)
    yield ctx
    ctx.close()


def assert_same_bars(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected, check_freq=False)
    assert fingerprint(got) == fingerprint(expected)


# -- bars: parity with the local store ---------------------------------------------------
def test_daily_bars_round_trip_equal_the_local_slice(provider: HttpBarProvider, local: Context, service: FakeService) -> None:
    start, end = utc(2010, 1, 1), utc(2012, 1, 1)
    got = provider.get_bars("GSPC", Timeframe.DAY, start, end)
    expected = local.bar_store.get_bars("GSPC", Timeframe.DAY, start, end)
    assert len(got) == 504 and got.index[0] == pd.Timestamp("2010-01-04", tz="UTC")
    assert got.index[-1] < pd.Timestamp(end)
    assert list(got.columns) == list(BAR_COLUMNS) and all(got.dtypes == "float64")
    assert str(got.index.dtype) == "datetime64[ns, UTC]" and got.index.name == "timestamp"
    assert_same_bars(got, expected)
    seen = service.bar_requests()
    assert len(seen) == 1
    assert seen[0].params == {"symbol": "GSPC", "timeframe": "1d", "start": "2009-12-18T00:00:00Z", "end": "2012-01-01T00:00:00Z"}
    assert seen[0].headers["accept"] == "application/json" and "x-api-key" not in seen[0].headers


def test_warmup_gives_exactly_that_many_earlier_bars(provider: HttpBarProvider, service: FakeService) -> None:
    start, end = utc(2010, 1, 1), utc(2011, 1, 1)
    got = provider.get_bars("GSPC", Timeframe.DAY, start, end, warmup=20)
    before = got[got.index < pd.Timestamp(start)]
    assert_same_bars(before, GSPC[GSPC.index < pd.Timestamp(start)].iloc[-20:])
    assert_same_bars(got[got.index >= pd.Timestamp(start)], GSPC.loc["2010-01-01":"2010-12-31"])
    assert len(service.bar_requests()) == 1  # the calendar padding was enough: no second request


def test_full_history_warmup_gives_every_earlier_bar(provider: HttpBarProvider, service: FakeService) -> None:
    start, end = utc(2010, 1, 1), utc(2011, 1, 1)
    got = provider.get_bars("GSPC", Timeframe.DAY, start, end, warmup=FULL_HISTORY)
    assert_same_bars(got, GSPC[GSPC.index < pd.Timestamp(end)])
    assert (got.index < pd.Timestamp(start)).sum() == 2767  # 1999-01-04 .. 2009-12-31
    [seen] = service.bar_requests()
    assert seen.params["start"] == "1970-01-01T00:00:00Z"


def test_sparse_history_is_fetched_further_back_until_the_warmup_is_there(
    provider: HttpBarProvider, local: Context, service: FakeService
) -> None:
    start, end = utc(2010, 1, 1), utc(2011, 1, 1)
    got = provider.get_bars("SPARSE", Timeframe.DAY, start, end, warmup=20)
    assert (got.index < pd.Timestamp(start)).sum() == 20
    assert_same_bars(got, local.bar_store.get_bars("SPARSE", Timeframe.DAY, start, end, warmup=20))
    seen = service.bar_requests()
    assert len(seen) >= 2
    for later, earlier in zip(seen, seen[1:]):  # each request ends where the previous began
        assert earlier.params["end"] == later.params["start"]


def test_a_service_that_ignores_the_range_still_gives_the_contracted_bars(
    provider: HttpBarProvider, local: Context, service: FakeService
) -> None:
    service.always = Answer(whole_series=True)
    start, end = utc(2010, 1, 1), utc(2011, 1, 1)
    got = provider.get_bars("SPARSE", Timeframe.DAY, start, end, warmup=20)
    assert len(service.bar_requests()) >= 2  # overlapping answers must not duplicate bars
    assert_same_bars(got, local.bar_store.get_bars("SPARSE", Timeframe.DAY, start, end, warmup=20))


def test_hourly_warmup_spanning_months_matches_the_local_store(provider: HttpBarProvider, local: Context) -> None:
    start, end = utc(2010, 6, 1), utc(2010, 7, 1)
    got = provider.get_bars("HOURLY", Timeframe.HOUR, start, end, warmup=1000)
    assert (got.index < pd.Timestamp(start)).sum() == 1000
    assert_same_bars(got, local.bar_store.get_bars("HOURLY", Timeframe.HOUR, start, end, warmup=1000))


@pytest.mark.parametrize("warmup", [0, 10, FULL_HISTORY])
def test_weekly_bars_equal_aggregate_weekly_of_the_daily_bars(
    provider: HttpBarProvider, local: Context, service: FakeService, warmup: int
) -> None:
    start, end = utc(2010, 1, 6), utc(2011, 6, 15)  # both Wednesdays: weeks cut at both ends
    got = provider.get_bars("GSPC", Timeframe.WEEK, start, end, warmup=warmup)
    weekly = aggregate_weekly(GSPC)
    lo = int(weekly.index.searchsorted(pd.Timestamp(start)))
    hi = int(weekly.index.searchsorted(pd.Timestamp(end)))
    assert_same_bars(got, weekly.iloc[max(0, lo - warmup):hi])
    assert_same_bars(got, local.bar_store.get_bars("GSPC", Timeframe.WEEK, start, end, warmup=warmup))
    # The first full week is whole (open of its Monday), the week holding ``end`` is left out.
    assert got.loc["2010-01-08", "open"].item() == GSPC.loc["2010-01-04", "open"].item()
    assert got.index[-1] == pd.Timestamp("2011-06-10", tz="UTC")
    assert all(s.params["timeframe"] == "1d" for s in service.bar_requests())


@pytest.mark.parametrize(("start", "warmup"), [(utc(2010, 1, 13), 1), (utc(2010, 1, 6), 2), (utc(2010, 1, 6), 7)])
def test_weekly_warmup_requests_start_on_whole_weeks(
    provider: HttpBarProvider, local: Context, start: datetime, warmup: int
) -> None:
    end = utc(2011, 1, 1)
    got = provider.get_bars("GAPPY", Timeframe.WEEK, start, end, warmup=warmup)
    assert (got.index < pd.Timestamp(start)).sum() == warmup
    assert_same_bars(got, local.bar_store.get_bars("GAPPY", Timeframe.WEEK, start, end, warmup=warmup))


@pytest.mark.parametrize(
    ("start", "end", "warmup"),
    [
        (utc(1995, 1, 1), utc(1999, 2, 1), 50),  # asks more warm-up than there is history
        (utc(2030, 1, 1), utc(2031, 1, 1), 5),  # nothing in range
        (utc(2018, 12, 24), utc(2018, 12, 31), 3),  # end exclusive at the last bar
    ],
)
def test_edges_match_the_local_store(provider: HttpBarProvider, local: Context, start: datetime, end: datetime, warmup: int) -> None:
    got = provider.get_bars("GSPC", Timeframe.DAY, start, end, warmup=warmup)
    assert_same_bars(got, local.bar_store.get_bars("GSPC", Timeframe.DAY, start, end, warmup=warmup))


def test_nothing_in_range_asks_for_no_warmup(provider: HttpBarProvider, service: FakeService) -> None:
    got = provider.get_bars("GSPC", Timeframe.DAY, utc(2030, 1, 1), utc(2031, 1, 1), warmup=5)
    assert got.empty
    assert len(service.bar_requests()) == 1


def test_unknown_symbol_is_an_empty_frame(provider: HttpBarProvider, service: FakeService) -> None:
    got = provider.get_bars("NOPE", Timeframe.DAY, utc(2010, 1, 1), utc(2011, 1, 1), warmup=FULL_HISTORY)
    assert got.empty and list(got.columns) == list(BAR_COLUMNS)
    assert str(got.index.dtype) == "datetime64[ns, UTC]"
    assert len(service.bar_requests()) == 1  # a 404 is an answer, not retried


def test_service_422_is_invalid_input_with_its_message(provider: HttpBarProvider, service: FakeService) -> None:
    with pytest.raises(InvalidInput, match="GSPC has no 1h bars") as caught:
        provider.get_bars("GSPC", Timeframe.HOUR, utc(2010, 1, 1), utc(2011, 1, 1))
    assert caught.value.status_code == 422
    service.script = [Answer(400, body={"message": "start is after the end of time"})]
    with pytest.raises(InvalidInput, match="start is after the end of time"):
        provider.get_bars("GSPC", Timeframe.DAY, utc(2010, 1, 1), utc(2011, 1, 1))
    assert len(service.bar_requests()) == 2  # neither was retried


# -- credentials ---------------------------------------------------------------------------
def test_api_key_header_is_sent_and_accepted(service: FakeService) -> None:
    service.api_key = API_KEY
    with_key = HttpBarProvider(service.url, api_key=API_KEY)
    try:
        got = with_key.get_bars("GSPC", Timeframe.DAY, utc(2010, 1, 1), utc(2010, 2, 1))
        assert len(got) == 19
        assert [s.symbol for s in with_key.list_series()][:1] == ["GAPPY"]
    finally:
        with_key.close()
    assert len(service.seen) == 2
    assert all(s.headers["x-api-key"] == API_KEY and s.headers["accept"] == "application/json" for s in service.seen)


@pytest.mark.parametrize("key", ["wrong-key", None])
def test_rejected_credentials_are_502_naming_the_setting(service: FakeService, key: str | None) -> None:
    service.api_key = API_KEY
    bad = HttpBarProvider(service.url, api_key=key)
    try:
        with pytest.raises(DependencyFailed) as caught:
            bad.get_bars("GSPC", Timeframe.DAY, utc(2010, 1, 1), utc(2011, 1, 1))
        with pytest.raises(DependencyFailed, match="ALPHAFORGE_MARKET_DATA_API_KEY"):
            bad.list_series()
    finally:
        bad.close()
    assert caught.value.status_code == 502
    assert "ALPHAFORGE_MARKET_DATA_API_KEY" in caught.value.message and "401" in caught.value.message
    assert caught.value.message.startswith("market data failed")
    assert len(service.seen) == 2  # not retried


# -- transient failures and retries ----------------------------------------------------------
def test_429_is_503_with_retry_after(provider: HttpBarProvider, service: FakeService) -> None:
    service.script = [Answer(429, headers={"Retry-After": "30"})]
    with pytest.raises(DependencyUnavailable) as caught:
        provider.get_bars("GSPC", Timeframe.DAY, utc(2010, 1, 1), utc(2011, 1, 1))
    assert type(caught.value) is DependencyUnavailable and caught.value.status_code == 503
    assert "retry after 30 s" in caught.value.message and caught.value.context["retry_after"] == "30"
    assert len(service.seen) == 1  # rate limited: do not hammer


def test_500_once_then_ok_succeeds_after_one_retry(provider: HttpBarProvider, service: FakeService) -> None:
    service.script = [Answer(500)]
    got = provider.get_bars("GSPC", Timeframe.DAY, utc(2010, 1, 1), utc(2012, 1, 1))
    assert_same_bars(got, GSPC.loc["2010-01-01":"2011-12-31"])
    first, second = service.seen
    assert first.params == second.params


def test_500_twice_is_502(provider: HttpBarProvider, service: FakeService) -> None:
    service.script = [Answer(500), Answer(500), Answer(200)]
    with pytest.raises(DependencyFailed) as caught:
        provider.get_bars("GSPC", Timeframe.DAY, utc(2010, 1, 1), utc(2011, 1, 1))
    assert caught.value.status_code == 502 and "HTTP 500" in caught.value.message
    assert len(service.seen) == 2  # exactly one retry: the third (OK) answer was never asked for


def test_503_twice_is_503(provider: HttpBarProvider, service: FakeService) -> None:
    service.always = Answer(503, headers={"Retry-After": "5"})
    with pytest.raises(DependencyUnavailable) as caught:
        provider.list_series()
    assert type(caught.value) is DependencyUnavailable and caught.value.context["retry_after"] == "5"
    assert len(service.seen) == 2


def test_slow_answer_is_retried_once(service: FakeService) -> None:
    fast = HttpBarProvider(service.url, timeout_s=0.3)
    fast.retry_delay_s = 0.01
    try:
        service.script = [Answer(delay_s=0.8)]
        got = fast.get_bars("GSPC", Timeframe.DAY, utc(2010, 1, 1), utc(2011, 1, 1))
        assert len(got) == 252 and len(service.seen) == 2

        service.reset()
        service.always = Answer(delay_s=0.8)
        began = time.monotonic()
        with pytest.raises(DependencyUnavailable) as caught:
            fast.get_bars("GSPC", Timeframe.DAY, utc(2010, 1, 1), utc(2011, 1, 1))
        assert time.monotonic() - began < 2.0
    finally:
        fast.close()
    assert type(caught.value) is DependencyUnavailable and caught.value.status_code == 503
    assert "0.3 s" in caught.value.message and "after 2 attempts" in caught.value.message
    assert len(service.seen) == 2


@pytest.fixture
def dropping_server() -> Iterator[tuple[str, list[int]]]:
    """Accepts connections and closes them at once, counting them."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.settimeout(0.05)
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", accepted
    stop.set()
    thread.join(timeout=5)
    sock.close()


def test_dropped_connections_are_retried_once_then_503(dropping_server: tuple[str, list[int]]) -> None:
    url, accepted = dropping_server
    bars = HttpBarProvider(url, timeout_s=2.0)
    bars.retry_delay_s = 0.01
    try:
        with pytest.raises(DependencyUnavailable) as caught:
            bars.get_bars("GSPC", Timeframe.DAY, utc(2010, 1, 1), utc(2011, 1, 1))
    finally:
        bars.close()
    assert type(caught.value) is DependencyUnavailable and "after 2 attempts" in caught.value.message
    assert len(accepted) == 2


def test_connection_refused_is_503() -> None:
    with socket.socket() as closed:  # bound but never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        bars = HttpBarProvider(f"http://127.0.0.1:{closed.getsockname()[1]}", timeout_s=2.0)
        bars.retry_delay_s = 0.01
        try:
            for call in (
                lambda: bars.get_bars("GSPC", Timeframe.DAY, utc(2010, 1, 1), utc(2011, 1, 1)),
                bars.list_series,
            ):
                with pytest.raises(DependencyUnavailable) as caught:
                    call()
                assert type(caught.value) is DependencyUnavailable and caught.value.status_code == 503
                assert caught.value.message.startswith("market data unavailable: cannot reach")
        finally:
            bars.close()


# -- bad answers -------------------------------------------------------------------------------
def test_bars_failing_the_quality_gate_are_502(provider: HttpBarProvider, service: FakeService) -> None:
    service.script = [Answer(corrupt=True)]
    with pytest.raises(DependencyFailed) as caught:
        provider.get_bars("GSPC", Timeframe.DAY, utc(2010, 1, 1), utc(2011, 1, 1))
    assert caught.value.status_code == 502
    assert "data-quality gate" in caught.value.message and "low > open" in caught.value.message
    assert len(service.seen) == 1


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Answer(raw=b"[{\"timestamp\": "), "malformed JSON"),
        (Answer(raw=b"{\"bars\": []}"), "not a JSON array of objects"),
        (Answer(raw=b"[{\"timestamp\": \"2010-01-04\", \"open\": 1}]"), "missing: close"),
    ],
    ids=["truncated", "object", "columns"],
)
def test_malformed_bar_answers_are_502(provider: HttpBarProvider, service: FakeService, answer: Answer, expected: str) -> None:
    service.script = [answer]
    with pytest.raises(DependencyFailed, match=expected) as caught:
        provider.get_bars("GSPC", Timeframe.DAY, utc(2010, 1, 1), utc(2011, 1, 1))
    assert caught.value.status_code == 502


def test_malformed_symbol_list_is_502(provider: HttpBarProvider, service: FakeService) -> None:
    service.script = [Answer(raw=b"[{\"symbol\": \"GSPC\", \"timeframe\": \"1d\"}]")]
    with pytest.raises(DependencyFailed, match="malformed symbol list.*first_bar"):
        provider.list_series()


def test_list_series_reads_the_service_and_derives_weekly(provider: HttpBarProvider) -> None:
    series = {(s.symbol, s.timeframe): s for s in provider.list_series()}
    assert set(series) == {
        ("GSPC", "1d"), ("GSPC", "1w"), ("IXIC", "1d"), ("IXIC", "1w"), ("SPARSE", "1d"), ("SPARSE", "1w"),
        ("GAPPY", "1d"), ("GAPPY", "1w"), ("HOURLY", "1h"),
    }
    daily, weekly = series["GSPC", "1d"], series["GSPC", "1w"]
    assert daily.first_bar == utc(1999, 1, 4) and daily.first_bar.utcoffset() == timedelta(0)
    assert daily.last_bar == utc(2018, 12, 31) and daily.n_bars == len(GSPC) == 5031
    assert (weekly.first_bar, weekly.last_bar, weekly.n_bars) == (daily.first_bar, daily.last_bar, None)


def test_a_url_that_is_not_http_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="ALPHAFORGE_MARKET_DATA_URL"):
        HttpBarProvider("ftp://example.invalid/bars")


# -- end to end through the alphaforge API ------------------------------------------------------
@pytest.fixture(scope="module")
def api(service: FakeService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("api"), market_data_url=service.url, market_data_api_key=API_KEY, **ACCESS,
    )
    with app_client(settings) as client:
        yield client


RSI = {"name": "rsi", "type": "technical", "plugin_key": "technical.rsi", "parameters": {"period": 14}}
GSPC_2010 = {"symbol": "GSPC", "start_date": "2010-01-01", "end_date": "2011-01-01"}


def test_generate_reads_bars_from_the_service(api: TestClient, service: FakeService) -> None:
    service.api_key = API_KEY
    created = api.post("/api/v1/features", json=RSI)
    assert created.status_code == 201, created.text
    response = api.post(f"/api/v1/features/{created.json()['id']}/generate", json=GSPC_2010)
    assert response.status_code == 200, response.text
    body = response.json()
    first = body["preview"][0]
    assert first["timestamp"].startswith("2010-01-04") and first["rsi"] is not None
    assert body["dataset"]["row_count"] == 252
    seen = service.bar_requests()
    assert seen and all(s.headers["x-api-key"] == API_KEY for s in seen)
    assert seen[0].params["start"] == "1970-01-01T00:00:00Z"  # RSI is recursive: full history


def test_symbols_through_the_api_come_from_the_service(api: TestClient, service: FakeService) -> None:
    response = api.get("/api/v1/market-data/symbols")
    assert response.status_code == 200, response.text
    gspc = next(s for s in response.json()["symbols"] if s["symbol"] == "GSPC")
    assert {tf["timeframe"]: tf["n_bars"] for tf in gspc["timeframes"]} == {"1d": 5031, "1w": None}
    assert [s.path for s in service.seen] == ["/api/v1/symbols"]


def test_generate_is_503_when_the_service_is_down(api: TestClient, service: FakeService) -> None:
    created = api.post("/api/v1/features", json=RSI | {"name": "rsi-down"})
    assert created.status_code == 201, created.text
    service.always = Answer(503)
    response = api.post(f"/api/v1/features/{created.json()['id']}/generate", json=GSPC_2010)
    assert response.status_code == 503, response.text
    body = response.json()
    assert "market data" in body["detail"] and body["dependency"] == "market data"
    assert len(service.seen) == 2
