"""The sentiment-score cache (``news_scores``), on SQLite and PostgreSQL: one row per
(scorer identity, text hash), read before scoring, written for what was missing.

The scorers here are fakes defined in this module (their scores are simple functions of
the text, recomputed in the assertions), plus the real ``lm`` scorer once end to end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from sqlalchemy import insert, select, text

from alphaforge.bootstrap import start_context
from alphaforge.context import Context
from alphaforge.marketdata.articles import NewsArticles
from alphaforge.plugins.sentiment import SentimentScorer, get_scorer
from alphaforge.features.sentiment_cache import score_articles
from alphaforge.settings import Settings
from alphaforge.storage.tables import NewsScore


class FakeScorer(SentimentScorer):
    key = "fake"
    description = "Scores from the text's length and word count (tests only, not registered)."

    def __init__(self, identity: str = "fake/1", offset: float = 0.0) -> None:
        self._identity = identity
        self.offset = offset
        self.calls: list[list[str]] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> FakeScorer:
        return cls()

    def identity(self) -> str:
        return self._identity

    def score(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([expected(t, self.offset) for t in texts], dtype="float64").reshape(-1, 4)


def expected(text_: str, offset: float = 0.0) -> list[float]:
    return [len(text_) % 10 / 10, len(text_.split()) % 5 / 5, offset, 0.25]


@pytest.fixture(scope="module")
def ctx(make_settings) -> Iterator[Context]:  # noqa: ANN001
    context = start_context(make_settings(load_sample_data=False))
    yield context
    context.close()


def articles(*texts: tuple[str, str | None]) -> NewsArticles:
    """Articles published a minute apart, in the order given (``build`` sorts by time)."""
    stamps = np.array([1_700_000_000_000_000_000 + i * 60_000_000_000 for i in range(len(texts))])
    return NewsArticles.build(stamps, [h for h, _ in texts], [b for _, b in texts])


def unique(label: str) -> str:
    """Texts unique to a test: the module's database is shared by its tests."""
    return f"{label} {uuid.uuid4().hex}"


def stored(ctx: Context, identity: str) -> dict[str, list[float]]:
    columns = (NewsScore.positive, NewsScore.negative, NewsScore.net, NewsScore.uncertainty)
    with ctx.db.session() as session:
        rows = session.execute(select(NewsScore.text_hash, *columns).where(NewsScore.scorer == identity))
        return {h: list(values) for h, *values in rows}


def test_each_distinct_text_is_scored_once_and_stored(ctx: Context) -> None:
    headline, other = unique("Acme beats estimates"), unique("Acme misses")
    news = articles((headline, "Body text."), (other, None), (headline, "Body text."))  # a duplicate story
    scorer = FakeScorer(identity=unique("fake"))
    scores = score_articles(ctx, scorer, news)
    texts = news.texts()
    assert scores.dtype == np.float64 and scores.shape == (3, 4)
    np.testing.assert_array_equal(scores, [expected(t) for t in texts])
    assert len(scorer.calls) == 1 and sorted(scorer.calls[0]) == sorted(set(texts))  # the duplicate once
    rows = stored(ctx, scorer.identity())
    assert set(rows) == set(news.text_hash) and len(rows) == 2
    assert rows[news.text_hash[0]] == expected(texts[0])


def test_second_call_reads_the_cache(ctx: Context) -> None:
    news = articles((unique("Shares rise"), None), (unique("Shares fall"), "on weak guidance"))
    identity = unique("fake")
    first = score_articles(ctx, FakeScorer(identity), news)
    again = FakeScorer(identity)  # another instance, same identity: e.g. another process
    np.testing.assert_array_equal(score_articles(ctx, again, news), first)
    assert again.calls == []


def test_a_changed_stored_row_is_what_comes_back(ctx: Context) -> None:
    news = articles((unique("Guidance raised"), None), (unique("Guidance cut"), None))
    scorer = FakeScorer(unique("fake"))
    score_articles(ctx, scorer, news)
    with ctx.db.session() as session:
        session.execute(
            text("UPDATE news_scores SET positive = 0.123, net = -0.5 WHERE scorer = :s AND text_hash = :h"),
            {"s": scorer.identity(), "h": news.text_hash[1]},
        )
    scores = score_articles(ctx, scorer, news)
    assert scores[1].tolist() == [0.123, expected(news.texts()[1])[1], -0.5, 0.25]
    assert scores[0].tolist() == expected(news.texts()[0])
    assert len(scorer.calls) == 1


def test_only_missing_texts_are_scored(ctx: Context) -> None:
    old, new = (unique("Old story"), None), (unique("New story"), None)
    scorer = FakeScorer(unique("fake"))
    score_articles(ctx, scorer, articles(old))
    scores = score_articles(ctx, scorer, articles(old, new))
    assert scorer.calls[1] == [new[0]]
    np.testing.assert_array_equal(scores, [expected(old[0]), expected(new[0])])


def test_two_scorers_keep_separate_rows(ctx: Context) -> None:
    news = articles((unique("Merger announced"), None), (unique("Merger called off"), None))
    first, second = FakeScorer(unique("fake-a")), FakeScorer(unique("fake-b"), offset=0.5)
    a, b = score_articles(ctx, first, news), score_articles(ctx, second, news)
    assert len(second.calls) == 1  # not served from the first scorer's rows
    assert a[:, 2].tolist() == [0.0, 0.0] and b[:, 2].tolist() == [0.5, 0.5]
    assert set(stored(ctx, first.identity())) == set(stored(ctx, second.identity())) == set(news.text_hash)
    np.testing.assert_array_equal(score_articles(ctx, first, news), a)


def test_zero_articles_do_not_touch_the_scorer(ctx: Context) -> None:
    class Refusing(FakeScorer):
        def identity(self) -> str:
            raise AssertionError("identity() called")

        def score(self, texts: Sequence[str]) -> np.ndarray:
            raise AssertionError("score() called")

    scores = score_articles(ctx, Refusing(), NewsArticles.empty())
    assert scores.shape == (0, 4) and scores.dtype == np.float64


def test_more_texts_than_a_chunk(ctx: Context) -> None:
    prefix = unique("Item")
    news = articles(*((f"{prefix} {i}", None) for i in range(1201)))
    scorer = FakeScorer(unique("fake"))
    scores = score_articles(ctx, scorer, news)
    assert [len(c) for c in scorer.calls] == [500, 500, 201]
    np.testing.assert_array_equal(scores, [expected(t) for t in news.texts()])
    assert len(stored(ctx, scorer.identity())) == 1201
    np.testing.assert_array_equal(score_articles(ctx, scorer, news), scores)
    assert len(scorer.calls) == 3


def test_a_concurrent_insert_of_the_same_text_is_not_an_error(ctx: Context) -> None:
    """Another process stores one of our texts while we score: its row wins, ours fill the rest."""
    news = articles((unique("Raced"), None), (unique("Not raced"), None))
    raced = news.text_hash[0]

    class Racing(FakeScorer):
        def score(self, texts: Sequence[str]) -> np.ndarray:
            with ctx.db.session() as session:
                session.execute(insert(NewsScore), [{
                    "scorer": self.identity(), "text_hash": raced,
                    "positive": 0.9, "negative": 0.1, "net": 0.8, "uncertainty": 0.0,
                }])
            return super().score(texts)

    scorer = Racing(unique("fake"))
    scores = score_articles(ctx, scorer, news)
    assert scores[0].tolist() == [0.9, 0.1, 0.8, 0.0]
    assert scores[1].tolist() == expected(news.texts()[1])
    assert stored(ctx, scorer.identity()) == {raced: [0.9, 0.1, 0.8, 0.0], news.text_hash[1]: scores[1].tolist()}


def test_a_scorer_returning_the_wrong_shape_is_refused(ctx: Context) -> None:
    class Short(FakeScorer):
        def score(self, texts: Sequence[str]) -> np.ndarray:
            return super().score(texts)[:-1]

    scorer = Short(unique("fake"))
    with pytest.raises(ValueError, match="scores"):
        score_articles(ctx, scorer, articles((unique("a"), None), (unique("b"), None)))
    assert stored(ctx, scorer.identity()) == {}


def test_the_lm_scorer_through_the_cache(ctx: Context) -> None:
    news = articles(
        (unique("Acme swings to a loss as litigation costs mount"), None),
        (unique("Acme: profitable year, excellent improvement"), "Outlook uncertain."),
    )
    scorer = get_scorer("lm", ctx.settings)
    scores = score_articles(ctx, scorer, news)
    np.testing.assert_array_equal(scores, scorer.score(news.texts()))
    assert scores[0, 2] < 0 < scores[1, 2]
    assert set(stored(ctx, scorer.identity())) >= set(news.text_hash)
