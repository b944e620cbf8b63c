"""News articles per symbol: (symbol, published_at, headline, body, source, url).

Ingestion follows the rules of the other stores (:mod:`alphaforge.marketdata.fundamentals`):
a data-quality gate (a rejected upload stores nothing and the 422 names the bad rows), then
an append-only merge per symbol. The identity of an article is (symbol, published_at,
headline):

- an article whose identity is stored already is a duplicate and is skipped, whatever its
  body, source or url (the first stored wins: a story is not rewritten after the fact);
- duplicates inside one upload collapse to the first.

``published_at`` must carry a time zone: a naive time or a bare date would silently be read
as midnight or as UTC, and a few hours decide whether a story was known before a bar's
close. A publication time more than a day in the future is a data error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy.exc import IntegrityError

from alphaforge.errors import Conflict, InvalidInput
from alphaforge.marketdata.articles import NewsArticles, headline_hash, text_hash
from alphaforge.marketdata.bars import normalize_symbol
from alphaforge.marketdata.macro import MAX_NS, MIN_NS, datetime_key, as_utc
from alphaforge.marketdata.pit_table import iso as _iso
from alphaforge.marketdata.pit_table import ns_of as _ns_of
from alphaforge.marketdata.quality import MAX_BAD_ROWS, RecordsQualityReport
from alphaforge.marketdata.records import Records, as_records
from alphaforge.marketdata.stores import KeyedLocks
from alphaforge.storage.db import Database
from alphaforge.storage.tables import NewsArticle

REQUIRED_COLUMNS = ("published_at", "headline")
OPTIONAL_COLUMNS = ("body", "source", "url")
MAX_LENGTHS = {"headline": 1000, "body": 100_000, "source": 200, "url": 2000}
FUTURE_TOLERANCE = timedelta(days=1)
ZONE_EXAMPLE = "e.g. 2018-01-02T14:30:00Z or 2018-01-02T14:30:00+01:00"

_BARE_DATE = re.compile(r"^\d{4}-?\d{2}-?\d{2}$")
_URL = re.compile(r"^https?://\S", re.IGNORECASE)


# -- the data-quality gate ----------------------------------------------------------------
@dataclass(frozen=True)
class NewsBadRow:
    row: int  # 1-based position in the upload
    published_at: str | None
    headline: str | None  # the first 60 characters
    problems: list[str]

    def label(self) -> str:
        return f"{self.published_at}, {self.headline!r}"


NewsQualityReport = RecordsQualityReport[NewsBadRow]


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


def _show(value: Any) -> str:
    """A short repr for messages: an upload's values may be arbitrarily long."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def parse_published(value: Any, latest_ns: int) -> tuple[int | None, str | None]:
    """(int64 UTC ns, None) for a zoned time no later than ``latest_ns``, else (the time
    when it could be parsed, the problem)."""
    if _is_missing(value) or (isinstance(value, str) and not value.strip()):
        return None, "published_at is missing"
    stamp: pd.Timestamp | None = None
    if isinstance(value, str):
        text = value.strip()
        if _BARE_DATE.fullmatch(text):
            return None, f"published_at {_show(value)} is a date without a time and zone; give both, {ZONE_EXAMPLE}"
        try:
            stamp = pd.Timestamp(datetime.fromisoformat(text))
        except (ValueError, OverflowError):
            try:
                stamp = pd.Timestamp(text)  # other formats, e.g. RFC 2822 of RSS feeds
            except (ValueError, OverflowError, TypeError):
                stamp = None
    elif isinstance(value, datetime):  # pd.Timestamp included
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, OverflowError):
            stamp = None
    elif isinstance(value, date):
        given = value.isoformat()
        return None, f"published_at {given!r} is a date without a time and zone; give both, {ZONE_EXAMPLE}"
    if stamp is None or pd.isna(stamp):
        return None, f"published_at {_show(value)} is not a date/time ({ZONE_EXAMPLE})"
    if stamp.tzinfo is None:
        return None, f"published_at {_show(value)} has no time zone; add one, {ZONE_EXAMPLE}"
    try:
        ns = int(stamp.tz_convert("UTC").as_unit("ns").value)
    except (ValueError, OverflowError):
        ns = MIN_NS - 1  # out of the nanosecond range
    if not MIN_NS <= ns <= MAX_NS:
        return None, f"published_at {_show(value)} is out of range (1678-2261)"
    if ns % 1000:
        return None, f"published_at {_show(value)} is finer than a microsecond"
    if ns > latest_ns:
        return ns, f"published_at {_iso(ns)} is more than 1 day in the future (future-dated news is a data error)"
    return ns, None


def _parse_text(name: str, value: Any, problems: list[str]) -> str | None:
    """Stripped text, None when missing/empty; records problems (too long, not text, NUL)."""
    if _is_missing(value):
        return None
    if not isinstance(value, str):
        problems.append(f"{name} {_show(value)} is not text")
        return None
    text = value.strip()
    if not text:
        return None
    if len(text) > MAX_LENGTHS[name]:
        problems.append(f"{name} is longer than {MAX_LENGTHS[name]} characters ({len(text)})")
    if "\x00" in text:
        problems.append(f"{name} contains a NUL character")  # PostgreSQL text cannot hold one
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        problems.append(f"{name} is not valid Unicode text (lone surrogate)")
    return text


@dataclass(frozen=True)
class ParsedArticle:
    published: int  # UTC ns
    headline: str  # stripped
    body: str | None  # None when empty
    source: str | None
    url: str | None


def _check_article(raw: dict[str, Any], latest_ns: int) -> tuple[ParsedArticle, list[str], int | None, str | None]:
    """One uploaded row: the article, its problems, and its time and headline as parsed."""
    problems: list[str] = []
    ns, problem = parse_published(raw["published_at"], latest_ns)
    if problem:
        problems.append(problem)
    headline = _parse_text("headline", raw["headline"], problems)
    if headline is None and not any(p.startswith("headline") for p in problems):
        problems.append("headline is missing or empty")
    texts = {name: _parse_text(name, raw[name], problems) for name in OPTIONAL_COLUMNS}
    if texts["url"] is not None and not _URL.match(texts["url"]):
        problems.append(f"url {_show(texts['url'])} does not start with http:// or https://")
    article = ParsedArticle(ns or 0, headline or "", texts["body"], texts["source"], texts["url"])
    return article, problems, ns, headline


def parse_news_upload(records: pd.DataFrame | Records) -> tuple[list[ParsedArticle], NewsQualityReport]:
    """Parse raw uploaded rows (any case of column names) and run the quality gate.

    Returns the articles in upload order and the report; the articles are only meaningful
    when the report is ok (after the first bad row they are no longer collected). Rows are
    numbered from 1; the rows are read chunk by chunk. (Plain objects, not a frame: pandas
    would turn the None of an empty body into NaN.)"""
    records = as_records(records)
    columns = {str(c).strip().lower(): c for c in records.columns}
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InvalidInput(
            "news articles need the columns published_at, headline (optional: body, source, url); "
            f"missing: {', '.join(missing)}"
        )
    names = [name for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if name in columns]
    latest_ns = pd.Timestamp(datetime.now(timezone.utc) + FUTURE_TOLERANCE).value
    articles: list[ParsedArticle] = []
    bad_rows: list[NewsBadRow] = []
    n_bad = n = 0
    for chunk in records.chunks([columns[name] for name in names]):
        values = {name: chunk.iloc[:, k].tolist() for k, name in enumerate(names)}
        for i in range(len(chunk)):
            raw = {name: values[name][i] if name in values else None for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
            article, problems, ns, headline = _check_article(raw, latest_ns)
            n += 1
            if not problems:
                if not n_bad:
                    articles.append(article)
                continue
            n_bad += 1
            articles.clear()  # the upload is rejected: keep no article
            if len(bad_rows) < MAX_BAD_ROWS:
                bad_rows.append(NewsBadRow(row=n, published_at=None if ns is None else _iso(ns),
                                           headline=None if headline is None else headline[:60], problems=problems))
    if n == 0:
        raise InvalidInput("the upload holds no articles")
    return articles, NewsQualityReport(bad_rows, n_bad, "news article(s)")


# -- the store ------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewsIngestReport:
    symbol: str
    received: int
    inserted: int
    duplicates: int  # already stored, or repeated in the upload
    n_articles: int
    fingerprint: str  # NewsArticles.fingerprint() of all the symbol's articles


def _to_datetime(ns: int) -> datetime:
    return pd.Timestamp(int(ns), tz="UTC").to_pydatetime()


class NewsStore:
    """News articles in the ``news_articles`` table (append-only, deduplicated)."""

    _CACHE_SIZE = 256

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = KeyedLocks()
        # (symbol, start key | None, end key | None) -> ((count, max id), NewsArticles);
        # exact for an append-only table.
        self._cache: dict[tuple[str, int | None, int | None], tuple[tuple[int, int], NewsArticles]] = {}

    # -- writing ----------------------------------------------------------------------
    def ingest(self, symbol: str, records: pd.DataFrame) -> NewsIngestReport:
        """Gate then append ``records`` (columns published_at, headline, body?, source?, url?)."""
        symbol = normalize_symbol(str(symbol))
        parsed, report = parse_news_upload(records)
        if not report.ok:
            raise report.error(symbol)
        with self._lock(symbol):
            for attempt in range(3):
                try:
                    inserted = self._append(symbol, parsed)
                    break
                except IntegrityError:
                    # Another process stored some of these articles meanwhile: merge again.
                    if attempt == 2:
                        raise Conflict(f"concurrent ingestion of news for {symbol}; retry the upload") from None
        articles = self.get_articles(symbol)
        return NewsIngestReport(
            symbol=symbol,
            received=len(parsed),
            inserted=inserted,
            duplicates=len(parsed) - inserted,
            n_articles=len(articles),
            fingerprint=articles.fingerprint(),
        )

    def _append(self, symbol: str, parsed: list[ParsedArticle]) -> int:
        a = NewsArticle
        published = [p.published for p in parsed]
        with self.db.session() as session:
            rows = session.execute(
                select(a.published_at, a.headline_hash).where(
                    a.symbol == symbol,
                    a.published_at >= _to_datetime(min(published)),
                    a.published_at <= _to_datetime(max(published)),
                )
            ).all()
            seen = set(zip(_ns_of([r[0] for r in rows]).tolist(), (r[1] for r in rows), strict=True))
            new_rows: list[dict[str, Any]] = []
            now = datetime.now(timezone.utc)
            for article in parsed:
                key = (article.published, headline_hash(article.headline))
                if key in seen:
                    continue  # stored already, or earlier in this upload: the first wins
                seen.add(key)
                new_rows.append(
                    {
                        "symbol": symbol,
                        "published_at": _to_datetime(article.published),
                        "headline": article.headline,
                        "headline_hash": key[1],
                        "body": article.body,
                        "source": article.source,
                        "url": article.url,
                        "text_hash": text_hash(article.headline, article.body),
                        "ingested_at": now,
                    }
                )
            if new_rows:
                session.connection().execute(insert(NewsArticle.__table__), new_rows)  # one executemany
        return len(new_rows)

    # -- reading ----------------------------------------------------------------------
    def _state(self, symbol: str) -> tuple[int, int]:
        a = NewsArticle
        with self.db.session() as session:
            count, max_id = session.execute(select(func.count(a.id), func.max(a.id)).where(a.symbol == symbol)).one()
        return int(count or 0), int(max_id or 0)

    def has_articles(self, symbol: str) -> bool:
        return self._state(normalize_symbol(str(symbol)))[0] > 0

    @staticmethod
    def _range(symbol: str, start: datetime | None, end: datetime | None) -> list[ColumnElement[bool]]:
        a = NewsArticle
        where = [a.symbol == symbol]
        if start is not None:
            where.append(a.published_at >= as_utc(start))
        if end is not None:
            where.append(a.published_at < as_utc(end))
        return where

    def get_articles(self, symbol: str, start: datetime | None = None, end: datetime | None = None) -> NewsArticles:
        """Articles with start <= published_at < end (bounds optional, naive = UTC), sorted
        by publication time then headline; empty when there are none."""
        symbol = normalize_symbol(str(symbol))
        key = (
            symbol,
            None if start is None else datetime_key(as_utc(start)),
            None if end is None else datetime_key(as_utc(end)),
        )
        state = self._state(symbol)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == state:
            return cached[1]
        if state[0] == 0:
            articles = NewsArticles.empty()
        else:
            a = NewsArticle
            with self.db.session() as session:
                rows = session.execute(
                    select(a.published_at, a.headline, a.body).where(*self._range(symbol, start, end))
                ).all()
            articles = NewsArticles.build(_ns_of([r[0] for r in rows]), [r[1] for r in rows], [r[2] for r in rows])
        if len(self._cache) >= self._CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = (state, articles)
        return articles

    def list_articles(
        self, symbol: str, start: datetime | None = None, end: datetime | None = None, limit: int = 1000
    ) -> tuple[int, list[dict[str, Any]]]:
        """(number of articles in the range, the first ``limit`` of them as dicts), ordered by
        published_at then headline (code-point order on every backend, as NewsArticles)."""
        symbol = normalize_symbol(str(symbol))
        a = NewsArticle
        where = self._range(symbol, start, end)
        headline_order = a.headline.collate("C") if self.db.engine.dialect.name == "postgresql" else a.headline
        with self.db.session() as session:
            total = session.execute(select(func.count(a.id)).where(*where)).scalar_one()
            rows = session.execute(
                select(a.published_at, a.headline, a.body, a.source, a.url, a.text_hash)
                .where(*where)
                .order_by(a.published_at, headline_order)
                .limit(max(0, int(limit)))
            ).all()
        return int(total), [
            {"published_at": as_utc(r[0]), "headline": r[1], "body": r[2], "source": r[3], "url": r[4],
             "text_hash": r[5]}
            for r in rows
        ]

    def symbols(self) -> list[tuple[str, int, datetime, datetime]]:
        """(symbol, number of articles, first and last published_at) of every symbol with news."""
        a = NewsArticle
        with self.db.session() as session:
            rows = session.execute(
                select(a.symbol, func.count(a.id), func.min(a.published_at), func.max(a.published_at))
                .group_by(a.symbol)
                .order_by(a.symbol)
            ).all()
        return [(r[0], int(r[1]), as_utc(r[2]), as_utc(r[3])) for r in rows]

"""The one NewsStore of a Context's (or a Database's) database, per process."""
