"""Frames to Parquet bytes and back (index preserved), the one encoding we store."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    """zstd, with dictionary encoding only for the columns that repeat (symbols, text): on
    float columns it never pays (each value is distinct) and doubled the encoding time."""
    buffer = io.BytesIO()
    # One thread: pyarrow's default pool starts threads per call, which cost more than a
    # piece's conversion (a panel writes a hundred small pieces).
    table = pa.Table.from_pandas(frame, preserve_index=True, nthreads=1)
    repeating = [f.name for f in table.schema if not (pa.types.is_floating(f.type) or pa.types.is_timestamp(f.type))]
    pq.write_table(table, buffer, compression="zstd", use_dictionary=repeating)
    return buffer.getvalue()


def from_parquet_bytes(data: bytes) -> pd.DataFrame:
    return pq.read_table(pa.BufferReader(data)).to_pandas()


def index_and_columns(data: bytes) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A stored frame with one datetime index as arrays (UTC nanoseconds, float64 columns),
    without building a DataFrame: stacking many small frames costs mostly that."""
    (stamps,), columns = _levels_and_columns(data)
    return stamps, columns


def panel_arrays(data: bytes) -> tuple[np.ndarray, pd.Categorical, dict[str, np.ndarray]]:
    """A stored (timestamp, symbol) panel as arrays: UTC nanoseconds, symbols, float64 columns."""
    (stamps, symbols), columns = _levels_and_columns(data)
    return stamps, symbols, columns


def _levels_and_columns(data: bytes) -> tuple[list[Any], dict[str, np.ndarray]]:
    table = pq.read_table(pa.BufferReader(data))
    index = json.loads(table.schema.metadata[b"pandas"])["index_columns"]
    levels = []
    for name in index:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            levels.append(column.cast(pa.timestamp("ns", tz=column.type.tz)).cast(pa.int64()).to_numpy())
        else:  # labels (symbols): codes into their distinct values, not a Python string per row
            encoded = column.combine_chunks().dictionary_encode()
            levels.append(pd.Categorical.from_codes(encoded.indices.to_numpy(), encoded.dictionary.to_pylist()))
    return levels, {n: table.column(n).to_numpy().astype("float64", copy=False) for n in table.column_names if n not in index}


def head_of_parquet(data: bytes, rows: int) -> pd.DataFrame:
    """The first ``rows`` rows (index restored) without decoding the rest: a preview of a
    big stored frame."""
    reader = pq.ParquetFile(pa.BufferReader(data))
    batch = next(reader.iter_batches(batch_size=rows), None)
    schema = reader.schema_arrow
    table = schema.empty_table() if batch is None else pa.Table.from_batches([batch]).replace_schema_metadata(schema.metadata)
    return table.to_pandas()
