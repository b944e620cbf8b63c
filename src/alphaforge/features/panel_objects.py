"""Which objects a stored panel is: its manifest (a view over per-symbol pieces) or its one
Parquet file (computed across symbols), and the stacked copy a view's download makes. Kept
apart from ``panel_store`` so that deleting a feature (``definitions``) can name them
without importing how panels are read."""

from __future__ import annotations

from alphaforge.context import Context

MANIFEST_SUFFIX = ".pieces.json"
STACKED_SUFFIX = ".stacked.parquet"


def is_view(uri: str) -> bool:
    return uri.endswith(MANIFEST_SUFFIX)


def stacked_key(ctx: Context, uri: str) -> str:
    """Where a view's stacked copy goes: its pieces as one Parquet file, made once asked for."""
    return ctx.objects.key_of(uri).removesuffix(MANIFEST_SUFFIX) + STACKED_SUFFIX
