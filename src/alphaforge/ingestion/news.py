"""The news upload gate: articles (published_at, headline, body?, source?, url?) of one
symbol, parsed and checked before :class:`alphaforge.marketdata.news.NewsStore` stores them.

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

from alphaforge.ingestion.gate import MAX_BAD_ROWS, RecordsQualityReport, require_rows, resolve_columns
from alphaforge.ingestion.records import Records, as_records
from alphaforge.marketdata.articles import ParsedArticle
from alphaforge.marketdata.pit_table import iso
from alphaforge.marketdata.times import MAX_NS, MIN_NS

REQUIRED_COLUMNS = ("published_at", "headline")
OPTIONAL_COLUMNS = ("body", "source", "url")
MAX_LENGTHS = {"headline": 1000, "body": 100_000, "source": 200, "url": 2000}
FUTURE_TOLERANCE = timedelta(days=1)
ZONE_EXAMPLE = "e.g. 2018-01-02T14:30:00Z or 2018-01-02T14:30:00+01:00"

_BARE_DATE = re.compile(r"^\d{4}-?\d{2}-?\d{2}$")
_URL = re.compile(r"^https?://\S", re.IGNORECASE)


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
        return ns, f"published_at {iso(ns)} is more than 1 day in the future (future-dated news is a data error)"
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
    columns = resolve_columns(records, "news articles", REQUIRED_COLUMNS, OPTIONAL_COLUMNS)
    names = list(columns)
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
                bad_rows.append(NewsBadRow(row=n, published_at=None if ns is None else iso(ns),
                                           headline=None if headline is None else headline[:60], problems=problems))
    require_rows(n, "articles")
    return articles, NewsQualityReport(bad_rows, n_bad, "news article(s)")
