"""The contract every registered feature plugin must honour (one test suite, all plugins).

Causality is a property: for a random t and a random change to every bar after t (and to
every macro or fundamentals record published after t, and every news article published
after bar t's close), no value at or before t may change. Plugins that read other
features get them computed from the same (perturbed) inputs.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaforge.marketdata.articles import NewsArticles
from alphaforge.marketdata.bars import parse_upload
from alphaforge.marketdata.pit import PitSeries
from alphaforge.marketdata.sample import sample_bars
from alphaforge.plugins.features import (
    FEATURE_CATEGORIES,
    Bars,
    FeatureInputs,
    FeaturePlugin,
    feature_plugins,
    with_input_features,
)

PLUGINS = list(feature_plugins)
N_BARS = 400


@pytest.fixture(scope="module")
def gspc() -> pd.DataFrame:
    frame, report = parse_upload(sample_bars("GSPC"))
    assert report.ok
    return frame.iloc[1500:1500 + N_BARS]


DAY_NS = 86_400 * 10**9


def _synthetic_macro(name: str, frame: pd.DataFrame) -> PitSeries:
    """A daily series covering 60 days before the bars and all of them: each observation
    usable from the next day, and every tenth one restated five days later."""
    first = pd.DatetimeIndex(frame.index).asi8[0]
    days = np.concatenate([first - DAY_NS * np.arange(60, 0, -1), pd.DatetimeIndex(frame.index).asi8])
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    values = 100 + np.cumsum(rng.normal(0, 1, len(days)))
    restated = days[::10]
    return PitSeries(
        observation=np.concatenate([days, restated]),
        available=np.concatenate([days + DAY_NS, restated + 5 * DAY_NS]),
        value=np.concatenate([values, values[::10] + rng.normal(0, 3, len(restated))]),
    )


def _synthetic_fundamental(name: str, frame: pd.DataFrame) -> PitSeries:
    """Quarterly figures from two years before the bars to their end, each usable 35 days
    after its period end (never at it), every third one restated 20 days later. Positive,
    so that ratios hold values from the first bar on."""
    stamps = pd.DatetimeIndex(frame.index)
    quarters = pd.date_range(stamps[0] - pd.Timedelta(days=730), stamps[-1], freq="QE", tz="UTC")
    period_end = np.asarray(quarters.as_unit("ns").asi8, dtype="int64")
    rng = np.random.default_rng(abs(hash(("fundamental", name))) % 2**32)
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


def _synthetic_news(frame: pd.DataFrame) -> NewsArticles:
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
        macro = {name: _synthetic_macro(name, frame) for name in plugin.macro_series()}
    if fundamentals is None:
        fundamentals = {name: _synthetic_fundamental(name, frame) for name in plugin.fundamental_fields()}
    if news is None and _reads_news(plugin):
        news = _synthetic_news(frame)
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


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
def test_metadata_is_complete_and_serializable(cls: type[FeaturePlugin]) -> None:
    meta = json.loads(json.dumps(cls.describe()))
    assert meta["key"] == cls.key and cls.key.startswith(f"{cls.category}.")
    assert meta["category"] in FEATURE_CATEGORIES
    assert meta["description"] and isinstance(meta["version"], str)
    assert meta["parameters"]["type"] == "object"
    assert meta["parameters"].get("additionalProperties") is False  # unknown names are refused
    for name, spec in meta["parameters"].get("properties", {}).items():
        assert "default" in spec, f"{cls.key}.{name} has no default"
    assert meta["output_columns"] and len(set(meta["output_columns"])) == len(meta["output_columns"])
    assert isinstance(meta["lookback"], int) and meta["lookback"] >= 0
    assert meta["libraries"] and all(v != "not-installed" for v in meta["libraries"].values())


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
def test_outputs_are_declared_float64_columns_as_long_as_the_bars(cls: type[FeaturePlugin], gspc: pd.DataFrame) -> None:
    values = _compute(cls, gspc)
    assert list(values) == cls.from_parameters({}).output_columns
    for name, array in values.items():
        assert isinstance(array, np.ndarray) and array.dtype == np.float64, name
        assert array.shape == (N_BARS,), name


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
def test_same_bars_same_values(cls: type[FeaturePlugin], gspc: pd.DataFrame) -> None:
    first, second = _compute(cls, gspc), _compute(cls, gspc.copy())
    for name in first:
        assert np.array_equal(first[name], second[name], equal_nan=True), name


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
def test_declared_lookback_is_exactly_the_warm_up(cls: type[FeaturePlugin], gspc: pd.DataFrame) -> None:
    plugin = cls.from_parameters({})
    values = plugin.compute(_inputs(plugin, gspc))
    matrix = np.column_stack(list(values.values()))
    lookback = plugin.lookback
    assert not np.isnan(matrix[lookback]).any(), "row `lookback` must hold every value"
    if lookback > 0:
        assert np.isnan(matrix[lookback - 1]).any(), "lookback is larger than needed"


PERTURBATIONS = st.sampled_from(["scale", "noise", "reverse", "spike"])


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(t=st.integers(min_value=0, max_value=N_BARS - 2), how=PERTURBATIONS, seed=st.integers(0, 2**32 - 1))
def test_values_up_to_t_ignore_every_bar_after_t(
    cls: type[FeaturePlugin], gspc: pd.DataFrame, t: int, how: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    changed = _perturb_after(gspc, t, how, rng)
    plugin = cls.from_parameters({})
    macro = {name: _synthetic_macro(name, gspc) for name in plugin.macro_series()}
    cutoff = pd.DatetimeIndex(gspc.index).asi8[t]
    later_macro = {name: _perturb_records_after(series, cutoff, rng) for name, series in macro.items()}
    fundamentals = {name: _synthetic_fundamental(name, gspc) for name in plugin.fundamental_fields()}
    later_fundamentals = {
        name: _perturb_records_after(series, cutoff, rng) for name, series in fundamentals.items()
    }
    news = later_news = None
    if _reads_news(plugin):
        news = _synthetic_news(gspc)
        later_news = _perturb_news_after(news, _close_of(pd.DatetimeIndex(gspc.index)[t]), rng)
    before = _compute(cls, gspc, macro, fundamentals, news)
    after = _compute(cls, changed, later_macro, later_fundamentals, later_news)
    for name in before:
        assert np.array_equal(before[name][: t + 1], after[name][: t + 1], equal_nan=True), (
            f"{cls.key}.{name} changed at or before t={t} when only later bars changed ({how})"
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
    assert news.scores is not None
    known = news.published <= close
    later = news.published[~known]
    kept_later = later[rng.uniform(0, 1, len(later)) > 1 / 3]
    added = np.concatenate([[close + 1], close + rng.integers(1, 5 * DAY_NS, size=5)])
    published = np.concatenate([news.published[known], np.sort(np.concatenate([kept_later, added]))])
    rescored = _scored(published, rng)
    scores = rescored.scores.copy()  # type: ignore[union-attr]
    scores[: int(known.sum())] = news.scores[known]
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
    else:  # one huge bar right after t
        tail.iloc[0, :4] = tail.iloc[0, :4] * 3.0
        tail.iloc[0, 4] = tail.iloc[0, 4] * 50
    out.iloc[t + 1:] = tail.to_numpy()
    return out
