"""The contract every feature plugin must honour, as checks a plugin author runs.

``check_feature_plugin(MyFeature)`` runs every check in :data:`FEATURE_CHECKS`; each is
also a function of its own. A failure is a
:class:`~alphaforge.plugins.testing.ConformanceError` (an AssertionError) naming the check.
Every check builds the plugin with its default parameters and computes it over 400 real
GSPC daily bars.

Causality is a property: for a t and a change to every bar after t (and to every macro or
fundamentals record published after t, and every news article published after bar t's
close), no value at or before t may change. Plugins that read other features get them
computed from the same (perturbed) inputs. :func:`check_feature_causality` tries a fixed
set of (t, perturbation, seed) cases; :func:`check_feature_causality_at` tries one, for a
property-based test to draw them.

A cross-sectional plugin (``per_symbol`` False) has no per-symbol values: it is held to
:data:`CROSS_SECTION_CHECKS` instead (metadata, and causality on a panel: perturb every
symbol after date t, add a symbol after t, nothing up to t changes).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache

import numpy as np
import pandas as pd

from alphaforge.marketdata.articles import NewsArticles
from alphaforge.marketdata.bars import BAR_COLUMNS
from alphaforge.marketdata.pit import PitSeries
from alphaforge.plugins.features import (
    FEATURE_CATEGORIES,
    Bars,
    FeatureInputs,
    FeaturePlugin,
    feature_plugins,
    required_bar_fields,
    with_input_features,
)
from alphaforge.plugins.testing._core import conformance_check, require, run_checks
from alphaforge.plugins.testing.data import gspc_bars

N_BARS = 400
#: How the bars after t are changed: all scaled, noise, reversed, one huge bar right after t.
PERTURBATIONS = ("scale", "noise", "reverse", "spike")
DAY_NS = 86_400 * 10**9


@cache
def bars() -> pd.DataFrame:
    """The 400 GSPC daily bars every feature check computes on (shared: copy to change)."""
    return gspc_bars().iloc[1500 : 1500 + N_BARS]


def _stable_seed(*parts: str) -> int:
    """A seed from names, the same in every process (``hash`` of a str is salted)."""
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:4], "big")


def synthetic_macro(name: str, frame: pd.DataFrame) -> PitSeries:
    """A daily series covering 60 days before the bars and all of them: each observation
    usable from the next day, and every tenth one restated five days later."""
    first = pd.DatetimeIndex(frame.index).asi8[0]
    days = np.concatenate([first - DAY_NS * np.arange(60, 0, -1), pd.DatetimeIndex(frame.index).asi8])
    rng = np.random.default_rng(_stable_seed("macro", name))
    values = 100 + np.cumsum(rng.normal(0, 1, len(days)))
    restated = days[::10]
    return PitSeries(
        observation=np.concatenate([days, restated]),
        available=np.concatenate([days + DAY_NS, restated + 5 * DAY_NS]),
        value=np.concatenate([values, values[::10] + rng.normal(0, 3, len(restated))]),
    )


def synthetic_fundamental(name: str, frame: pd.DataFrame) -> PitSeries:
    """Quarterly figures from two years before the bars to their end, each usable 35 days
    after its period end (never at it), every third one restated 20 days later. Positive,
    so that ratios hold values from the first bar on."""
    stamps = pd.DatetimeIndex(frame.index)
    quarters = pd.date_range(stamps[0] - pd.Timedelta(days=730), stamps[-1], freq="QE", tz="UTC")
    period_end = np.asarray(quarters.as_unit("ns").asi8, dtype="int64")
    rng = np.random.default_rng(_stable_seed("fundamental", name))
    values = 10 + np.abs(np.cumsum(rng.normal(0, 1, len(period_end))))
    restated = period_end[::3]
    return PitSeries(
        observation=np.concatenate([period_end, restated]),
        available=np.concatenate([period_end + 35 * DAY_NS, restated + 55 * DAY_NS]),
        value=np.concatenate([values, values[::3] * rng.uniform(0.8, 1.2, len(restated))]),
    )


def _close_of(stamp: pd.Timestamp) -> int:
    """The default session close of a daily bar (16:00 New York on its date), as UTC ns,
    worked out here independently of the news plugins."""
    local = pd.Timestamp(f"{stamp:%Y-%m-%d} 16:00", tz="America/New_York")
    return int(local.tz_convert("UTC").value)


def synthetic_news(frame: pd.DataFrame) -> NewsArticles:
    """About two scored articles a day from three days before the bars to two days after,
    some exactly at a bar's close, some a nanosecond after, and some bars without any."""
    stamps = pd.DatetimeIndex(frame.index)
    rng = np.random.default_rng(7)
    lo, hi = stamps[0].value - 3 * DAY_NS, stamps[-1].value + 2 * DAY_NS
    published = rng.integers(lo, hi, size=2 * (hi - lo) // DAY_NS)
    closes = np.asarray([_close_of(t) for t in stamps[::7]])
    published = np.sort(np.concatenate([published, closes, closes[::2] + 1]))
    keep = ~np.isin((published - stamps[0].value) // (5 * DAY_NS), [3, 11, 12])  # news-free stretches
    published = published[keep]
    return _scored(published, rng)


def _scored(published: np.ndarray, rng: np.random.Generator) -> NewsArticles:
    n = len(published)
    articles = NewsArticles.build(published, [f"headline {i:06d}" for i in range(n)], [None] * n)
    positive, negative = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    return articles.with_scores(
        np.column_stack([positive, negative, np.clip(positive - negative, -1, 1), rng.uniform(0, 1, n)])
    )


def _reads_news(plugin: FeaturePlugin) -> bool:
    return plugin.reads_news or any(_reads_news(p) for p in plugin.input_features().values())


def _inputs(
    plugin: FeaturePlugin,
    frame: pd.DataFrame,
    macro: dict[str, PitSeries] | None = None,
    fundamentals: dict[str, PitSeries] | None = None,
    news: NewsArticles | None = None,
) -> FeatureInputs:
    if macro is None:
        macro = {name: synthetic_macro(name, frame) for name in plugin.macro_series()}
    if fundamentals is None:
        fundamentals = {name: synthetic_fundamental(name, frame) for name in plugin.fundamental_fields()}
    if news is None and _reads_news(plugin):
        news = synthetic_news(frame)
    inputs = FeatureInputs(Bars.from_frame(frame), macro=macro, fundamentals=fundamentals, news=news)
    return with_input_features(plugin, inputs)


def _compute(
    cls: type[FeaturePlugin],
    frame: pd.DataFrame,
    macro: dict[str, PitSeries] | None = None,
    fundamentals: dict[str, PitSeries] | None = None,
    news: NewsArticles | None = None,
) -> dict[str, np.ndarray]:
    plugin = cls.from_parameters({})
    return plugin.compute(_inputs(plugin, frame, macro, fundamentals, news))


# --- checks --------------------------------------------------------------------------


@conformance_check
def check_feature_metadata(cls: type[FeaturePlugin]) -> None:
    """Metadata complete and JSON-serialisable; registered under its key."""
    meta = json.loads(json.dumps(cls.describe()))
    require(meta["category"] in FEATURE_CATEGORIES, f"category {meta['category']!r} is none of {FEATURE_CATEGORIES}")
    require(
        meta["key"] == cls.key and cls.key.startswith(f"{cls.category}."),
        f"key {cls.key!r} must start with {cls.category + '.'!r}",
    )
    require(meta["description"], "description must not be empty")
    require(isinstance(meta["version"], str), f"version must be a string, got {meta['version']!r}")
    require(meta["parameters"]["type"] == "object", "Params must be an object schema")
    require(
        meta["parameters"].get("additionalProperties") is False,
        "Params must refuse unknown names (subclass alphaforge.plugins.base.PluginParams)",
    )
    for name, spec in meta["parameters"].get("properties", {}).items():
        require("default" in spec, f"{cls.key}.{name} has no default")
    columns = meta["output_columns"]
    require(columns and len(set(columns)) == len(columns), f"output columns must be named and unique, got {columns}")
    require(
        isinstance(meta["lookback"], int) and meta["lookback"] >= 0,
        f"lookback must be an int >= 0, got {meta['lookback']!r}",
    )
    require(
        meta["libraries"] and all(v != "not-installed" for v in meta["libraries"].values()),
        f"libraries must name installed distributions, got {meta['libraries']}",
    )
    require(
        cls.key in feature_plugins and feature_plugins.get(cls.key) is cls,
        f"{cls.key!r} is not registered: decorate the class with @feature_plugins.register",
    )


@conformance_check
def check_feature_outputs(cls: type[FeaturePlugin]) -> None:
    """``compute`` returns the declared columns, in order, each float64 and as long as the bars."""
    values = _compute(cls, bars())
    declared = cls.from_parameters({}).output_columns
    require(list(values) == declared, f"compute returned columns {list(values)}, output_columns declares {declared}")
    for name, array in values.items():
        require(
            isinstance(array, np.ndarray) and array.dtype == np.float64,
            f"{name} must be a float64 ndarray, got {type(array).__name__} {getattr(array, 'dtype', '')}",
        )
        require(array.shape == (N_BARS,), f"{name} has shape {array.shape} for {N_BARS} bars")


@conformance_check
def check_same_bars_same_values(cls: type[FeaturePlugin]) -> None:
    """The same bars (another copy) give the same values, NaN for NaN."""
    first, second = _compute(cls, bars()), _compute(cls, bars().copy())
    for name in first:
        require(np.array_equal(first[name], second[name], equal_nan=True), f"{name} differs between two computations")


@conformance_check
def check_batch_equals_one_by_one(cls: type[FeaturePlugin]) -> None:
    """``compute_batch`` over two symbols' bars (of different lengths) gives each the values
    its own ``compute`` gives, NaN for NaN (a vectorised batch must not mix symbols)."""
    plugin = cls.from_parameters({})
    frames = [bars(), bars().iloc[N_BARS // 3:] * 1.5]
    inputs = [_inputs(plugin, frame) for frame in frames]
    batched = plugin.compute_batch(inputs)
    require(len(batched) == len(frames), f"compute_batch returned {len(batched)} results for {len(frames)} inputs")
    for i, (one, together) in enumerate(zip(inputs, batched, strict=True)):
        alone = plugin.compute(one)
        require(list(together) == list(alone), f"symbol {i}: compute_batch columns {list(together)} != {list(alone)}")
        for name in alone:
            require(
                np.array_equal(np.asarray(together[name]), alone[name], equal_nan=True),
                f"symbol {i}: {name} from compute_batch differs from compute",
            )


@conformance_check
def check_lookback_is_the_warm_up(cls: type[FeaturePlugin]) -> None:
    """Row ``lookback`` holds every value, and row ``lookback - 1`` misses one (not larger than needed)."""
    plugin = cls.from_parameters({})
    values = plugin.compute(_inputs(plugin, bars()))
    matrix = np.column_stack(list(values.values()))
    lookback = plugin.lookback
    require(not np.isnan(matrix[lookback]).any(), f"row lookback={lookback} must hold every value")
    if lookback > 0:
        require(np.isnan(matrix[lookback - 1]).any(), f"lookback={lookback} is larger than needed")


@conformance_check
def check_reads_only_declared_bar_fields(cls: type[FeaturePlugin]) -> None:
    """``bar_fields`` names every bar field ``compute`` reads: with the other fields NaN
    throughout (a series that lacks them), every value is the same, NaN for NaN. (A plugin
    that declares more than it reads is only refused on more series than it need be.)"""
    plugin = cls.from_parameters({})
    wanted = required_bar_fields(plugin)
    unread = [c for c in BAR_COLUMNS if c not in wanted]
    full = plugin.compute(_inputs(plugin, bars()))
    lacking = bars().copy()
    lacking[unread] = np.nan
    partial = plugin.compute(_inputs(plugin, lacking))
    for name in full:
        require(
            np.array_equal(full[name], partial[name], equal_nan=True),
            f"{name} changes when {', '.join(unread)} are absent: add what compute reads to bar_fields "
            f"(declared: {', '.join(plugin.bar_fields()) or 'none'})",
        )


def _perturb_records_after(series: PitSeries, cutoff: int, rng: np.random.Generator) -> PitSeries:
    """Records known by ``cutoff`` kept; every later one changed, plus restatements of old
    observations and new observations published after it (macro series and fundamentals
    alike: a fundamentals record whose available_at is after the cutoff)."""
    later = series.available > cutoff
    value = series.value.copy()
    value[later] = value[later] * rng.uniform(0.5, 2.0) + rng.normal(0, 10, int(later.sum()))
    old = series.observation[~later][-5:]
    return PitSeries(
        observation=np.concatenate([series.observation, old, [cutoff + DAY_NS]]),
        available=np.concatenate([series.available, np.full(len(old), cutoff + 1), [cutoff + 1]]),
        value=np.concatenate([value, rng.normal(0, 50, len(old)), [1e6]]),
    )


def _perturb_news_after(news: NewsArticles, close: int, rng: np.random.Generator) -> NewsArticles:
    """Articles published up to ``close`` kept as they are; later ones rescored, a third
    of them dropped, and new ones added (one a nanosecond after the close)."""
    require(news.scores is not None, "kit: synthetic news must be scored")
    known = news.published <= close
    later = news.published[~known]
    kept_later = later[rng.uniform(0, 1, len(later)) > 1 / 3]
    added = np.concatenate([[close + 1], close + rng.integers(1, 5 * DAY_NS, size=5)])
    published = np.concatenate([news.published[known], np.sort(np.concatenate([kept_later, added]))])
    rescored = _scored(published, rng)
    scores = rescored.scores.copy()  # type: ignore[union-attr]
    scores[: int(known.sum())] = news.scores[known]  # type: ignore[index]
    return NewsArticles.build(published, list(news.headline[: int(known.sum())]) + [
        f"later {i:06d}" for i in range(len(published) - int(known.sum()))
    ], [None] * len(published)).with_scores(scores)


def _perturb_after(frame: pd.DataFrame, t: int, how: str, rng: np.random.Generator) -> pd.DataFrame:
    """A valid OHLCV frame equal to ``frame`` up to row t and different after it."""
    out = frame.copy()
    tail = out.iloc[t + 1:].copy()
    n = len(tail)
    if how == "scale":
        factor = rng.uniform(0.5, 2.0)
        tail[["open", "high", "low", "close"]] *= factor
        tail["volume"] *= rng.uniform(0.1, 10.0)
    elif how == "noise":
        tail[["open", "high", "low", "close"]] *= np.exp(rng.normal(0, 0.05, size=(n, 1)))
        tail["volume"] = rng.uniform(1e8, 5e9, size=n)
    elif how == "reverse":
        tail = pd.DataFrame(tail.to_numpy()[::-1], index=tail.index, columns=tail.columns)
    elif how == "spike":  # one huge bar right after t
        tail.iloc[0, :4] = tail.iloc[0, :4] * 3.0
        tail.iloc[0, 4] = tail.iloc[0, 4] * 50
    else:
        raise ValueError(f"unknown perturbation {how!r}; one of {PERTURBATIONS}")
    out.iloc[t + 1:] = tail.to_numpy()
    return out


@conformance_check
def check_feature_causality_at(cls: type[FeaturePlugin], t: int, how: str, seed: int) -> None:
    """Change every input after bar t (bars by ``how``, one of :data:`PERTURBATIONS`; macro
    and fundamentals records published after t; news after t's close), drawn from ``seed``:
    no value at or before t may change."""
    _causality_case(cls, t, how, seed)


def _causality_case(cls: type[FeaturePlugin], t: int, how: str, seed: int) -> None:
    require(0 <= t <= N_BARS - 2, f"kit: t={t} must be within 0..{N_BARS - 2}")
    frame = bars()
    rng = np.random.default_rng(seed)
    changed = _perturb_after(frame, t, how, rng)
    plugin = cls.from_parameters({})
    macro = {name: synthetic_macro(name, frame) for name in plugin.macro_series()}
    cutoff = pd.DatetimeIndex(frame.index).asi8[t]
    later_macro = {name: _perturb_records_after(series, cutoff, rng) for name, series in macro.items()}
    fundamentals = {name: synthetic_fundamental(name, frame) for name in plugin.fundamental_fields()}
    later_fundamentals = {
        name: _perturb_records_after(series, cutoff, rng) for name, series in fundamentals.items()
    }
    news = later_news = None
    if _reads_news(plugin):
        news = synthetic_news(frame)
        later_news = _perturb_news_after(news, _close_of(pd.DatetimeIndex(frame.index)[t]), rng)
    before = _compute(cls, frame, macro, fundamentals, news)
    after = _compute(cls, changed, later_macro, later_fundamentals, later_news)
    for name in before:
        same = np.array_equal(before[name][: t + 1], after[name][: t + 1], equal_nan=True)
        require(same, f"{cls.key}.{name} changed at or before t={t} when only later inputs changed ({how}, seed {seed})")


def causality_cases(cls: type[FeaturePlugin], examples: int = 12, seed: int = 0) -> list[tuple[int, str, int]]:
    """(t, perturbation, seed) cases: the first and last t, the edges of the warm-up, then
    seeded random ones; every perturbation in turn."""
    rng = np.random.default_rng(seed)
    lookback = cls.from_parameters({}).lookback
    edges = [0, N_BARS - 2, lookback - 1, lookback, lookback + 1]
    ts = list(dict.fromkeys(t for t in edges if 0 <= t <= N_BARS - 2))
    ts += [int(t) for t in rng.integers(0, N_BARS - 1, size=max(examples - len(ts), 0))]
    return [(t, PERTURBATIONS[i % len(PERTURBATIONS)], int(rng.integers(0, 2**32))) for i, t in enumerate(ts[:examples])]


@conformance_check
def check_feature_causality(cls: type[FeaturePlugin], examples: int = 12, seed: int = 0) -> None:
    """:func:`check_feature_causality_at` over :func:`causality_cases`."""
    for t, how, case_seed in causality_cases(cls, examples, seed):
        _causality_case(cls, t, how, case_seed)


# --- cross-sectional plugins (``per_symbol`` False): checked on a panel ----------------
PANEL_SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF")


@cache
def panel() -> tuple[pd.DataFrame, pd.Series]:
    """A long panel over the kit's 400 dates, index (timestamp, symbol), one column
    ``value`` (20-bar returns of shifted GSPC closes), and each row's group label: EEE
    misses every seventh date, FFF joins at date 100, and CCC changes group at date 200
    (a reclassification known from then on). Shared: copy to change."""
    stamps = pd.DatetimeIndex(bars().index)
    close = gspc_bars()["close"].to_numpy(dtype="float64")
    parts, labels = [], []
    for i, symbol in enumerate(PANEL_SYMBOLS):
        series = close[200 * i : 200 * i + N_BARS + 20]
        values = series[20:] / series[:-20] - 1.0
        keep = np.ones(N_BARS, dtype=bool)
        if symbol == "EEE":
            keep[::7] = False
        if symbol == "FFF":
            keep[:100] = False
        group = np.full(N_BARS, float(i % 2))
        if symbol == "CCC":
            group[200:] = 2.0
        index = pd.MultiIndex.from_arrays([stamps[keep], [symbol] * int(keep.sum())], names=["timestamp", "symbol"])
        parts.append(pd.DataFrame({"value": values[keep]}, index=index))
        labels.append(pd.Series(group[keep], index=index))
    frame = pd.concat(parts).sort_index()
    return frame, pd.concat(labels).reindex(frame.index)


def _perturb_panel_after(
    frame: pd.DataFrame, groups: pd.Series, t: int, how: str, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.Series]:
    """Every symbol's values after date t changed (``how``), their groups reshuffled, a
    third of those rows dropped (members leaving), and a symbol added that exists only after t."""
    stamps = pd.DatetimeIndex(bars().index)
    later = frame.index.get_level_values("timestamp") > stamps[t]
    values = frame["value"].to_numpy(dtype="float64").copy()
    n = int(later.sum())
    if how == "scale":
        values[later] *= rng.uniform(-3.0, 3.0)
    elif how == "noise":
        values[later] += rng.normal(0, 0.1, n)
    elif how == "reverse":
        values[later] = values[later][::-1]
    elif how == "spike":
        values[later] = np.where(rng.uniform(0, 1, n) < 0.2, 1e6, values[later])
    else:
        raise ValueError(f"unknown perturbation {how!r}; one of {PERTURBATIONS}")
    labels = groups.to_numpy(dtype="float64").copy()
    labels[later] = rng.integers(0, 3, n).astype("float64")
    keep = ~later | (rng.uniform(0, 1, len(later)) > 1 / 3)
    changed = pd.DataFrame({"value": values}, index=frame.index)[keep]
    changed_groups = pd.Series(labels, index=frame.index)[keep]
    added = pd.MultiIndex.from_arrays([stamps[t + 1:], ["ZZZ"] * (N_BARS - t - 1)], names=["timestamp", "symbol"])
    changed = pd.concat([changed, pd.DataFrame({"value": rng.normal(0, 1, len(added))}, index=added)]).sort_index()
    changed_groups = pd.concat(
        [changed_groups, pd.Series(rng.integers(0, 3, len(added)).astype("float64"), index=added)]
    ).reindex(changed.index)
    return changed, changed_groups


@conformance_check
def check_cross_section_causality_at(cls: type[FeaturePlugin], t: int, how: str, seed: int) -> None:
    """On the kit's panel, change every symbol's values and groups after date t, drop some
    later rows and add a symbol after t (drawn from ``seed``): no value at or before t may
    change, with and without groups."""
    _cross_section_case(cls, t, how, seed)


def _cross_section_case(cls: type[FeaturePlugin], t: int, how: str, seed: int) -> None:
    require(0 <= t <= N_BARS - 2, f"kit: t={t} must be within 0..{N_BARS - 2}")
    plugin = cls.from_parameters({})
    frame, groups = panel()
    changed, changed_groups = _perturb_panel_after(frame, groups, t, how, np.random.default_rng(seed))
    cutoff = pd.DatetimeIndex(bars().index)[t]
    for grouped in (False, True):
        before = plugin.compute_panel(frame.copy(), groups.copy() if grouped else None)  # type: ignore[attr-defined]
        after = plugin.compute_panel(changed, changed_groups if grouped else None)  # type: ignore[attr-defined]
        require(list(before.columns) == plugin.output_columns, f"compute_panel returned {list(before.columns)}")
        require(before.index.equals(frame.index), "compute_panel must keep the panel's index")
        early = before.index[before.index.get_level_values("timestamp") <= cutoff]
        require(before.loc[early].notna().any().all(), "kit: every output is NaN up to t; nothing was checked")
        for name in before.columns:
            same = np.array_equal(before.loc[early, name], after.loc[early, name], equal_nan=True)
            require(same, f"{cls.key}.{name} changed at or before t={t} when only later rows changed "
                          f"({how}, seed {seed}, {'with' if grouped else 'without'} groups)")


@conformance_check
def check_cross_section_causality(cls: type[FeaturePlugin], examples: int = 12, seed: int = 0) -> None:
    """:func:`check_cross_section_causality_at` over :func:`causality_cases`."""
    for t, how, case_seed in causality_cases(cls, examples, seed):
        _cross_section_case(cls, t, how, case_seed)


#: Every feature check of a per-symbol plugin; each takes the plugin class alone.
FEATURE_CHECKS = (
    check_feature_metadata,
    check_feature_outputs,
    check_same_bars_same_values,
    check_lookback_is_the_warm_up,
    check_reads_only_declared_bar_fields,
    check_batch_equals_one_by_one,
    check_feature_causality,
)
#: The checks of a cross-sectional plugin (``per_symbol`` False): the per-symbol ones
#: compute over one symbol's bars, which such a plugin refuses.
CROSS_SECTION_CHECKS = (check_feature_metadata, check_cross_section_causality)


def feature_checks(cls: type[FeaturePlugin]) -> tuple:
    """The checks that apply to ``cls``, by its ``per_symbol`` tag."""
    return FEATURE_CHECKS if cls.per_symbol else CROSS_SECTION_CHECKS


def check_feature_plugin(cls: type[FeaturePlugin]) -> None:
    """Run every feature check that applies on ``cls`` (a registered :class:`FeaturePlugin`
    subclass); a :class:`~alphaforge.plugins.testing.ConformanceError` naming each check that failed."""
    run_checks(cls, feature_checks(cls))
