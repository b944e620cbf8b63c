"""News features through the API, on both backends: a handful of ingested articles give
sentiment values only from the bar whose close they precede (after the close: the next
bar), momentum and divergence are computed from the sentiment feature cached under its
own hash, new articles make new versions, and a model trains on news + technical
features.

Expected scores are the Loughran–McDonald scorer's scores of the texts (the scorer is
checked word by word against the lexicon in tests/plugins); which bar each article
belongs to is worked out here from the New York close."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from alphaforge.marketdata.articles import article_text
from alphaforge.plugins.sentiment import get_scorer
from alphaforge.storage.parquet import from_parquet_bytes
from conftest import CreateFeature, app_client

NEWS = "/api/v1/market-data/GSPC/news"
RANGE = {"symbol": "GSPC", "start_date": "2016-02-01", "end_date": "2016-04-01"}
ARTICLES = [
    # Tue 2016-03-01 09:00 New York: before the close -> Tuesday's bar
    {"published_at": "2016-03-01T09:00:00-05:00", "headline": "Profits rise strongly as demand improves",
     "source": "wire", "url": "https://example.com/a"},
    # Tue 17:30 New York, after the close -> Wednesday's bar
    {"published_at": "2016-03-01T22:30:00Z", "headline": "Regulators open litigation over losses and fraud",
     "body": "The company may face substantial penalties; the outcome is uncertain."},
    # Fri 2016-03-04 after the close -> Monday 2016-03-07
    {"published_at": "2016-03-04T18:00:00-05:00", "headline": "Analysts expect approximately flat earnings"},
    # Mon 2016-03-07 before the close -> also Monday
    {"published_at": "2016-03-07T15:00:00Z", "headline": "Strong gains lift the index to a record"},
]
BAR_OF = ["2016-03-01", "2016-03-02", "2016-03-07", "2016-03-07"]


def _ts(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def _generate(client: TestClient, feature_id: str, body: dict | None = None) -> tuple[dict, pd.DataFrame]:
    response = client.post(f"/api/v1/features/{feature_id}/generate", json=body or RANGE)
    assert response.status_code == 200, response.text
    dataset = response.json()["dataset"]
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    return dataset, from_parquet_bytes(ctx.objects.get(ctx.objects.key_of(dataset["storage_uri"])))


@pytest.fixture(scope="module")
def ingested(client: TestClient) -> dict:
    response = client.post(NEWS, json={"articles": ARTICLES})
    assert response.status_code == 200, response.text
    return response.json()


def _expected_scores(client: TestClient) -> np.ndarray:
    scorer = get_scorer("lm", client.app.state.ctx.settings)  # type: ignore[attr-defined]
    return scorer.score([article_text(a["headline"], a.get("body")) for a in ARTICLES])


def test_sentiment_appears_from_the_bar_whose_close_the_article_precedes(
    client: TestClient, ingested: dict, create_feature: CreateFeature
) -> None:
    feature = create_feature(client, "news.sentiment")
    dataset, frame = _generate(client, feature["id"])
    assert dataset["lineage"]["news"]["scorer"].startswith("lm/")
    scores = _expected_scores(client)
    expected_counts = pd.Series(0.0, index=frame.index)
    for day in BAR_OF:
        expected_counts[_ts(day)] += 1
    assert frame["article_count"].tolist() == expected_counts.tolist()
    for k, column in enumerate(["sentiment_positive", "sentiment_negative", "sentiment_net", "sentiment_uncertainty"]):
        assert frame.loc[_ts("2016-03-01"), column] == pytest.approx(scores[0, k])
        assert frame.loc[_ts("2016-03-02"), column] == pytest.approx(scores[1, k])
        assert frame.loc[_ts("2016-03-07"), column] == pytest.approx((scores[2, k] + scores[3, k]) / 2)
        quiet = frame[column][expected_counts == 0]
        assert (quiet == 0.0).all(), "bars without news hold the documented 0.0"
    # the texts really carry sentiment, so the checks above are not about zeros
    assert scores[0, 2] > 0 and scores[1, 2] < 0 and scores[1, 3] > 0


def test_volume_counts_articles_over_the_window(client: TestClient, ingested: dict, create_feature: CreateFeature) -> None:
    feature = create_feature(client, "news.volume", {"window": 3})
    _, frame = _generate(client, feature["id"])
    assert frame.loc[_ts("2016-03-02"), "news_volume"] == 2  # Tue + Wed
    assert frame.loc[_ts("2016-03-04"), "news_volume"] == 1  # Wed, Thu, Fri
    assert frame.loc[_ts("2016-03-07"), "news_volume"] == 2
    assert frame.loc[_ts("2016-02-29"), "news_volume"] == 0


def test_momentum_and_divergence_share_the_cached_sentiment_input(
    client: TestClient, ingested: dict, create_feature: CreateFeature
) -> None:
    sentiment = create_feature(client, "news.sentiment")
    momentum = create_feature(client, "news.sentiment_momentum", {"window": 5})
    divergence = create_feature(client, "news.sentiment_divergence", {"window": 10})
    _, net_frame = _generate(client, sentiment["id"], {**RANGE, "start_date": "2016-01-01"})
    m_dataset, m_frame = _generate(client, momentum["id"])
    d_dataset, d_frame = _generate(client, divergence["id"])

    m_input = m_dataset["lineage"]["input_features"]["sentiment"]
    d_input = d_dataset["lineage"]["input_features"]["sentiment"]
    assert m_input["plugin_key"] == "news.sentiment" and m_input["parameters"]["scorer"] == "lm"
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    for entry in (m_input, d_input):
        key = f"features/_inputs/news.sentiment/GSPC/1d/{entry['version_hash']}.parquet"
        assert ctx.objects.exists(key), "the input feature is cached under its own hash"

    net = net_frame["sentiment_net"]
    expected_momentum = net.rolling(5).mean().reindex(m_frame.index)
    assert np.allclose(m_frame["sentiment_momentum"], expected_momentum)
    window = net.rolling(10)
    std = window.std().where(lambda s: s != 0, 1.0)
    expected_divergence = ((net - window.mean()) / std).reindex(d_frame.index)
    assert np.allclose(d_frame["sentiment_divergence"], expected_divergence)
    assert m_frame["sentiment_momentum"].abs().max() > 0  # the articles show up


def test_new_articles_make_new_versions_only_when_they_fall_in_range(
    fresh_client: TestClient, create_feature: CreateFeature
) -> None:
    client = fresh_client
    assert client.post(NEWS, json={"articles": ARTICLES}).status_code == 200
    momentum = create_feature(client, "news.sentiment_momentum")
    first, first_frame = _generate(client, momentum["id"])

    far = {"published_at": "2017-06-01T12:00:00Z", "headline": "Unrelated story a year later"}
    assert client.post(NEWS, json={"articles": [far]}).status_code == 200
    again = client.post(f"/api/v1/features/{momentum['id']}/generate", json=RANGE).json()
    assert again["dataset"]["version_hash"] == first["version_hash"] and again["cached"] is True

    near = {"published_at": "2016-03-10T14:00:00Z", "headline": "Bankruptcy fears deepen losses"}
    assert client.post(NEWS, json={"articles": [near]}).status_code == 200
    second, frame = _generate(client, momentum["id"])
    assert second["version_hash"] != first["version_hash"]
    assert (second["lineage"]["input_features"]["sentiment"]["version_hash"]
            != first["lineage"]["input_features"]["sentiment"]["version_hash"])
    # the new article moves momentum from its bar on (Thursday 10th, five bars), never before it
    changed = frame["sentiment_momentum"] != first_frame["sentiment_momentum"]
    assert changed[changed].index.tolist() == list(frame.index[(frame.index >= _ts("2016-03-10"))][:5])


def test_a_symbol_without_news_is_422_saying_how_to_ingest(client: TestClient, create_feature: CreateFeature) -> None:
    feature = create_feature(client, "news.sentiment")
    response = client.post(f"/api/v1/features/{feature['id']}/generate", json={**RANGE, "symbol": "IXIC"})
    assert response.status_code == 422
    assert "no news for IXIC" in response.json()["detail"] and "/market-data/IXIC/news" in response.json()["detail"]


def test_finbert_without_a_local_model_is_422_naming_the_setting(client: TestClient, create_feature: CreateFeature,
                                                                 ingested: dict) -> None:
    feature = create_feature(client, "news.sentiment", {"scorer": "finbert"})
    response = client.post(f"/api/v1/features/{feature['id']}/generate", json=RANGE)
    assert response.status_code == 422
    assert "ALPHAFORGE_FINBERT_DIR" in response.json()["detail"]


def test_a_model_trains_and_predicts_on_news_and_technical_features(
    client: TestClient, ingested: dict, create_feature: CreateFeature
) -> None:
    ids = [
        create_feature(client, "news.sentiment", name="sentiment for training")["id"],
        create_feature(client, "news.sentiment_momentum", {"window": 3})["id"],
        create_feature(client, "technical.rsi", {"period": 10})["id"],
    ]
    model = client.post("/api/v1/models", json={"name": "news", "model_type": "ridge",
                                               "family": "machine_learning"}).json()
    body = {"dataset": {"feature_ids": ids, **RANGE}, "cv": {"n_splits": 3}}
    trained = client.post(f"/api/v1/models/{model['id']}/train", json=body)
    assert trained.status_code == 200, trained.text
    assert any(c.endswith(".article_count") for c in trained.json()["feature_columns"])
    predicted = client.post(f"/api/v1/models/{model['id']}/predict", json={**RANGE, "start_date": "2016-03-01"})
    assert predicted.status_code == 200, predicted.text
    bars = client.get("/api/v1/market-data/GSPC/bars", params={"start": "2016-03-01", "end": "2016-04-01"})
    assert bars.status_code == 200, bars.text
    assert len(predicted.json()["predictions"]) == len(bars.json()["bars"])


def test_finbert_scores_feed_the_sentiment_when_a_local_model_is_configured(
    make_settings, tmp_path, create_feature: CreateFeature  # noqa: ANN001
) -> None:
    """A randomly initialised stand-in for FinBERT (the real weights cannot be downloaded
    here) saved in a local folder: the engine's values equal that model's scores."""
    from tiny_bert import write_tiny_bert

    folder = write_tiny_bert(tmp_path / "finbert")
    with app_client(make_settings(finbert_dir=folder)) as client:
        assert client.post(NEWS, json={"articles": ARTICLES}).status_code == 200
        feature = create_feature(client, "news.sentiment", {"scorer": "finbert"})
        dataset, frame = _generate(client, feature["id"])
        assert dataset["lineage"]["news"]["scorer"].startswith("finbert/")
        scorer = get_scorer("finbert", client.app.state.ctx.settings)  # type: ignore[attr-defined]
        scores = scorer.score([article_text(a["headline"], a.get("body")) for a in ARTICLES])
        assert frame.loc[_ts("2016-03-02"), "sentiment_net"] == pytest.approx(scores[1, 2], abs=1e-5)
        expected = (scores[2] + scores[3]) / 2
        assert frame.loc[_ts("2016-03-07"), "sentiment_uncertainty"] == pytest.approx(expected[3], abs=1e-5)


def test_async_generate_of_a_news_feature_runs_in_a_worker_process_and_matches_the_sync_one(
    client: TestClient, ingested: dict, create_feature: CreateFeature
) -> None:
    from test_tasks import wait_for

    feature = create_feature(client, "news.sentiment_divergence", {"window": 7})
    submitted = client.post(f"/api/v1/features/{feature['id']}/generate/async", json=RANGE)
    assert submitted.status_code == 202, submitted.text
    task = wait_for(client, submitted.json()["task_id"])
    assert task["status"] == "SUCCESS", task
    sync = client.post(f"/api/v1/features/{feature['id']}/generate", json=RANGE).json()
    assert sync["cached"] is True  # the worker stored exactly the dataset the sync call would have made
    assert sync["dataset"]["version_hash"] == task["result"]["dataset"]["version_hash"]
