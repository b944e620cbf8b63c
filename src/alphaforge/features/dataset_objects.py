"""Where a dataset's values are stored: an object of its own, or one row group of a bundle.

The pieces a panel task computes together are written as ONE Parquet object, a *bundle*,
one row group per piece; each piece's row names its row group as ``<object URI>#rg=<k>``.
Creating a small file costs about a millisecond on the service's disk (a request on S3),
which was more than computing and encoding a piece: a bundle of 50 pieces is one. A
dataset generated alone keeps an object of its own (a URI without a fragment).

Everything that reads, checks or deletes a dataset's values goes through here, so a bundle
part is read, downloaded and checked for loss like a whole object: a part is gone exactly
when its bundle is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from alphaforge.context import Context
from alphaforge.storage.parquet import (
    float_blocks_to_parquet,
    from_parquet_bytes,
    head_arrays,
    index_and_columns,
    row_group,
    table_index_and_columns,
    table_to_frame,
    table_to_parquet,
)

#: Between a bundle's URI and the row group a dataset is.
PART = "#rg="

PieceArrays = tuple[np.ndarray, dict[str, np.ndarray]]


def split(uri: str) -> tuple[str, int | None]:
    """The object's URI and the row group (None: the whole object)."""
    base, sep, part = uri.partition(PART)
    return (base, int(part)) if sep else (uri, None)


def object_uri(uri: str) -> str:
    return split(uri)[0]


def object_key(ctx: Context, uri: str) -> str:
    return ctx.objects.key_of(object_uri(uri))


def put_bundle(ctx: Context, key: str, parts: Sequence[tuple[pd.DatetimeIndex, list[str], np.ndarray]]) -> list[str]:
    """Write the parts (index, columns, (columns x rows) block) as one object; each part's URI."""
    uri = ctx.objects.put(key, float_blocks_to_parquet(parts))
    return [f"{uri}{PART}{k}" for k in range(len(parts))]


def exists_many(ctx: Context, uris: Sequence[str]) -> list[bool]:
    """Is each dataset's object stored? One check per object, however many parts name it."""
    keys = [object_key(ctx, uri) for uri in uris]
    distinct = list(dict.fromkeys(keys))
    found = dict(zip(distinct, ctx.objects.exists_many(distinct), strict=True))
    return [found[key] for key in keys]


def read_parquet(ctx: Context, uri: str) -> bytes:
    """The dataset as a Parquet file of its own (a bundle part is written out as one)."""
    base, part = split(uri)
    data = ctx.objects.get(ctx.objects.key_of(base))
    return data if part is None else table_to_parquet(row_group(data, part))


def read_frame(ctx: Context, uri: str) -> pd.DataFrame:
    base, part = split(uri)
    data = ctx.objects.get(ctx.objects.key_of(base))
    return from_parquet_bytes(data) if part is None else table_to_frame(row_group(data, part))


def read_arrays(ctx: Context, uris: Sequence[str]) -> list[PieceArrays]:
    """Each dataset's UTC nanosecond stamps and float64 columns; every object read once."""
    objects = {base: ctx.objects.get(ctx.objects.key_of(base)) for base in dict.fromkeys(object_uri(u) for u in uris)}
    out = []
    for uri in uris:
        base, part = split(uri)
        data = objects[base]
        out.append(index_and_columns(data) if part is None else table_index_and_columns(row_group(data, part)))
    return out


def head(ctx: Context, uri: str, rows: int, read: dict[str, bytes] | None = None) -> PieceArrays:
    """The dataset's first ``rows`` rows (``read``: objects read already, by URI; a bundle
    read for one part's head is kept there for the next)."""
    base, part = split(uri)
    data = read.get(base) if read is not None else None
    if data is None:
        data = ctx.objects.get(ctx.objects.key_of(base))
        if read is not None and part is not None:
            read[base] = data
    if part is None:
        return head_arrays(data, rows)
    stamps, columns = table_index_and_columns(row_group(data, part).slice(0, rows))
    return stamps, columns

