"""The ``finbert`` scorer, on a tiny BERT saved in a temporary folder.

The model is a randomly initialised stand-in for the real FinBERT weights (which cannot be
downloaded here): 2 layers, hidden size 32, a hand-written WordPiece vocabulary, its
weights drawn wide so that the probabilities differ between texts and classes. It tests our
code path (loading, label mapping by name, truncation, batching, the arithmetic of the
scores, identity), not the model's judgement. Expected scores are computed here by running
the saved model directly, one text at a time, and doing softmax and entropy by hand.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from alphaforge.errors import InvalidInput
from alphaforge.plugins.sentiment import clear_scorer_cache, get_scorer, sentiment_scorers
from alphaforge.settings import Settings
from tiny_bert import VOCAB, write_tiny_bert

FinBertScorer = sentiment_scorers.get("finbert")

TEXTS = [
    "the company beat earnings expectations on strong revenue growth .",
    "shares fall as the bank misses guidance and debt rises",
    "quarter sales in line",
    "",
    "risk , uncertain outlook for rates",
    "profit",
    " ".join(["revenue growth and record profit"] * 150),  # > 512 tokens: truncated
] + [f"price {word}s on market {word}" for word in VOCAB[13:26]]  # 20 texts: two batches of 16


def reference_scores(folder: Path, texts: list[str]) -> np.ndarray:
    """Run the saved model on each text alone; scores from its probabilities, by hand."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    labels = {i: name.lower() for i, name in model.config.id2label.items()}
    rows = []
    for text in texts:
        encoded = tokenizer(text, truncation=True, max_length=512, return_tensors="pt")
        with torch.no_grad():
            logits = model(**encoded).logits[0].double().tolist()
        exps = [math.exp(v - max(logits)) for v in logits]
        p = {labels[i]: e / sum(exps) for i, e in enumerate(exps)}
        entropy = -sum(q * math.log(q) for q in p.values() if q > 0)
        rows.append([p["positive"], p["negative"], p["positive"] - p["negative"], entropy / math.log(3)])
    return np.array(rows)


def settings(tmp_path: Path, finbert_dir: Path | None) -> Settings:
    return Settings(data_dir=tmp_path, finbert_dir=finbert_dir)


@pytest.fixture(autouse=True)
def _fresh_scorers() -> None:
    clear_scorer_cache()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("finbert"))


def test_scores_equal_an_independent_computation(model_dir: Path, tmp_path: Path) -> None:
    scores = FinBertScorer.from_settings(settings(tmp_path, model_dir)).score(TEXTS)
    expected = reference_scores(model_dir, TEXTS)
    assert scores.dtype == np.float64 and scores.shape == (len(TEXTS), 4)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    # The stand-in is not degenerate: probabilities away from 1/3, so the check has teeth.
    assert np.ptp(expected[:, 0]) > 0.05 and expected[:, 3].min() < 0.95


def test_labels_are_mapped_by_name_not_position(model_dir: Path, tmp_path: Path) -> None:
    shuffled = write_tiny_bert(tmp_path / "shuffled", {0: "Neutral", 1: "POSITIVE", 2: "negative"})
    scores = FinBertScorer.from_settings(settings(tmp_path, shuffled)).score(TEXTS)
    np.testing.assert_allclose(scores, reference_scores(shuffled, TEXTS), rtol=0, atol=1e-5)
    # Same weights (same seed), other names: logit 1 is now "positive".
    default = FinBertScorer.from_settings(settings(tmp_path, model_dir)).score(TEXTS)
    np.testing.assert_allclose(scores[:, 0], default[:, 1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(scores[:, 1], 1 - default[:, 0] - default[:, 1], rtol=0, atol=1e-5)  # p(logit 2)
    np.testing.assert_allclose(scores[:, 3], default[:, 3], rtol=0, atol=1e-5)  # entropy: order-free
    assert not np.allclose(scores[:, 0], default[:, 0], atol=1e-3)


def _invalid(tmp_path: Path, finbert_dir: Path | None) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        FinBertScorer.from_settings(settings(tmp_path, finbert_dir))
    assert caught.value.status_code == 422
    return caught.value


def test_not_configured_says_what_to_set(tmp_path: Path) -> None:
    error = _invalid(tmp_path, None)
    assert "ALPHAFORGE_FINBERT_DIR" in error.message and "not configured" in error.message


def test_missing_folder_says_what_to_set(tmp_path: Path) -> None:
    error = _invalid(tmp_path, tmp_path / "no-such-folder")
    # The setting is named; the server's folder is for its log, not for API clients.
    assert "ALPHAFORGE_FINBERT_DIR" in error.message and "no FinBERT model" in error.message
    assert "no-such-folder" not in error.message and str(tmp_path) not in error.message


def test_unloadable_folder_says_what_to_set(model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    error = _invalid(tmp_path, broken)
    assert "ALPHAFORGE_FINBERT_DIR" in error.message and "cannot load" in error.message


def test_other_labels_are_refused_with_the_labels_found(tmp_path: Path) -> None:
    folder = write_tiny_bert(tmp_path / "bullish", {0: "bullish", 1: "bearish", 2: "neutral"})
    error = _invalid(tmp_path, folder)
    assert "bullish" in error.message and "bearish" in error.message and "positive" in error.message


def test_missing_transformers_says_what_to_install(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import raises ImportError
    error = _invalid(tmp_path, model_dir)
    assert "pip install 'alphaforge[finbert]'" in error.message


def test_get_scorer_reports_a_bad_setting_and_recovers_once_fixed(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="ALPHAFORGE_FINBERT_DIR"):
        get_scorer("finbert", settings(tmp_path, None))
    scorer = get_scorer("finbert", settings(tmp_path, model_dir))
    assert get_scorer("finbert", settings(tmp_path / "other-data", model_dir)) is scorer  # data_dir is irrelevant


def test_identity_follows_the_weights(model_dir: Path, tmp_path: Path) -> None:
    identity = FinBertScorer.from_settings(settings(tmp_path, model_dir)).identity()
    assert identity.startswith("finbert/") and len(identity.split("/")[1]) == 16
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    assert FinBertScorer.from_settings(settings(tmp_path, copy)).identity() == identity  # content, not path
    write_tiny_bert(copy, seed=1)  # same folder, new weights
    changed = FinBertScorer.from_settings(settings(tmp_path, copy)).identity()
    assert changed != identity and changed.startswith("finbert/")
