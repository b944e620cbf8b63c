"""A third party's plugins, written here as an author would, checked with the public kit
(alphaforge.plugins.testing): sound ones pass, broken ones fail with an error that names
the failing check. Each is registered for its test only."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pytest
from pydantic import Field

from alphaforge.plugins.base import PluginParams, Registry
from alphaforge.plugins.features import FeatureInputs, FeaturePlugin, feature_plugins
from alphaforge.plugins.models import ModelConformance, ModelPlugin, ParamSpec, Prediction, Timeline, model_plugins
from alphaforge.plugins.models.base import check_width, rowwise_dot
from alphaforge.plugins.sentiment import SentimentScorer, sentiment_scorers
from alphaforge.plugins.testing import (
    ConformanceError,
    check_feature_plugin,
    check_model_conformance_tags,
    check_model_plugin,
    check_same_bars_same_values,
    check_sentiment_scorer,
)
from alphaforge.settings import Settings


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch) -> Callable[[Registry[Any], type], None]:
    """Register a plugin class for this test only."""

    def add(registry: Registry[Any], cls: type) -> None:
        monkeypatch.setitem(registry._plugins, cls.key, cls)

    return add


# --- a model plugin ---------------------------------------------------------------------


class ToyRidgeParams(PluginParams):
    alpha: float = Field(1.0, gt=0, le=1e6, description="L2 penalty on standardised coefficients")


class ToyRidge(ModelPlugin):
    """Ridge regression in closed form on features standardised with training statistics."""

    key = "ml.toy_ridge"
    family = "machine_learning"
    short_name = "toy_ridge"
    description = "test: a third party's ridge regression"
    Params = ToyRidgeParams
    artifact_ext = "json"
    search_space: ClassVar[dict[str, ParamSpec]] = {"alpha": ParamSpec(type="float", low=1e-3, high=1e3, log=True)}
    conformance = ModelConformance(min_correlation=0.6)  # a tag: stricter than the family's 0.5

    params: ToyRidgeParams
    state: dict[str, Any]

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        mean, std = X.mean(axis=0), X.std(axis=0)
        std[std == 0] = 1.0
        Z = (X - mean) / std
        w = np.linalg.solve(Z.T @ Z + self.params.alpha * np.eye(X.shape[1]), Z.T @ (y - y.mean()))
        self.state = {"mean": mean.tolist(), "std": std.tolist(), "w": self._weights(w).tolist(), "b": float(y.mean())}

    def _weights(self, w: np.ndarray) -> np.ndarray:
        return w

    def predict(self, timeline: Timeline) -> Prediction:
        check_width(self.key, timeline.X, len(self.state["w"]))
        Z = (timeline.forecast_rows - np.asarray(self.state["mean"])) / np.asarray(self.state["std"])
        return Prediction(rowwise_dot(Z, np.asarray(self.state["w"])) + self.state["b"])

    def to_bytes(self) -> bytes:
        return json.dumps(self.state, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, params: PluginParams, seed: int = 0) -> Self:
        plugin = cls(params, seed)
        plugin.state = json.loads(data)
        return plugin


class NoisyRidge(ToyRidge):
    """Broken: its weights carry noise from an unseeded generator."""

    key = "ml.toy_noisy_ridge"
    short_name = "toy_noisy_ridge"

    def _weights(self, w: np.ndarray) -> np.ndarray:
        return w + np.random.default_rng().normal(0.0, 1e-4, w.shape)


def test_a_sound_model_plugin_passes(register: Callable[..., None]) -> None:
    register(model_plugins, ToyRidge)
    check_model_plugin(ToyRidge)


def test_a_non_deterministic_model_plugin_fails_naming_the_check(register: Callable[..., None]) -> None:
    register(model_plugins, NoisyRidge)
    with pytest.raises(ConformanceError) as caught:
        check_model_plugin(NoisyRidge)
    assert "check_same_seed_same_predictions" in caught.value.failures
    assert "check_same_seed_same_predictions" in str(caught.value) and "ml.toy_noisy_ridge" in str(caught.value)
    assert "check_model_metadata" not in caught.value.failures  # only what is broken fails


def test_an_unregistered_model_plugin_fails_the_metadata_check() -> None:
    with pytest.raises(ConformanceError, match=r"check_model_metadata failed for ml\.toy_ridge: .*not registered"):
        check_model_plugin(ToyRidge)


def test_a_tag_naming_no_parameter_fails_its_check() -> None:
    class Stale(ToyRidge):
        conformance = ModelConformance(alternates={"beta": 2.0})

    with pytest.raises(ConformanceError, match=r"check_model_conformance_tags .*alternates names parameters \['beta'\]"):
        check_model_conformance_tags(Stale)


# --- a feature plugin -------------------------------------------------------------------


class WindowParams(PluginParams):
    window: int = Field(5, ge=1, le=100, description="Bars back")


class ToyMomentum(FeaturePlugin):
    """close[t] / close[t - window] - 1."""

    key = "statistical.toy_momentum"
    category = "statistical"
    description = "test: a third party's momentum"
    Params = WindowParams
    outputs = ("toy_momentum",)

    params: WindowParams

    @property
    def lookback(self) -> int:
        return self.params.window

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        close, w = inputs.bars.close, self.params.window
        out = np.full(len(close), np.nan)
        out[w:] = close[w:] / close[:-w] - 1.0
        return {"toy_momentum": out}


class ToyCentred(ToyMomentum):
    """Broken: close[t + 1] / close[t] - 1 reads the next bar."""

    key = "statistical.toy_centred"
    outputs = ("toy_centred",)

    @property
    def lookback(self) -> int:
        return 0

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        close = inputs.bars.close
        out = np.full(len(close), np.nan)
        out[:-1] = close[1:] / close[:-1] - 1.0
        return {"toy_centred": out}


def test_a_sound_feature_plugin_passes(register: Callable[..., None]) -> None:
    register(feature_plugins, ToyMomentum)
    check_feature_plugin(ToyMomentum)
    check_same_bars_same_values(ToyMomentum)  # one check alone


def test_a_peeking_feature_plugin_fails_the_causality_check(register: Callable[..., None]) -> None:
    register(feature_plugins, ToyCentred)
    with pytest.raises(ConformanceError) as caught:
        check_feature_plugin(ToyCentred)
    assert list(caught.value.failures) == ["check_feature_causality"]
    assert str(caught.value).startswith("check_feature_causality failed for statistical.toy_centred: ")
    assert "changed at or before t=" in str(caught.value)


class ToyRange(ToyMomentum):
    """Broken declaration: reads high and low, declares close only."""

    key = "statistical.toy_range"
    outputs = ("toy_range",)

    @property
    def lookback(self) -> int:
        return 0

    def bar_fields(self) -> tuple[str, ...]:
        return ("close",)

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        bars = inputs.bars
        return {"toy_range": (bars.high - bars.low) / bars.close}


def test_a_plugin_reading_undeclared_bar_fields_fails_naming_them(register: Callable[..., None]) -> None:
    register(feature_plugins, ToyRange)
    with pytest.raises(ConformanceError) as caught:
        check_feature_plugin(ToyRange)
    assert list(caught.value.failures) == ["check_reads_only_declared_bar_fields"]
    assert "changes when open, high, low, volume are absent" in str(caught.value)


def test_a_plugin_that_declares_what_it_reads_passes_on_close_only_bars(register: Callable[..., None]) -> None:
    class ToyCloseMomentum(ToyMomentum):
        key = "statistical.toy_close_momentum"

        def bar_fields(self) -> tuple[str, ...]:
            return ("close",)

    register(feature_plugins, ToyCloseMomentum)
    check_feature_plugin(ToyCloseMomentum)


class ToyConcatenated(ToyMomentum):
    """Broken batch: computes the symbols' closes end to end, so a window reaches back from
    the second symbol into the first."""

    key = "statistical.toy_concatenated"
    outputs = ("toy_concatenated",)

    def compute_batch(self, batch: Sequence[FeatureInputs]) -> list[dict[str, np.ndarray]]:
        close, w = np.concatenate([one.bars.close for one in batch]), self.params.window
        out = np.full(len(close), np.nan)
        out[w:] = close[w:] / close[:-w] - 1.0
        ends = np.cumsum([len(one.bars.close) for one in batch])
        return [{"toy_concatenated": part} for part in np.split(out, ends[:-1])]

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        return {"toy_concatenated": super().compute(inputs)["toy_momentum"]}


def test_a_batch_that_mixes_symbols_fails_its_check(register: Callable[..., None]) -> None:
    register(feature_plugins, ToyConcatenated)
    with pytest.raises(ConformanceError) as caught:
        check_feature_plugin(ToyConcatenated)
    assert list(caught.value.failures) == ["check_batch_equals_one_by_one"]
    assert "symbol 1: toy_concatenated from compute_batch differs from compute" in str(caught.value)


# --- a sentiment scorer -----------------------------------------------------------------


class ToyScorer(SentimentScorer):
    """Share of up and down words among a text's words."""

    key = "toy_words"
    description = "test: a third party's two-word-list scorer"
    UP, DOWN = frozenset({"rose", "beat", "record", "improved"}), frozenset({"fell", "loss", "declined"})

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def identity(self) -> str:
        return f"{self.key}/words-1/{self.version}"

    def score(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            words = [w.strip(".,:;!?").lower() for w in text.split()]
            up, down = sum(w in self.UP for w in words), sum(w in self.DOWN for w in words)
            n = max(len(words), 1)
            rows.append([up / n, down / n, (up - down) / (up + down) if up + down else 0.0, 0.0])
        return np.asarray(rows, dtype=np.float64).reshape(len(texts), 4)


def test_a_sound_sentiment_scorer_passes(register: Callable[..., None]) -> None:
    register(sentiment_scorers, ToyScorer)
    check_sentiment_scorer(ToyScorer)
