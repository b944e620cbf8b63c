"""What every fault test checks after the fact: what clients saw, and what was stored."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
from sqlalchemy import select

from alphaforge.features import dataset_objects, panel_store
from alphaforge.storage.tables import BarSeries, FeatureDataset, FeaturePanel

RSI = {"type": "technical", "plugin_key": "technical.rsi"}
RANGE_2010 = {"symbol": "GSPC", "start_date": "2010-01-01", "end_date": "2011-01-01"}


def assert_dependency_503(response: httpx.Response, dependency: str, forbidden: list[str]) -> None:
    """A 503 that names ``dependency``, and none of the strings that locate it."""
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "dependency_unavailable" and body["dependency"] == dependency, body
    assert body["detail"].startswith(f"{dependency} unavailable: "), body
    assert response.headers["X-Request-ID"] == body["request_id"]
    assert_no_internals(response, forbidden)


def assert_no_internals(response: httpx.Response, forbidden: list[str]) -> None:
    """No forbidden string in the body; the random request id is left out of the search
    (a hex id contains a port number like 59199 once in a while)."""
    text = response.text
    request_id = response.headers.get("X-Request-ID")
    if request_id:
        text = text.replace(request_id, "<request id>")
    for secret in forbidden:
        assert secret not in text, f"the body names {secret!r}: {text}"


def assert_nothing_half_written(ctx: Any, *, bars: bool = True) -> dict[str, int]:
    """No dataset, panel (with every piece it names) or bar series row points at an object
    that is not stored, and no dataset identity (feature, version hash) is stored twice.
    Returns row counts."""
    with ctx.db.session() as session:
        datasets = list(session.scalars(select(FeatureDataset)))
        panels = list(session.scalars(select(FeaturePanel)))
        series = list(session.scalars(select(BarSeries))) if bars else []
    missing = [d.storage_uri for d, there in zip(datasets, dataset_objects.exists_many(ctx, [d.storage_uri for d in datasets])) if not there]
    missing += [p.storage_uri for p in panels if not panel_store.all_stored(ctx, p.storage_uri)]
    missing += [s.storage_uri for s in series if not ctx.objects.exists(ctx.objects.key_of(s.storage_uri))]
    assert missing == [], f"rows point at objects that are not stored: {missing}"
    identities = Counter((d.feature_id, d.version_hash) for d in datasets)
    assert [i for i, n in identities.items() if n > 1] == []
    return {"datasets": len(datasets), "bar_series": len(series)}
