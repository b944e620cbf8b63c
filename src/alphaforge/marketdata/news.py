"""News articles per symbol: (symbol, published_at, headline, body, source, url).

Ingestion follows the rules of the other stores (:mod:`alphaforge.marketdata.fundamentals`):
a data-quality gate (:mod:`alphaforge.ingestion.news`; a rejected upload stores nothing and
the 422 names the bad rows), then an append-only merge per symbol. The identity of an article is (symbol, published_at,
headline):

- an article whose identity is stored already is a duplicate and is skipped, whatever its
  body, source or url (the first stored wins: a story is not rewritten after the fact);
- duplicates inside one upload collapse to the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy.exc import IntegrityError

from alphaforge.errors import Conflict
from alphaforge.marketdata.articles import NewsArticles, ParsedArticle, headline_hash, text_hash
from alphaforge.marketdata.bars import normalize_symbol
from alphaforge.marketdata.pit_table import ns_of
from alphaforge.marketdata.stores import KeyedLocks
from alphaforge.marketdata.times import datetime_key, to_utc
from alphaforge.storage.db import Database
from alphaforge.storage.tables import NewsArticle

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
    def append(self, symbol: str, parsed: list[ParsedArticle]) -> NewsIngestReport:
        """Store the articles that passed the upload gate (``alphaforge.ingestion.news``)
        and are not stored yet; the first stored of an identity wins."""
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
            seen = set(zip(ns_of([r[0] for r in rows]).tolist(), (r[1] for r in rows), strict=True))
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
            where.append(a.published_at >= to_utc(start))
        if end is not None:
            where.append(a.published_at < to_utc(end))
        return where

    def get_articles(self, symbol: str, start: datetime | None = None, end: datetime | None = None) -> NewsArticles:
        """Articles with start <= published_at < end (bounds optional, naive = UTC), sorted
        by publication time then headline; empty when there are none."""
        symbol = normalize_symbol(str(symbol))
        key = (
            symbol,
            None if start is None else datetime_key(to_utc(start)),
            None if end is None else datetime_key(to_utc(end)),
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
            articles = NewsArticles.build(ns_of([r[0] for r in rows]), [r[1] for r in rows], [r[2] for r in rows])
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
            {"published_at": to_utc(r[0]), "headline": r[1], "body": r[2], "source": r[3], "url": r[4],
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
        return [(r[0], int(r[1]), to_utc(r[2]), to_utc(r[3])) for r in rows]
