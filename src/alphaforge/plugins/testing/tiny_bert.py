"""A tiny, randomly initialised BERT classifier saved in a folder: a stand-in for the real
FinBERT weights (which alphaforge never downloads) that exercises alphaforge's FinBERT code
path — loading from a local folder, label mapping, batching, score arithmetic — not the
model's judgement. The finbert scorer's conformance tag builds its checks on it.

Needs torch and transformers; nothing else in :mod:`alphaforge.plugins.testing` imports it."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers  # the finbert extra

VOCAB = (
    "[PAD] [UNK] [CLS] [SEP] [MASK] the a of and in to on for company quarter revenue profit "
    "loss earnings growth strong weak decline rise fall market share shares price guidance "
    "beat miss expect outlook risk uncertain record sales cost debt bank rate ##s ##ed ##ing ##ly . ,"
).split()
DEFAULT_LABELS = {0: "positive", 1: "negative", 2: "neutral"}


def write_tiny_bert(folder: Path, id2label: dict[int, str] | None = None, seed: int = 0) -> Path:
    """Save a tiny random BERT classifier (weights, config, tokenizer) in ``folder``."""
    id2label = id2label or DEFAULT_LABELS
    folder.mkdir(parents=True, exist_ok=True)
    config = transformers.BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, id2label=id2label, label2id={v: k for k, v in id2label.items()},
        initializer_range=0.5,  # far wider than BERT's 0.02, so that texts get distinct scores
    )
    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification(config)
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    # Loading from the folder reads vocab.txt the same way on transformers 4 and 5.
    tokenizer = transformers.BertTokenizer.from_pretrained(folder)
    assert len(tokenizer.get_vocab()) == len(VOCAB)
    tokenizer.save_pretrained(folder)
    return folder
