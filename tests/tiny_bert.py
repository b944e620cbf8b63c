"""The tiny stand-in BERT now lives in the conformance kit; tests import it from here."""

from alphaforge.plugins.testing.tiny_bert import DEFAULT_LABELS, VOCAB, write_tiny_bert

__all__ = ["DEFAULT_LABELS", "VOCAB", "write_tiny_bert"]
