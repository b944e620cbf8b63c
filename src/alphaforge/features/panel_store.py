"""How a panel's values are stored and read back.

A panel of a per-symbol feature is a *view over its pieces*: its object is a small JSON
manifest naming each member's stored dataset (symbol, object URI, rows), and its values
are those datasets stacked with a ``symbol`` level, sorted by (timestamp, symbol), when
read. The pieces are already stored (they are the cache unit); writing them a second time
as one big object doubled a cold panel build's writes and made it wait, in one process, for
every piece to be read back, stacked and written (the slowest step of a 100-symbol build).
A cross-sectional panel is computed across symbols, not made of pieces: its object is the
stacked Parquet frame itself. Readers do not care which: every function here takes the
panel's URI and tells the two apart by the manifest's suffix.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.context import Context
from alphaforge.features import dataset_objects
from alphaforge.features.generation import PREVIEW_ROWS
from alphaforge.features.panel_objects import MANIFEST_SUFFIX, is_view, stacked_key
from alphaforge.marketdata.bars import frame_to_records
from alphaforge.plugins.features.cross_section import SYMBOL, TIMESTAMP
from alphaforge.storage.object_store import ObjectNotFound
from alphaforge.storage.parquet import head_of_parquet, panel_arrays, to_parquet_bytes

MANIFEST_SCHEMA = "alphaforge.panel-pieces/1"

#: UTC nanosecond stamps, symbols, float64 columns, row for row.
PanelArrays = tuple[np.ndarray, pd.Categorical, dict[str, np.ndarray]]
#: One piece's UTC nanosecond stamps and float64 columns.
PieceArrays = tuple[np.ndarray, dict[str, np.ndarray]]


@dataclass(frozen=True)
class Member:
    """One stored piece a view names."""

    symbol: str
    storage_uri: str
    rows: int
    #: UTC nanoseconds of its first row (None: not known when the view was written).
    first: int | None = None


def put_view(ctx: Context, key_stem: str, members: Sequence[Member], columns: list[str]) -> str:
    """Write the manifest (``key_stem`` + suffix); its URI. The pieces must be stored already."""
    doc = {
        "schema": MANIFEST_SCHEMA,
        "columns": columns,
        "pieces": [{"symbol": m.symbol, "storage_uri": m.storage_uri, "rows": m.rows, "first": m.first}
                   for m in members],
    }
    return ctx.objects.put(key_stem + MANIFEST_SUFFIX, json.dumps(doc, separators=(",", ":")).encode())


def put_frame(ctx: Context, key_stem: str, frame: pd.DataFrame) -> str:
    """Write a panel computed across symbols as one Parquet object; its URI."""
    return ctx.objects.put(key_stem + ".parquet", to_parquet_bytes(frame))


def members(ctx: Context, uri: str) -> list[Member]:
    doc = json.loads(ctx.objects.get(ctx.objects.key_of(uri)))
    return [Member(p["symbol"], p["storage_uri"], int(p["rows"]), p.get("first")) for p in doc["pieces"]]


def all_stored(ctx: Context, uri: str) -> bool:
    """The panel's object and, for a view, every piece it names (a hit must be readable:
    a piece lost from the object store makes the panel a miss, computed again)."""
    key = ctx.objects.key_of(uri)
    if not ctx.objects.exists(key):
        return False
    return not is_view(uri) or all(dataset_objects.exists_many(ctx, [m.storage_uri for m in members(ctx, uri)]))


def read_arrays(ctx: Context, uri: str) -> PanelArrays:
    if not is_view(uri):
        return panel_arrays(ctx.objects.get(ctx.objects.key_of(uri)))
    stored = members(ctx, uri)
    return stack_arrays(dataset_objects.read_arrays(ctx, [m.storage_uri for m in stored]), [m.symbol for m in stored])


def read_frame(ctx: Context, uri: str) -> pd.DataFrame:
    return to_frame(read_arrays(ctx, uri))


def stored_parquet(ctx: Context, uri: str) -> bytes | None:
    """The panel as one Parquet file (columns timestamp, symbol and the feature's outputs)
    when stored: a computed panel's object, a view's stacked copy (None: not made yet)."""
    if not is_view(uri):
        return ctx.objects.get(ctx.objects.key_of(uri))
    try:
        return ctx.objects.get(stacked_key(ctx, uri))
    except ObjectNotFound:
        return None


def stack(ctx: Context, uri: str) -> None:
    """Write a view's stacked copy: every piece read, sorted and encoded (seconds for a big
    panel: a task worker's job, not the API's)."""
    ctx.objects.put(stacked_key(ctx, uri), to_parquet_bytes(read_frame(ctx, uri)))


def preview(ctx: Context, uri: str) -> list[dict[str, Any]]:
    """The first rows (by timestamp, then symbol). A view's are among the first rows of the
    pieces that start earliest: heads are read in (first row, symbol) order until no later
    piece can hold one of them (10 reads of a 100-symbol panel instead of 100)."""
    if not is_view(uri):
        return frame_to_records(head_of_parquet(ctx.objects.get(ctx.objects.key_of(uri)), PREVIEW_ROWS))
    return _preview([(m, None) for m in members(ctx, uri)], ctx)


def batch_preview(ctx: Context, pieces: Sequence[tuple[Member, PieceArrays | None]]) -> list[dict[str, Any]]:
    """``preview`` of a batch of pieces, from the values at hand (a piece's first
    ``PREVIEW_ROWS`` rows, None: read its head). A panel's preview is the first rows of its batches' (``merge_previews``): the
    task workers make them in parallel, and the panel's assembly reads no piece back."""
    return _preview(pieces, ctx)


def merge_previews(previews: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The first rows of several batches' previews: every panel row among the first
    ``PREVIEW_ROWS`` is among the first of its own batch."""
    rows = [row for rows in previews for row in rows]
    return sorted(rows, key=lambda r: (pd.Timestamp(r[TIMESTAMP]), r[SYMBOL]))[:PREVIEW_ROWS]


def _preview(pieces: Sequence[tuple[Member, PieceArrays | None]], ctx: Context) -> list[dict[str, Any]]:
    order = sorted(pieces, key=lambda p: (p[0].first is not None, p[0].first or 0, p[0].symbol))
    heads: list[PieceArrays] = []
    symbols: list[str] = []
    smallest: list[tuple[int, str]] = []  # the (timestamp, symbol) keys of the rows kept so far
    bundles: dict[str, bytes] = {}
    for m, head in order:
        if len(smallest) == PREVIEW_ROWS and m.first is not None and (m.first, m.symbol) > smallest[-1]:
            break
        if head is None:
            head = dataset_objects.head(ctx, m.storage_uri, PREVIEW_ROWS, bundles)
        heads.append(head)
        symbols.append(m.symbol)
        smallest = sorted(smallest + [(int(t), m.symbol) for t in head[0]])[:PREVIEW_ROWS]
    stamps, labels, columns = stack_arrays(heads, symbols)
    first = (stamps[:PREVIEW_ROWS], labels[:PREVIEW_ROWS], {c: v[:PREVIEW_ROWS] for c, v in columns.items()})
    return frame_to_records(to_frame(first))


def frame_arrays(frame: pd.DataFrame) -> PieceArrays:
    """A single-symbol frame's UTC nanosecond stamps and float64 columns."""
    stamps = pd.DatetimeIndex(frame.index).as_unit("ns").asi8
    return stamps, {c: frame[c].to_numpy(dtype="float64") for c in frame.columns}


def stack_frames(frames: list[pd.DataFrame], symbols: list[str]) -> pd.DataFrame:
    return to_frame(stack_arrays([frame_arrays(f) for f in frames], symbols))


def stack_arrays(pieces: list[PieceArrays], symbols: list[str]) -> PanelArrays:
    """The pieces as one panel, sorted by timestamp then symbol: arrays joined once (a
    frame per piece costs more than its data)."""
    names = sorted(set(symbols))
    stamps = np.concatenate([s for s, _ in pieces]) if pieces else np.empty(0, dtype=np.int64)
    codes = np.concatenate([np.full(len(s), names.index(sym), dtype=np.int64)
                            for (s, _), sym in zip(pieces, symbols, strict=True)]) if pieces else stamps
    order = np.lexsort((codes, stamps))
    columns = list(pieces[0][1]) if pieces else []
    values = {c: np.concatenate([cols[c] for _, cols in pieces])[order] for c in columns}
    return stamps[order], pd.Categorical.from_codes(codes[order], names), values


def to_frame(arrays: PanelArrays) -> pd.DataFrame:
    stamps, symbols, columns = arrays
    index = pd.MultiIndex.from_arrays(
        [pd.DatetimeIndex(stamps, tz="UTC").as_unit("ns"), pd.Index(symbols.categories).take(symbols.codes)],
        names=[TIMESTAMP, SYMBOL],
    )
    return pd.DataFrame(columns, index=index, columns=list(columns))
