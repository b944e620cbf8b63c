"""The feature-plugin contract.

A plugin turns bars into one or more float64 columns, index-aligned with the bars. It is
causal: the value at bar t may only use bars up to t. It declares its parameters (a
pydantic model, so the API can validate them and a UI can build a form), its output
columns, its warm-up and the libraries whose versions go into every dataset's hash.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd

from alphaforge.marketdata.articles import NewsArticles
from alphaforge.marketdata.bars import BAR_COLUMNS
from alphaforge.marketdata.pit import PitSeries
from alphaforge.plugins.base import PluginParams, Registry, library_version, validate_params

FeatureCategory = Literal[
    "technical", "statistical", "automated", "news", "fundamental", "macro", "cross_sectional"
]
FEATURE_CATEGORIES: tuple[str, ...] = FeatureCategory.__args__  # type: ignore[attr-defined]

PriceColumn = Literal["open", "high", "low", "close", "volume"]


@dataclass(frozen=True)
class Bars:
    """Bars as contiguous numpy arrays: what plugins compute on."""

    timestamps: np.ndarray  # int64 nanoseconds, UTC
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Bars:
        """Each column a contiguous array of its own. A stored series' frame is one float
        block: transposed once, its rows are the columns (a Series per column cost ~0.5 ms a
        call, paid per piece of a panel)."""
        if list(frame.columns) == list(BAR_COLUMNS):
            block = np.ascontiguousarray(frame.to_numpy(dtype="float64").T)
            arrays = dict(zip(BAR_COLUMNS, block, strict=True))
        else:
            arrays = {c: np.ascontiguousarray(frame[c].to_numpy(dtype="float64")) for c in BAR_COLUMNS}
        return cls(timestamps=pd.DatetimeIndex(frame.index).as_unit("ns").asi8, **arrays)

    def column(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def __len__(self) -> int:
        return len(self.close)


@dataclass(frozen=True)
class FeatureInputs:
    """Everything a plugin may read, each only when it declared it:

    - ``bars`` (always) and their ``timeframe`` ("1h", "1d", "1w");
    - ``macro`` / ``fundamentals``: point-in-time series (``macro_series``;
      ``fundamental_fields`` of the bars' symbol, keyed by field), read as of each bar
      with ``PitSeries.as_of``;
    - ``news``: the symbol's articles around the bars (``reads_news``), with their scores
      when the plugin named a ``sentiment_scorer``;
    - ``features``: the columns of its ``input_features``, by alias, as long as the bars.
    """

    bars: Bars
    macro: Mapping[str, PitSeries] = field(default_factory=dict)
    fundamentals: Mapping[str, PitSeries] = field(default_factory=dict)
    news: NewsArticles | None = None
    timeframe: str = "1d"
    features: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)


class FeaturePlugin(ABC):
    key: ClassVar[str]
    category: ClassVar[FeatureCategory]
    description: ClassVar[str]
    #: Bump when a change to the code changes values: it is part of every version hash.
    version: ClassVar[str] = "1"
    Params: ClassVar[type[PluginParams]] = PluginParams
    #: Distributions whose versions change the values (part of the version hash).
    libraries: ClassVar[tuple[str, ...]] = ("numpy",)

    def __init__(self, params: PluginParams) -> None:
        self.params = params

    @classmethod
    def from_parameters(cls, raw: dict[str, Any] | None) -> Self:
        return cls(validate_params(cls.Params, raw, cls.key))

    #: The columns ``compute`` returns, when they do not depend on the parameters.
    outputs: ClassVar[tuple[str, ...]] = ()

    @property
    def output_columns(self) -> list[str]:
        """Names of the columns ``compute`` returns, in order (``outputs`` unless overridden)."""
        return list(self.outputs)

    @property
    @abstractmethod
    def lookback(self) -> int:
        """Bars before the first one that can hold a value (the first ``lookback`` are NaN)."""

    #: True when a value depends on every earlier bar (exponential smoothing, cumulative
    #: sums): the engine then warms up over the whole stored history, so a value at t is
    #: the same whatever range is requested.
    recursive: ClassVar[bool] = False

    def macro_series(self) -> list[str]:
        """Point-in-time macro series this definition reads (their fingerprints join the hash)."""
        return []

    def fundamental_fields(self) -> list[str]:
        """Point-in-time fundamentals fields of the bars' symbol this definition reads
        (their fingerprints join the hash)."""
        return []

    def bar_fields(self) -> tuple[str, ...]:
        """The bar fields ``compute`` reads (all five unless the plugin says fewer). A series
        may lack open, high, low or volume (a close-only series); a definition asked for
        fields the bars lack is refused with a 422 naming them, never fed NaN or made-up
        values. The conformance kit checks the declaration: no value may change when every
        other field is NaN."""
        return BAR_COLUMNS

    #: False for a feature computed over a panel (many symbols per date), never one symbol's
    #: bars: generated only as a panel, and held by the kit to its panel checks instead of
    #: the per-symbol ones (``alphaforge.plugins.features.cross_sectional``).
    per_symbol: ClassVar[bool] = True

    #: True when the plugin reads the bars' symbol's news articles.
    reads_news: ClassVar[bool] = False

    def sentiment_scorer(self) -> str | None:
        """Key of the sentiment scorer whose per-article scores the plugin reads (the
        engine scores the articles, through the score cache, before ``compute``)."""
        return None

    def input_features(self) -> dict[str, FeaturePlugin]:
        """Other features this one is computed from, by alias. The engine computes each
        over the same bars and caches it under its own hash; ``lookback`` must include
        theirs."""
        return {}

    def referenced_features(self) -> dict[str, uuid.UUID]:
        """Stored feature definitions this one reads by id, by alias: its parameters name
        only the ids, so the engine loads each and binds its plugin (``with_references``)
        before ``input_features`` can answer."""
        return {}

    def with_references(self, plugins: Mapping[uuid.UUID, FeaturePlugin]) -> Self:
        """This plugin reading ``plugins`` (by feature id) for its ``referenced_features``."""
        return self

    @abstractmethod
    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        """Column name -> float64 array as long as the bars. Causal."""

    def compute_batch(self, batch: Sequence[FeatureInputs]) -> list[dict[str, np.ndarray]]:
        """``compute`` for several symbols (a panel's pieces): one by one unless the plugin
        vectorises across symbols. Each symbol's values must equal its own ``compute``."""
        return [self.compute(inputs) for inputs in batch]

    def resolved_parameters(self) -> dict[str, Any]:
        """Parameters with defaults filled in, JSON-ready."""
        return self.params.model_dump(mode="json")

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        return {dist: library_version(dist) for dist in cls.libraries}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Discovery metadata: enough for a UI to build a form."""
        default = cls.from_parameters({})
        return {
            "key": cls.key,
            "category": cls.category,
            "description": cls.description,
            "version": cls.version,
            "parameters": cls.Params.model_json_schema(),
            "output_columns": default.output_columns,
            "lookback": default.lookback,
            "recursive": default.recursive,
            "per_symbol": cls.per_symbol,
            "bar_fields": list(default.bar_fields()),
            "reads_news": cls.reads_news,
            "sentiment_scorer": default.sentiment_scorer(),
            "input_features": {a: p.key for a, p in default.input_features().items()},
            "libraries": cls.library_versions(),
        }


def required_bar_fields(plugin: FeaturePlugin) -> tuple[str, ...]:
    """The bar fields the plugin reads, itself or through its input features (bar order)."""
    wanted = set(plugin.bar_fields()).union(*(required_bar_fields(p) for p in plugin.input_features().values()))
    return tuple(c for c in BAR_COLUMNS if c in wanted)


def needs_full_history(plugin: FeaturePlugin) -> bool:
    """Recursive itself or through one of its input features."""
    return plugin.recursive or any(needs_full_history(p) for p in plugin.input_features().values())


def with_input_features(plugin: FeaturePlugin, inputs: FeatureInputs) -> FeatureInputs:
    """``inputs`` plus the plugin's input features computed from the same inputs, uncached
    (the engine caches them; this is the reference it must agree with)."""
    if not plugin.input_features():
        return inputs
    features = {
        alias: upstream.compute(with_input_features(upstream, inputs))
        for alias, upstream in plugin.input_features().items()
    }
    return replace(inputs, features=features)


feature_plugins: Registry[FeaturePlugin] = Registry("feature")
