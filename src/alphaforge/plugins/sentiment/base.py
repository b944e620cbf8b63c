"""The sentiment-scorer contract, its registry, and per-process instances.

A scorer maps texts to an ``(n, 4)`` float64 array with the columns of
:data:`~alphaforge.marketdata.articles.SCORE_COLUMNS`, for every scorer:

- ``positive`` in [0, 1], ``negative`` in [0, 1], ``net`` in [-1, 1], ``uncertainty`` in [0, 1];
- deterministic: a text's row depends on that text only (not on the others, nor their order).

``identity()`` names the scorer *and* the version of what it scores with (lexicon, model
weights, our code); it keys the score cache and joins feature version hashes, so anything
that can change a score must change it.

Scorers are built from settings (``from_settings``, a 422 saying what to set when one is
not usable) and are costly to build (a lexicon, a model), so :func:`get_scorer` keeps one
instance per process for each key and the settings it reads.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from alphaforge.marketdata.articles import SCORE_COLUMNS
from alphaforge.plugins.base import Registry
from alphaforge.settings import Settings


@dataclass(frozen=True)
class ScorerConformance:
    """How the conformance checks (:mod:`alphaforge.plugins.testing`) build a scorer: its
    declared exceptions to their defaults, as its ``conformance`` tag (read by the checks only).

    - ``settings``: called with a fresh folder, returns the settings (beyond ``data_dir``, that
      folder) under which the scorer can be built there, e.g. a stand-in model written into
      it; ``None``: the defaults.
    """

    settings: Callable[[Path], Mapping[str, object]] | None = None


class SentimentScorer(ABC):
    key: ClassVar[str]
    description: ClassVar[str]
    #: Bump when a change to our code changes scores: it is part of ``identity()``.
    version: ClassVar[str] = "1"
    #: Settings fields ``from_settings`` reads: with the key, they key the instance cache.
    settings_fields: ClassVar[tuple[str, ...]] = ()
    #: What the conformance checks need to build it (tests only; see the class).
    conformance: ClassVar[ScorerConformance] = ScorerConformance()

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Build the scorer; :class:`~alphaforge.errors.InvalidInput` saying what to set
        (or install) when it cannot be used with these settings."""

    @abstractmethod
    def identity(self) -> str:
        """Stable id of the scorer and of its model/lexicon version (at most 200 characters)."""

    @abstractmethod
    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Float64 ``(len(texts), 4)``, columns :data:`SCORE_COLUMNS`, row i scoring text i."""


def empty_scores() -> np.ndarray:
    return np.empty((0, len(SCORE_COLUMNS)), dtype="float64")


sentiment_scorers: Registry[SentimentScorer] = Registry("sentiment scorer")

_instances: dict[tuple[Hashable, ...], SentimentScorer] = {}
_building: dict[tuple[Hashable, ...], threading.Lock] = {}
_guard = threading.Lock()


def get_scorer(key: str, settings: Settings) -> SentimentScorer:
    """The process's scorer for ``key`` under these settings, built on first use.

    Unknown key: InvalidInput naming the registered ones. A failed build is not cached, so
    fixing the settings (or the model folder) and calling again works. Concurrent first
    calls build once (a lock per cache key; other keys are not held up)."""
    cls = sentiment_scorers.get(key)
    cache_key = (key, *(getattr(settings, name) for name in cls.settings_fields))
    with _guard:
        scorer = _instances.get(cache_key)
        if scorer is not None:
            return scorer
        lock = _building.setdefault(cache_key, threading.Lock())
    with lock:
        with _guard:
            scorer = _instances.get(cache_key)
        if scorer is None:
            scorer = cls.from_settings(settings)
            with _guard:
                _instances[cache_key] = scorer
        return scorer


def clear_scorer_cache() -> None:
    """Forget the built scorers (tests; a process that swaps model folders)."""
    with _guard:
        _instances.clear()
        _building.clear()
