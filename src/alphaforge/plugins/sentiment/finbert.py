"""``finbert``: a FinBERT-style sequence classifier from a local folder (ALPHAFORGE_FINBERT_DIR).

The folder is what transformers' ``save_pretrained`` writes (config.json, weights,
tokenizer files); it is loaded with ``local_files_only=True``, so nothing is ever
downloaded. The model's labels (``config.id2label``, lower-cased) must be exactly
positive, negative and neutral, in any order: they are mapped by name. For each text,
with p the softmax of the logits::

    positive = p(positive)     negative = p(negative)     net = p(positive) - p(negative)
    uncertainty = H(p) / ln 3  (Shannon entropy, normalised to [0, 1]: 1 = no opinion)

Texts are truncated at min(512, the tokenizer's and the model's maximum length) and run
in batches of 16 (texts of similar length together), in eval mode without gradients.
transformers is imported only when the scorer is built. The identity hashes config.json
and the weight files, so replacing the weights (another FinBERT, a fine-tune) changes it
and the cached scores are not reused.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from alphaforge.errors import InvalidInput
from alphaforge.plugins.sentiment.base import ScorerConformance, SentimentScorer, empty_scores, sentiment_scorers
from alphaforge.settings import Settings

BATCH_SIZE = 16
MAX_TOKENS = 512
LABELS = ("positive", "negative", "neutral")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
SET_DIR = (
    "set ALPHAFORGE_FINBERT_DIR to a local folder holding a FinBERT model saved by "
    "transformers' save_pretrained (config.json, weights, tokenizer files); nothing is downloaded"
)
log = logging.getLogger(__name__)


def weights_digest(folder: Path) -> str:
    """SHA-256 over config.json and every weight file (sorted by name, names included)."""
    digest = hashlib.sha256(b"alphaforge.finbert/1\n")
    files = [folder / "config.json"] + sorted(
        p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)
    )
    for path in files:
        digest.update(f"{path.name}\n".encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def stand_in_settings(folder: Path) -> dict[str, object]:
    """Settings for the conformance checks: a tiny, randomly initialised BERT written into
    ``folder`` (the real FinBERT weights are never downloaded). It exercises this scorer's
    code path (loading, label mapping, batching, score arithmetic), not FinBERT's judgement."""
    from alphaforge.plugins.testing.tiny_bert import write_tiny_bert  # needs transformers and torch

    return {"finbert_dir": write_tiny_bert(folder / "finbert")}


@sentiment_scorers.register
class FinBertScorer(SentimentScorer):
    key = "finbert"
    description = (
        "FinBERT (a BERT classifier of financial text) from the local folder ALPHAFORGE_FINBERT_DIR: "
        "class probabilities, net = p(positive) - p(negative), uncertainty = normalised entropy."
    )
    version = "1"
    settings_fields = ("finbert_dir",)
    conformance = ScorerConformance(settings=stand_in_settings)

    def __init__(self, tokenizer: Any, model: Any, label_index: dict[str, int], digest: str, max_length: int) -> None:
        self._tokenizer = tokenizer
        self._model = model
        self._columns = [label_index[name] for name in LABELS]
        self._digest = digest
        self._max_length = max_length
        # Fast tokenizers refuse concurrent calls ("Already borrowed"): one batch at a time.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        folder = settings.finbert_dir
        if folder is None:
            raise InvalidInput(f"the finbert scorer is not configured: {SET_DIR}")
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            # The folder is named in the log, not to API clients.
            log.warning("finbert: no config.json in %s", folder)
            raise InvalidInput(f"ALPHAFORGE_FINBERT_DIR holds no FinBERT model (no config.json): {SET_DIR}")
        try:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError:
            raise InvalidInput(
                "the finbert scorer needs transformers: pip install 'alphaforge[finbert]'"
            ) from None
        digest = weights_digest(folder)
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is a bad folder
            log.warning("finbert: cannot load the model in %s: %s", folder, exc)
            raise InvalidInput(
                f"cannot load the FinBERT model in ALPHAFORGE_FINBERT_DIR ({type(exc).__name__}): {SET_DIR}"
            ) from None
        model.eval()
        found = [str(model.config.id2label[i]).lower() for i in sorted(model.config.id2label)]
        if sorted(found) != sorted(LABELS):
            raise InvalidInput(
                f"the FinBERT model in ALPHAFORGE_FINBERT_DIR has labels {found}; "
                f"the finbert scorer needs exactly {list(LABELS)} (any order, any case)"
            )
        limits = [MAX_TOKENS, tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", MAX_TOKENS)]
        return cls(tokenizer, model, {name: i for i, name in enumerate(found)}, digest, int(min(limits)))

    def identity(self) -> str:
        return f"finbert/{self._digest[:16]}/{self.version}"

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return empty_scores()
        # Batches of similar lengths pad less; rows go back to the callers' order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [[texts[i] for i in order[s : s + BATCH_SIZE]] for s in range(0, len(order), BATCH_SIZE)]
        probs = np.empty((len(texts), len(LABELS)), dtype="float64")
        probs[order] = np.concatenate([self._probabilities(batch) for batch in batches])
        pos, neg, neutral = (probs[:, c] for c in self._columns)
        three = np.column_stack([pos, neg, neutral])
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.where(three > 0, three * np.log(three), 0.0).sum(axis=1)
        uncertainty = np.clip(entropy / math.log(3), 0.0, 1.0)
        return np.column_stack([pos, neg, np.clip(pos - neg, -1.0, 1.0), uncertainty]).astype("float64")

    def _probabilities(self, batch: list[str]) -> np.ndarray:
        import torch

        with self._lock, torch.no_grad():
            encoded = self._tokenizer(
                batch, padding=True, truncation=True, max_length=self._max_length, return_tensors="pt"
            )
            logits = self._model(**encoded).logits
        return torch.softmax(logits.double(), dim=-1).numpy()
