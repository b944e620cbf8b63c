"""The contract every sentiment scorer must honour, as checks a scorer's author runs.

``check_sentiment_scorer(MyScorer)`` runs every check in :data:`SCORER_CHECKS`; each is
also a function of its own. A failure is a
:class:`~alphaforge.plugins.testing.ConformanceError` (an AssertionError) naming the check.

Each check builds the scorer from ``settings`` when given, else from
:func:`conformance_settings`: a fresh folder as ``data_dir`` plus what the scorer's
``conformance`` tag (:class:`~alphaforge.plugins.sentiment.ScorerConformance`) puts there
(``finbert``'s: a tiny random BERT standing in for the real weights).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from functools import cache
from pathlib import Path

import numpy as np

from alphaforge.marketdata.articles import SCORE_COLUMNS
from alphaforge.plugins.sentiment import SentimentScorer, clear_scorer_cache, get_scorer, sentiment_scorers
from alphaforge.plugins.testing._core import conformance_check, require, run_checks
from alphaforge.settings import Settings

#: What every scorer scores: long, short, empty, punctuation only, foreign scripts.
TEXTS: tuple[str, ...] = (
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
    *(f"Headline number {i}: the company expects growth in the quarter." for i in range(10)),
)


@cache
def conformance_settings(cls: type[SentimentScorer]) -> Settings:
    """Settings under which the checks build ``cls``: a fresh folder (removed at exit) as
    ``data_dir``, plus what the scorer's ``conformance.settings`` puts there. Once per
    class and process."""
    folder = Path(tempfile.mkdtemp(prefix=f"alphaforge-conformance-{cls.key}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    build = cls.conformance.settings
    values = {"data_dir": folder, **(dict(build(folder)) if build is not None else {})}
    return Settings(**values)  # type: ignore[arg-type]


def _settings(cls: type[SentimentScorer], settings: Settings | None) -> Settings:
    return conformance_settings(cls) if settings is None else settings


def _build(cls: type[SentimentScorer], settings: Settings) -> SentimentScorer:
    try:
        return cls.from_settings(settings)
    except Exception as exc:
        raise AssertionError(
            f"cannot build the scorer ({type(exc).__name__}: {exc}); pass the settings it needs, or declare "
            "them in its conformance tag (ScorerConformance(settings=...))"
        ) from exc


@conformance_check
def check_scorer_metadata(cls: type[SentimentScorer], settings: Settings | None = None) -> None:
    """Registered under its key (an identifier); description, version, settings fields that exist."""
    require(
        cls.key in sentiment_scorers and sentiment_scorers.get(cls.key) is cls,
        f"{cls.key!r} is not registered: decorate the class with @sentiment_scorers.register",
    )
    require(cls.key.isidentifier(), f"key {cls.key!r} must be an identifier")
    require(isinstance(cls.description, str) and len(cls.description) > 20, "description must say what it does")
    require(isinstance(cls.version, str) and cls.version, f"version must be a non-empty string, got {cls.version!r}")
    unknown = sorted(set(cls.settings_fields) - set(Settings.model_fields))
    require(not unknown, f"settings_fields {unknown} are not Settings fields")


@conformance_check
def check_scores_shape_dtype_and_ranges(cls: type[SentimentScorer], settings: Settings | None = None) -> None:
    """(n, 4) finite float64; positive, negative, uncertainty in [0, 1], net in [-1, 1] with
    the sign of positive - negative."""
    scores = _build(cls, _settings(cls, settings)).score(list(TEXTS))
    require(
        isinstance(scores, np.ndarray) and scores.dtype == np.float64,
        f"scores must be a float64 ndarray, got {type(scores).__name__} {getattr(scores, 'dtype', '')}",
    )
    expected = (len(TEXTS), len(SCORE_COLUMNS))
    require(scores.shape == expected, f"scores have shape {scores.shape}, expected {expected}")
    require(np.isfinite(scores).all(), "scores hold non-finite values")
    positive, negative, net, uncertainty = scores.T
    for name, column, low in (("positive", positive, 0), ("negative", negative, 0), ("net", net, -1),
                              ("uncertainty", uncertainty, 0)):
        require(((low <= column) & (column <= 1)).all(), f"{name} must lie in [{low}, 1]")
    require((np.sign(net) == np.sign(positive - negative)).all(), "net must lean the way positive - negative does")


@conformance_check
def check_scores_deterministic_and_independent(cls: type[SentimentScorer], settings: Settings | None = None) -> None:
    """The same texts score the same (same instance, a new one); a text's row depends on
    that text alone, not on the others or their order (to 1e-5 for batched models)."""
    settings = _settings(cls, settings)
    scorer = _build(cls, settings)
    texts = list(TEXTS)
    first = scorer.score(texts)
    require(np.array_equal(scorer.score(texts), first), "scoring the same texts twice gives other scores")
    require(np.array_equal(_build(cls, settings).score(texts), first), "a second instance scores differently")
    a, b = TEXTS[0], TEXTS[7]  # a short and a long text: the most padding for a batched model
    np.testing.assert_allclose(
        scorer.score([a, b]), scorer.score([b, a])[::-1], rtol=0, atol=1e-5, err_msg="scores depend on the order"
    )
    np.testing.assert_allclose(
        scorer.score([a, b]), first[[0, 7]], rtol=0, atol=1e-5, err_msg="scores depend on the other texts"
    )
    reversed_ = scorer.score(tuple(reversed(texts)))  # any Sequence
    np.testing.assert_allclose(reversed_[::-1], first, rtol=0, atol=1e-5, err_msg="scores of a reversed tuple differ")


@conformance_check
def check_empty_input(cls: type[SentimentScorer], settings: Settings | None = None) -> None:
    """No texts (a list, a tuple): a (0, 4) float64 array."""
    scorer = _build(cls, _settings(cls, settings))
    for empty in ([], ()):
        scores = scorer.score(empty)
        require(
            scores.shape == (0, len(SCORE_COLUMNS)) and scores.dtype == np.float64,
            f"no texts ({type(empty).__name__}) scored as {scores.shape} {scores.dtype}",
        )


@conformance_check
def check_identity_is_stable(cls: type[SentimentScorer], settings: Settings | None = None) -> None:
    """``identity()``: the same across instances and copies of the settings; ``{key}/…/{version}``,
    printable, no spaces, at most 200 characters."""
    settings = _settings(cls, settings)
    identity = _build(cls, settings).identity()
    require(identity == _build(cls, settings).identity(), "two instances have different identities")
    require(identity == _build(cls, settings.model_copy()).identity(), "a copy of the settings changes the identity")
    require(
        identity.startswith(f"{cls.key}/") and identity.endswith(f"/{cls.version}"),
        f"identity {identity!r} must read {cls.key}/…/{cls.version}",
    )
    require(
        0 < len(identity) <= 200 and identity.isprintable() and " " not in identity,
        f"identity {identity!r} must be 1-200 printable characters without spaces",
    )


@conformance_check
def check_get_scorer_builds_once(cls: type[SentimentScorer], settings: Settings | None = None) -> None:
    """Concurrent first ``get_scorer`` calls build one instance; settings the scorer does
    not read share it. Clears the process's scorer cache before and after."""
    settings = _settings(cls, settings)
    real = cls.from_settings.__func__  # type: ignore[attr-defined]
    calls: list[int] = []

    def counting(klass: type[SentimentScorer], s: Settings) -> SentimentScorer:
        calls.append(1)
        return real(klass, s)

    missing = object()
    own = cls.__dict__.get("from_settings", missing)
    clear_scorer_cache()
    cls.from_settings = classmethod(counting)  # type: ignore[method-assign, assignment]
    try:
        got: list[SentimentScorer] = []
        threads = [threading.Thread(target=lambda: got.append(get_scorer(cls.key, settings))) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        require(len(got) == 8, f"{8 - len(got)} of 8 concurrent get_scorer calls failed")
        require(all(s is got[0] for s in got), "concurrent get_scorer calls returned different instances")
        require(len(calls) == 1, f"concurrent get_scorer calls built the scorer {len(calls)} times")
        require(isinstance(got[0], cls), f"get_scorer returned a {type(got[0]).__name__}")
        other = settings.model_copy(update={"data_dir": settings.data_dir / "elsewhere", "port": 1})
        require(get_scorer(cls.key, other) is got[0], "settings the scorer does not read gave another instance")
    finally:
        if own is missing:
            del cls.from_settings
        else:
            cls.from_settings = own  # type: ignore[method-assign]
        clear_scorer_cache()


#: Every scorer check; each takes the scorer class and, optionally, ``settings``.
SCORER_CHECKS = (
    check_scorer_metadata,
    check_scores_shape_dtype_and_ranges,
    check_scores_deterministic_and_independent,
    check_empty_input,
    check_identity_is_stable,
    check_get_scorer_builds_once,
)


def check_sentiment_scorer(cls: type[SentimentScorer], settings: Settings | None = None) -> None:
    """Run every scorer check on ``cls`` (a registered :class:`SentimentScorer` subclass),
    built from ``settings`` (default: :func:`conformance_settings`); a
    :class:`~alphaforge.plugins.testing.ConformanceError` naming each check that failed."""
    run_checks(cls, SCORER_CHECKS, settings=settings)
