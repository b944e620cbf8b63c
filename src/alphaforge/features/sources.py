"""What a feature plugin reads besides its bars, gathered for one computation.

A plugin declares its sources (macro series, fundamentals fields, news with or without a
sentiment scorer, other features); this module loads each, and describes each in a
``lineage`` fragment (fingerprints, scorer identity, input features' hashes) that joins
the dataset's version hash, so any change to an input gives a new version.

Input features are computed over the same bars as the plugin that reads them and cached
in the object store under their own content hash (``features/_inputs/...``): a momentum
and a divergence of the same sentiment share one sentiment computation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.context import Context
from alphaforge.errors import InvalidInput
from alphaforge.marketdata.articles import NewsArticles
from alphaforge.marketdata.pit import PitSeries
from alphaforge.plugins.features import Bars, FeatureInputs, FeaturePlugin
from alphaforge.features.identity import identity_document
from alphaforge.hashing import content_hash, utc_iso
from alphaforge.storage.object_store import ObjectNotFound
from alphaforge.storage.parquet import from_parquet_bytes, to_parquet_bytes

INPUT_HASH_SCHEMA = "alphaforge.feature-input/1"
#: News loaded around the bars: a bar's close can lie up to a day and a half after its
#: stamp (a daily bar stamped at 00:00 UTC closing late in a western zone).
NEWS_MARGIN = timedelta(days=2)


@dataclass(frozen=True)
class PluginSources:
    """The sources of one computation. Scoring news and computing input features are
    deferred to :meth:`inputs`, so a version-hash hit does neither."""

    macro: dict[str, PitSeries] = field(default_factory=dict)
    fundamentals: dict[str, PitSeries] = field(default_factory=dict)
    news: Callable[[], NewsArticles] | None = None
    features: dict[str, Callable[[], dict[str, np.ndarray]]] = field(default_factory=dict)
    #: Fingerprints of every source, for the version hash.
    lineage: dict[str, Any] = field(default_factory=dict)

    def inputs(self, bars: pd.DataFrame, timeframe: str) -> FeatureInputs:
        return FeatureInputs(
            bars=Bars.from_frame(bars),
            macro=self.macro,
            fundamentals=self.fundamentals,
            news=self.news() if self.news is not None else None,
            timeframe=timeframe,
            features={alias: load() for alias, load in self.features.items()},
        )


def gather_sources(
    ctx: Context, plugin: FeaturePlugin, symbol: str, timeframe: str, bars: pd.DataFrame, end: datetime
) -> PluginSources:
    """Every source ``plugin`` declared, for ``bars`` of ``symbol`` (requested up to ``end``)."""
    lineage: dict[str, Any] = {}
    macro = macro_inputs(ctx, plugin, end)
    if macro:
        lineage["macro_fingerprints"] = {name: series.fingerprint() for name, series in macro.items()}
    fundamentals = fundamental_inputs(ctx, plugin, symbol, end)
    if fundamentals:
        lineage["fundamental_fingerprints"] = {name: series.fingerprint() for name, series in fundamentals.items()}
    news = None
    if plugin.reads_news:
        news, lineage["news"] = news_inputs(ctx, plugin, symbol, bars, end)
    features: dict[str, Callable[[], dict[str, np.ndarray]]] = {}
    if plugin.input_features():
        lineage["input_features"] = {}
        for alias, upstream in plugin.input_features().items():
            features[alias], lineage["input_features"][alias] = input_feature(
                ctx, upstream, symbol, timeframe, bars, end
            )
    return PluginSources(macro, fundamentals, news, features, lineage)


def macro_inputs(ctx: Context, plugin: FeaturePlugin, end: datetime) -> dict[str, PitSeries]:
    """The point-in-time series a plugin declared, with every record published before ``end``."""
    if not plugin.macro_series():
        return {}

    store = ctx.macro
    out = {}
    for name in plugin.macro_series():
        series = store.get_series(name, until=end)
        if len(series) == 0:
            known = ", ".join(info.series for info in store.list_series()) or "none"
            raise InvalidInput(f"macro series {name!r} has no records before {utc_iso(end)}; known series: {known}")
        out[name] = series
    return out


def fundamental_inputs(ctx: Context, plugin: FeaturePlugin, symbol: str, end: datetime) -> dict[str, PitSeries]:
    """The fundamentals fields of ``symbol`` a plugin declared, with every record published
    before ``end`` (422 naming the symbol's fields when one has none)."""
    if not plugin.fundamental_fields():
        return {}

    store = ctx.fundamentals
    out = {}
    for name in plugin.fundamental_fields():
        series = store.get_series(symbol, name, until=end)
        if len(series) == 0:
            known = ", ".join(info.field for info in store.list_fields(symbol)) or "none"
            raise InvalidInput(
                f"fundamentals field {name!r} has no records for {symbol} before {utc_iso(end)}; "
                f"fields of {symbol}: {known}"
            )
        out[name] = series
    return out


def news_inputs(
    ctx: Context, plugin: FeaturePlugin, symbol: str, bars: pd.DataFrame, end: datetime
) -> tuple[Callable[[], NewsArticles], dict[str, Any]]:
    """The symbol's articles around the bars, scored when the plugin names a scorer (422
    when the symbol has no news at all before ``end``), and their lineage."""

    store = ctx.news
    if len(store.get_articles(symbol, end=end)) == 0:
        raise InvalidInput(
            f"no news for {symbol} before {utc_iso(end)}; ingest articles with "
            f"POST /api/v1/market-data/{symbol}/news"
        )
    first, last = (pd.Timestamp(t).to_pydatetime() for t in (bars.index[0], bars.index[-1]))
    articles = store.get_articles(symbol, start=first - NEWS_MARGIN, end=last + NEWS_MARGIN)
    lineage: dict[str, Any] = {"fingerprint": articles.fingerprint()}
    scorer_key = plugin.sentiment_scorer()
    if scorer_key is None:
        return lambda: articles, lineage
    from alphaforge.plugins.sentiment import get_scorer
    from alphaforge.features.sentiment_cache import score_articles

    scorer = get_scorer(scorer_key, ctx.settings)
    lineage["scorer"] = scorer.identity()
    return lambda: articles.with_scores(score_articles(ctx, scorer, articles)), lineage


def input_feature(
    ctx: Context, plugin: FeaturePlugin, symbol: str, timeframe: str, bars: pd.DataFrame, end: datetime
) -> tuple[Callable[[], dict[str, np.ndarray]], dict[str, Any]]:
    """An input feature's lineage entry (its own hash), and a loader of its columns over
    ``bars``: read from its cache object, or computed (with its own sources) and stored."""
    sources = gather_sources(ctx, plugin, symbol, timeframe, bars, end)
    span = {"first_bar": utc_iso(pd.Timestamp(bars.index[0]).to_pydatetime()), "bars": len(bars)}
    identity = identity_document(INPUT_HASH_SCHEMA, plugin, symbol, timeframe, bars, span, sources.lineage)
    version_hash = content_hash(identity)
    key = f"features/_inputs/{plugin.key}/{symbol}/{timeframe}/{version_hash}.parquet"

    def load() -> dict[str, np.ndarray]:
        try:
            frame = from_parquet_bytes(ctx.objects.get(key))
        except ObjectNotFound:
            values = plugin.compute(sources.inputs(bars, timeframe))
            columns = plugin.output_columns
            frame = pd.DataFrame({c: np.asarray(values[c], dtype="float64") for c in columns}, index=bars.index)
            ctx.objects.put(key, to_parquet_bytes(frame))
        return {c: frame[c].to_numpy(dtype="float64") for c in plugin.output_columns}

    entry = {"plugin_key": plugin.key, "parameters": plugin.resolved_parameters(), "version_hash": version_hash}
    return load, entry
