"""News articles as plugins and scorers see them: arrays sorted by publication time.

The text that is scored is the headline, followed by the body when there is one
(:func:`article_text`); its SHA-256 (:func:`text_hash`) keys the sentiment-score cache, so
the same story under two symbols, or ingested twice, is scored once per scorer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

SCORE_COLUMNS = ("positive", "negative", "net", "uncertainty")


def article_text(headline: str, body: str | None) -> str:
    return headline if not body else f"{headline}\n\n{body}"


def text_hash(headline: str, body: str | None) -> str:
    return hashlib.sha256(article_text(headline, body).encode("utf-8")).hexdigest()


def headline_hash(headline: str) -> str:
    return hashlib.sha256(headline.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ParsedArticle:
    """One uploaded article that passed the gate, as the store takes it."""

    published: int  # UTC ns
    headline: str  # stripped
    body: str | None  # None when empty
    source: str | None
    url: str | None


@dataclass(frozen=True)
class NewsArticles:
    """Articles of one symbol, sorted by ``published`` (int64 UTC ns), ties by headline.

    ``scores`` is filled by the engine for plugins that declared a sentiment scorer: an
    ``(n, 4)`` float64 array with the columns of :data:`SCORE_COLUMNS`, row i scoring
    article i."""

    published: np.ndarray
    headline: tuple[str, ...]
    body: tuple[str | None, ...]
    text_hash: tuple[str, ...]
    scores: np.ndarray | None = field(default=None, compare=False)

    @classmethod
    def empty(cls) -> NewsArticles:
        return cls(np.empty(0, "int64"), (), (), ())

    @classmethod
    def build(cls, published: np.ndarray, headlines: list[str], bodies: list[str | None]) -> NewsArticles:
        """From unsorted articles: sorts them and computes their text hashes."""
        published = np.asarray(published, dtype="int64")
        order = sorted(range(len(headlines)), key=lambda i: (int(published[i]), headlines[i]))
        return cls(
            published=published[order] if len(order) else np.empty(0, "int64"),
            headline=tuple(headlines[i] for i in order),
            body=tuple(bodies[i] for i in order),
            text_hash=tuple(text_hash(headlines[i], bodies[i]) for i in order),
        )

    def __len__(self) -> int:
        return len(self.published)

    def texts(self) -> list[str]:
        return [article_text(h, b) for h, b in zip(self.headline, self.body, strict=True)]

    def with_scores(self, scores: np.ndarray) -> NewsArticles:
        scores = np.asarray(scores, dtype="float64")
        if scores.shape != (len(self), len(SCORE_COLUMNS)):
            raise ValueError(f"scores of shape {scores.shape} for {len(self)} articles")
        return NewsArticles(self.published, self.headline, self.body, self.text_hash, scores)

    def fingerprint(self) -> str:
        """SHA-256 over (published, text hash) in order: changes when an article is added,
        removed, moved in time or its text changes."""
        digest = hashlib.sha256(b"alphaforge.news/1\n")
        for stamp, hashed in zip(self.published.tolist(), self.text_hash, strict=True):
            digest.update(f"{stamp} {hashed}\n".encode())
        return digest.hexdigest()
