"""The document a dataset's version hash is computed from (and an input feature's cache key):
what computed it (plugin key, code version, resolved parameters, library versions) and what
it was computed over (symbol, timeframe, span, the bars' fingerprint, every other source's
fingerprint). Canonical JSON of it, SHA-256, is the hash (``hashing.content_hash``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from alphaforge.marketdata.bars import fingerprint
from alphaforge.plugins.features import FeaturePlugin


def identity_document(
    schema: str, plugin: FeaturePlugin, symbol: str, timeframe: str, bars: pd.DataFrame,
    span: dict[str, Any], sources: dict[str, Any], bars_fingerprint: str | None = None,
) -> dict[str, Any]:
    """``span`` says which bars (e.g. start, end and warm-up); ``sources`` holds the other
    inputs' lineage entries (macro, fundamentals, news, input features);
    ``bars_fingerprint``: ``fingerprint(bars)``, when the bar provider knew it already."""
    return {
        "schema": schema,
        "plugin_key": plugin.key,
        "plugin_version": plugin.version,
        "parameters": plugin.resolved_parameters(),
        "libraries": plugin.library_versions(),
        "symbol": symbol,
        "timeframe": timeframe,
        **span,
        "source_fingerprint": bars_fingerprint or fingerprint(bars),
        **sources,
    }
