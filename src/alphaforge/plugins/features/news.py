"""News features: per-bar sentiment and article counts of the bars' symbol, causal.

Which bar an article counts for: a daily (or weekly) bar stamped with date D stands for
the session that closes on D at ``close_time`` in ``timezone`` (16:00 America/New_York by
default); an hourly bar for the hour after its stamp. An article counts for the first bar
whose close is at or after its ``published_at``: one published after a close counts for
the next bar, never for the bar it follows. So bar i aggregates the articles published in
(close of bar i-1, close of bar i]; the first bar of any computation has no known previous
close and is NaN (``lookback`` 1), which keeps every value independent of the requested
range.

Bars without news hold 0 articles and 0.0 for every score (no evidence either way), never
a gap; ``article_count`` tells the two apart. Scores come from a pluggable scorer
(``alphaforge.plugins.sentiment``: ``lm`` Loughran–McDonald by default, ``finbert`` when a
local model is configured), computed once per text and scorer and cached by text hash.

``news.sentiment_momentum`` and ``news.sentiment_divergence`` are computed from the
``news.sentiment`` feature (an input feature, cached under its own hash), over full
windows only.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from alphaforge.marketdata.articles import SCORE_COLUMNS
from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.features.base import FeatureInputs, FeaturePlugin, feature_plugins

HOUR_NS = 3_600 * 10**9
_CLOSE_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class SessionParams(PluginParams):
    """When a bar's session closes: articles published after it count for the next bar."""

    close_time: str = Field("16:00", description="Market close, HH:MM in `timezone` (daily and weekly bars)")
    timezone: str = Field("America/New_York", description="IANA time zone of the market close")

    @field_validator("close_time")
    @classmethod
    def _check_close_time(cls, value: str) -> str:
        if not _CLOSE_TIME.fullmatch(value):
            raise ValueError("use HH:MM on a 24-hour clock, e.g. 16:00")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("use an IANA time zone name, e.g. America/New_York or Europe/London") from None
        return value


class SentimentParams(SessionParams):
    scorer: str = Field("lm", description="Sentiment scorer: lm (Loughran–McDonald lexicon) or finbert")

    @field_validator("scorer")
    @classmethod
    def _check_scorer(cls, value: str) -> str:
        from alphaforge.plugins.sentiment import sentiment_scorers

        if value not in sentiment_scorers:
            raise ValueError(f"unknown scorer; use one of: {', '.join(sentiment_scorers.keys())}")
        return value


def bar_closes(timestamps: np.ndarray, timeframe: str, close_time: str, timezone: str) -> np.ndarray:
    """int64 UTC ns: the instant each bar's information ends (see the module docstring)."""
    if timeframe == "1h":
        return timestamps + HOUR_NS
    hours, minutes = (int(p) for p in close_time.split(":"))
    days = pd.DatetimeIndex(timestamps, tz="UTC").tz_localize(None).normalize()
    local = (days + pd.Timedelta(hours=hours, minutes=minutes)).tz_localize(
        ZoneInfo(timezone), ambiguous=np.ones(len(days), dtype=bool), nonexistent="shift_forward"
    )
    return np.asarray(local.tz_convert("UTC").as_unit("ns").asi8, dtype="int64")


def article_bars(published: np.ndarray, closes: np.ndarray) -> np.ndarray:
    """For each article, the index of the first bar whose close is at or after it (len(closes)
    when it comes after the last close)."""
    return np.searchsorted(closes, published, side="left")


def _per_bar(inputs: FeatureInputs, params: SessionParams) -> tuple[np.ndarray, np.ndarray | None]:
    """Article counts per bar, and score sums per bar (n, 4) when the articles are scored."""
    n = len(inputs.bars)
    news = inputs.news
    if news is None or len(news) == 0:
        return np.zeros(n), (np.zeros((n, len(SCORE_COLUMNS))) if news is not None else None)
    closes = bar_closes(inputs.bars.timestamps, inputs.timeframe, params.close_time, params.timezone)
    index = article_bars(news.published, closes)
    inside = index < n
    index = index[inside]
    counts = np.bincount(index, minlength=n).astype("float64")
    if news.scores is None:
        return counts, None
    sums = np.column_stack(
        [np.bincount(index, weights=news.scores[inside, k], minlength=n) for k in range(len(SCORE_COLUMNS))]
    )
    return counts, sums


def _full_windows(values: np.ndarray, window: int, how: str) -> np.ndarray:
    """Trailing statistic over exactly ``window`` values (NaN until the window is full or
    while it holds a NaN)."""
    rolling = pd.Series(values).rolling(window, min_periods=window)
    out = rolling.sum() if how == "sum" else rolling.mean() if how == "mean" else rolling.std(ddof=1)
    return out.to_numpy(dtype="float64")


class NewsPlugin(FeaturePlugin):
    category = "news"
    reads_news = True
    libraries = ("numpy", "pandas")

    def bar_fields(self) -> tuple[str, ...]:
        return ()  # the bars' times only


SENTIMENT_COLUMNS = tuple(f"sentiment_{c}" for c in SCORE_COLUMNS)


@feature_plugins.register
class Sentiment(NewsPlugin):
    key = "news.sentiment"
    description = (
        "Mean positive, negative, net and uncertainty score of the articles counted for each bar, and their "
        "number; bars without news: 0 articles and 0.0 scores."
    )
    outputs = (*SENTIMENT_COLUMNS, "article_count")
    Params = SentimentParams

    @property
    def lookback(self) -> int:
        return 1

    def sentiment_scorer(self) -> str | None:
        return self.params.scorer  # type: ignore[attr-defined]

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        counts, sums = _per_bar(inputs, self.params)  # type: ignore[arg-type]
        if sums is None:
            raise RuntimeError("news.sentiment needs scored articles")
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(counts[:, None] > 0, sums / counts[:, None], 0.0)
        out = {name: means[:, k].copy() for k, name in enumerate(SENTIMENT_COLUMNS)}
        out["article_count"] = counts
        for values in out.values():
            values[:1] = np.nan
        return out


class VolumeParams(SessionParams):
    window: int = Field(1, ge=1, le=1000, description="Bars summed: articles over the last `window` bars")


@feature_plugins.register
class Volume(NewsPlugin):
    key = "news.volume"
    description = "Number of articles counted for the last `window` bars (no scoring needed)."
    outputs = ("news_volume",)
    Params = VolumeParams

    @property
    def lookback(self) -> int:
        return self.params.window  # type: ignore[attr-defined]

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        counts, _ = _per_bar(inputs, self.params)  # type: ignore[arg-type]
        counts[:1] = np.nan
        return {"news_volume": _full_windows(counts, self.params.window, "sum")}  # type: ignore[attr-defined]


class FromSentiment(NewsPlugin):
    """A feature of the ``news.sentiment`` feature (its ``sentiment_net`` column)."""

    reads_news = False  # reads it through the sentiment feature

    def input_features(self) -> dict[str, FeaturePlugin]:
        return {"sentiment": Sentiment(self.params.sentiment)}  # type: ignore[attr-defined]

    def _net(self, inputs: FeatureInputs) -> np.ndarray:
        return np.asarray(inputs.features["sentiment"]["sentiment_net"], dtype="float64")


class MomentumParams(PluginParams):
    window: int = Field(5, ge=1, le=1000, description="Bars averaged")
    sentiment: SentimentParams = Field(SentimentParams(), description="Parameters of the news.sentiment input")


@feature_plugins.register
class SentimentMomentum(FromSentiment):
    key = "news.sentiment_momentum"
    description = "Mean net sentiment (news.sentiment's sentiment_net) over the last `window` bars."
    outputs = ("sentiment_momentum",)
    Params = MomentumParams

    @property
    def lookback(self) -> int:
        return Sentiment(self.params.sentiment).lookback + self.params.window - 1  # type: ignore[attr-defined]

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        return {"sentiment_momentum": _full_windows(self._net(inputs), self.params.window, "mean")}  # type: ignore[attr-defined]


class DivergenceParams(PluginParams):
    normalise: bool = Field(True, description="z-score the net sentiment over `window` bars; false: the net itself")
    window: int = Field(20, ge=2, le=1000, description="Bars of the z-score")
    sentiment: SentimentParams = Field(SentimentParams(), description="Parameters of the news.sentiment input")


@feature_plugins.register
class SentimentDivergence(FromSentiment):
    key = "news.sentiment_divergence"
    description = (
        "Net sentiment's divergence from its recent level: (net - mean) / std over `window` bars (a zero std "
        "divides by 1); with normalise=false the net sentiment itself."
    )
    outputs = ("sentiment_divergence",)
    Params = DivergenceParams

    @property
    def lookback(self) -> int:
        extra = self.params.window - 1 if self.params.normalise else 0  # type: ignore[attr-defined]
        return Sentiment(self.params.sentiment).lookback + extra  # type: ignore[attr-defined]

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        net = self._net(inputs)
        if not self.params.normalise:  # type: ignore[attr-defined]
            return {"sentiment_divergence": net.copy()}
        window = self.params.window  # type: ignore[attr-defined]
        mean, std = _full_windows(net, window, "mean"), _full_windows(net, window, "std")
        std = np.where(std == 0, 1.0, std)
        return {"sentiment_divergence": (net - mean) / std}
