"""News features on hand-made articles: which bar an article counts for (the market close
in its own zone, daylight saving included), per-bar means, the documented no-news value,
and the features computed from the sentiment feature. Expected values are worked out
here by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphaforge.errors import InvalidInput
from alphaforge.marketdata.articles import NewsArticles
from alphaforge.plugins.features import Bars, FeatureInputs, feature_plugins, with_input_features

# Mon 2018-03-05 .. Fri 2018-03-16: New York switches to daylight time on Sun 2018-03-11,
# so the 16:00 close is 21:00 UTC in the first week and 20:00 UTC in the second.
DAYS = pd.bdate_range("2018-03-05", "2018-03-16", tz="UTC")


def _bars(index: pd.DatetimeIndex) -> Bars:
    n = len(index)
    close = np.linspace(100, 110, n)
    frame = pd.DataFrame(
        {"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": np.full(n, 1e6)}, index=index
    )
    return Bars.from_frame(frame)


def _news(items: list[tuple[str, tuple[float, float, float, float]]]) -> NewsArticles:
    published = np.asarray([pd.Timestamp(t).value for t, _ in items], dtype="int64")
    articles = NewsArticles.build(published, [f"h{i}" for i in range(len(items))], [None] * len(items))
    order = np.argsort(published, kind="stable")
    return articles.with_scores(np.asarray([items[i][1] for i in order], dtype="float64"))


def _compute(key: str, news: NewsArticles, index: pd.DatetimeIndex = DAYS, timeframe: str = "1d",
             **params: object) -> dict[str, np.ndarray]:
    plugin = feature_plugins.get(key).from_parameters(params)
    inputs = FeatureInputs(_bars(index), news=news, timeframe=timeframe)
    return plugin.compute(with_input_features(plugin, inputs))


def _bar(day: str) -> int:
    return int(DAYS.get_loc(pd.Timestamp(day, tz="UTC")))


A = (0.3, 0.1, 0.5, 0.2)
B = (0.1, 0.5, -0.5, 0.4)


def test_an_article_counts_for_the_bar_whose_close_it_precedes_and_after_close_for_the_next() -> None:
    news = _news([
        ("2018-03-06T20:59:59Z", A),  # Tue 15:59:59 EST -> Tue
        ("2018-03-06T21:00:00Z", A),  # Tue 16:00 EST, at the close -> Tue
        ("2018-03-06T21:00:01Z", B),  # just after Tue's close -> Wed
        ("2018-03-09T22:00:00Z", B),  # Fri after the close -> Mon 12th
        ("2018-03-10T15:00:00Z", A),  # Saturday -> Mon 12th
        ("2018-03-12T20:30:00Z", B),  # Mon 16:30 EDT: after the (daylight-time) close -> Tue 13th
        ("2018-03-12T19:59:00Z", A),  # Mon 15:59 EDT -> Mon
    ])
    counts = _compute("news.sentiment", news)["article_count"]
    expected = np.zeros(len(DAYS))
    expected[[_bar("2018-03-06")]] = 2
    expected[[_bar("2018-03-07")]] = 1
    expected[[_bar("2018-03-12")]] = 3
    expected[[_bar("2018-03-13")]] = 1
    expected[0] = np.nan  # the first bar has no known previous close
    assert np.array_equal(counts, expected, equal_nan=True)


def test_sentiment_is_the_mean_of_the_bars_articles_and_zero_without_news() -> None:
    news = _news([("2018-03-06T14:00:00Z", A), ("2018-03-06T15:00:00Z", B), ("2018-03-08T15:00:00Z", B)])
    out = _compute("news.sentiment", news)
    tue, wed, thu = _bar("2018-03-06"), _bar("2018-03-07"), _bar("2018-03-08")
    for k, column in enumerate(["sentiment_positive", "sentiment_negative", "sentiment_net", "sentiment_uncertainty"]):
        assert out[column][tue] == pytest.approx((A[k] + B[k]) / 2)
        assert out[column][thu] == pytest.approx(B[k])
        assert out[column][wed] == 0.0  # documented no-news value
        assert np.isnan(out[column][0])
    assert out["article_count"][wed] == 0.0


def test_other_zones_and_closes_move_the_boundary() -> None:
    # 09:30 UTC on Tue: after a 17:30 Tokyo close (08:30 UTC) -> Wed; before a London 16:30 close -> Tue.
    news = _news([("2018-03-06T09:30:00Z", A)])
    tokyo = _compute("news.sentiment", news, close_time="17:30", timezone="Asia/Tokyo")["article_count"]
    london = _compute("news.sentiment", news, close_time="16:30", timezone="Europe/London")["article_count"]
    assert tokyo[_bar("2018-03-07")] == 1 and tokyo[_bar("2018-03-06")] == 0
    assert london[_bar("2018-03-06")] == 1 and london[_bar("2018-03-07")] == 0


def test_hourly_bars_take_the_articles_of_their_hour() -> None:
    hours = pd.date_range("2018-03-06T14:00", periods=4, freq="h", tz="UTC")
    news = _news([("2018-03-06T15:10:00Z", A), ("2018-03-06T16:00:00Z", B), ("2018-03-06T16:00:01Z", B)])
    counts = _compute("news.sentiment", news, index=hours, timeframe="1h")["article_count"]
    # bar 15:00 covers (15:00, 16:00]; bar 16:00 covers (16:00, 17:00]
    assert np.array_equal(counts, [np.nan, 2, 1, 0], equal_nan=True)


def test_volume_sums_counts_over_full_windows() -> None:
    news = _news([(f"2018-03-{d:02d}T15:00:00Z", A) for d in (6, 6, 7, 9, 12, 12, 12)])
    volume = _compute("news.volume", news, window=3)["news_volume"]
    per_bar = np.array([np.nan, 2, 1, 0, 1, 3, 0, 0, 0, 0])  # Mon 5th .. Fri 16th
    expected = [np.nan, np.nan, np.nan] + [per_bar[i - 2:i + 1].sum() for i in range(3, 10)]
    assert np.array_equal(volume, expected, equal_nan=True)


def test_momentum_and_divergence_are_computed_from_the_sentiment_feature() -> None:
    items = [(f"2018-03-{d:02d}T15:00:00Z", (p, q, p - q, 0.0))
             for d, p, q in [(6, 0.4, 0.1), (7, 0.2, 0.2), (8, 0.0, 0.6), (12, 0.5, 0.0), (14, 0.1, 0.3)]]
    news = _news(items)
    net = np.zeros(len(DAYS))
    for day, (p, q, _, _) in [(f"2018-03-{d:02d}", s) for d, s in [(int(t[8:10]), sc) for t, sc in items]]:
        net[_bar(day)] = p - q
    net[0] = np.nan
    momentum = _compute("news.sentiment_momentum", news, window=3)["sentiment_momentum"]
    expected = [np.nan] * 3 + [net[i - 2:i + 1].mean() for i in range(3, len(DAYS))]
    assert np.allclose(momentum, expected, equal_nan=True)

    divergence = _compute("news.sentiment_divergence", news, window=4)["sentiment_divergence"]
    for i in range(4, len(DAYS)):
        window = net[i - 3:i + 1]
        std = window.std(ddof=1)
        assert divergence[i] == pytest.approx((net[i] - window.mean()) / (std if std > 0 else 1.0))
    assert np.isnan(divergence[:4]).all()
    raw = _compute("news.sentiment_divergence", news, normalise=False)["sentiment_divergence"]
    assert np.array_equal(raw, net, equal_nan=True)


def test_the_input_feature_takes_the_nested_sentiment_parameters() -> None:
    # After a 15:00 close, the 15:30 article counts for the next bar: momentum moves with it.
    news = _news([("2018-03-06T20:30:00Z", (0.9, 0.0, 0.9, 0.0))])
    late = _compute("news.sentiment_momentum", news, window=1)["sentiment_momentum"]
    early = _compute("news.sentiment_momentum", news, window=1,
                     sentiment={"close_time": "15:00"})["sentiment_momentum"]
    assert late[_bar("2018-03-06")] == pytest.approx(0.9) and late[_bar("2018-03-07")] == 0
    assert early[_bar("2018-03-07")] == pytest.approx(0.9) and early[_bar("2018-03-06")] == 0


@pytest.mark.parametrize("params", [
    {"close_time": "4pm"}, {"close_time": "24:00"}, {"timezone": "Mars/Olympus"}, {"scorer": "vader"},
    {"window": 0},
])
def test_bad_parameters_are_refused_with_what_to_change(params: dict) -> None:
    key = "news.volume" if "window" in params else "news.sentiment"
    with pytest.raises(InvalidInput) as info:
        feature_plugins.get(key).from_parameters(params)
    assert next(iter(params)) in str(info.value)
