"""Sentiment scorers of news text. Importing this package registers every built-in scorer
(neither imports its heavy library until it is used)."""

from alphaforge.plugins.sentiment import finbert, lexicon  # noqa: F401  (registers)
from alphaforge.plugins.sentiment.base import (
    ScorerConformance,
    SentimentScorer,
    clear_scorer_cache,
    get_scorer,
    sentiment_scorers,
)

#: The registered keys, for a Literal / pattern in parameter models.
SCORER_KEYS: tuple[str, ...] = tuple(sentiment_scorers.keys())
#: The scorer used when none is named.
DEFAULT_SCORER = "lm"

__all__ = [
    "DEFAULT_SCORER",
    "SCORER_KEYS",
    "ScorerConformance",
    "SentimentScorer",
    "clear_scorer_cache",
    "get_scorer",
    "sentiment_scorers",
]
