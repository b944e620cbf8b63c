"""Request and response shapes of the news endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class NewsUpload(BaseModel):
    """JSON upload: articles with published_at (with a time zone), headline and optional
    body, source, url. Each is checked by the data-quality gate, which names the bad ones."""

    articles: list[dict[str, Any]] = Field(
        min_length=1,
        examples=[[{"published_at": "2018-01-02T14:30:00Z", "headline": "Stocks open the year higher",
                    "body": "US equities rose in early trading...", "source": "Newswire",
                    "url": "https://example.com/news/1"}]],
    )


class NewsIngestResponse(BaseModel):
    symbol: str
    received: int = Field(description="Articles in the upload")
    inserted: int = Field(description="New articles stored")
    duplicates: int = Field(
        description="Articles skipped: (published_at, headline) already stored, or repeated in the upload"
    )
    n_articles: int = Field(description="Articles of the symbol after the upload")
    fingerprint: str = Field(description="SHA-256 of all the symbol's articles (NewsArticles.fingerprint)")


class NewsRecord(BaseModel):
    published_at: datetime = Field(description="Publication time, UTC")
    headline: str
    body: str | None
    source: str | None
    url: str | None
    text_hash: str = Field(description="SHA-256 of the scored text (headline, then body)")


class NewsResponse(BaseModel):
    symbol: str
    start: datetime | None
    end: datetime | None
    n_articles: int = Field(description="Articles in [start, end), all of them even beyond the limit")
    articles: list[NewsRecord] = Field(description="The first `limit` articles by published_at, headline")
