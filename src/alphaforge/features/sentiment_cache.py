"""Sentiment scores of articles, through the ``news_scores`` cache.

A row per (scorer identity, text hash): a text is scored once per scorer version whatever
the symbols, ingestions and processes that ask for it. Misses are scored and written in
chunks, so an interrupted run keeps what it scored. Two processes may score the same new
text at once; the second insert then fails on the primary key, which is not an error: the
stored row is read back and returned, so every caller sees the one stored value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from alphaforge.context import Context
from alphaforge.marketdata.articles import SCORE_COLUMNS, NewsArticles
from alphaforge.plugins.sentiment.base import SentimentScorer, empty_scores
from alphaforge.storage.tables import NewsScore

CHUNK = 500

Row = tuple[float, float, float, float]


def score_articles(ctx: Context, scorer: SentimentScorer, articles: NewsArticles) -> np.ndarray:
    """``(len(articles), 4)`` float64 scores in article order (columns ``SCORE_COLUMNS``)."""
    if len(articles) == 0:
        return empty_scores()
    identity = scorer.identity()
    texts = dict(zip(articles.text_hash, articles.texts(), strict=True))  # distinct, first-seen order
    found = _read(ctx, identity, list(texts))
    missing = [h for h in texts if h not in found]
    for start in range(0, len(missing), CHUNK):
        hashes = missing[start : start + CHUNK]
        scores = np.asarray(scorer.score([texts[h] for h in hashes]), dtype="float64")
        if scores.shape != (len(hashes), len(SCORE_COLUMNS)) or not np.isfinite(scores).all():
            raise ValueError(
                f"scorer {identity} returned scores of shape {scores.shape} (or non-finite ones) for {len(hashes)} texts"
            )
        rows = {h: tuple(float(v) for v in row) for h, row in zip(hashes, scores, strict=True)}
        found.update(_store(ctx, identity, rows))
    return np.array([found[h] for h in articles.text_hash], dtype="float64")


def _read(ctx: Context, identity: str, hashes: Sequence[str]) -> dict[str, Row]:
    columns = [getattr(NewsScore, c) for c in SCORE_COLUMNS]
    found: dict[str, Row] = {}
    with ctx.db.session() as session:
        for start in range(0, len(hashes), CHUNK):
            query = select(NewsScore.text_hash, *columns).where(
                NewsScore.scorer == identity, NewsScore.text_hash.in_(hashes[start : start + CHUNK])
            )
            for text_hash, *values in session.execute(query):
                found[text_hash] = tuple(values)  # type: ignore[assignment]
    return found


def _store(ctx: Context, identity: str, rows: dict[str, Row]) -> dict[str, Row]:
    """Insert the rows; where another writer got there first, return its stored values."""
    values = [{"scorer": identity, "text_hash": h, **dict(zip(SCORE_COLUMNS, r, strict=True))} for h, r in rows.items()]
    try:
        with ctx.db.session() as session:
            session.execute(insert(NewsScore), values)
        return rows
    except IntegrityError:
        pass
    # Some key was inserted concurrently: one row per transaction, keeping whatever is there.
    for value in values:
        try:
            with ctx.db.session() as session:
                session.execute(insert(NewsScore), [value])
        except IntegrityError:
            continue
    return _read(ctx, identity, list(rows))
