"""Frames to Parquet bytes and back (index preserved), the one encoding we store."""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Floats plain (each value distinct: neither a dictionary nor zstd pays; both doubled the
    write time of a panel's pieces), timestamps delta-encoded (regular steps pack to a few
    bits each: smaller than zstd's output, and a third faster to write and read), everything
    else (symbols, text) zstd with dictionary encoding."""
    block = _float_block(frame)
    if block is not None:
        return float_block_to_parquet(frame.index, frame.columns.tolist(), block)
    # One thread: pyarrow's default pool starts threads per call, which cost more than a
    # small frame's conversion.
    return _write(pa.Table.from_pandas(frame, preserve_index=True, nthreads=1))


def float_block_to_parquet(index: pd.DatetimeIndex, columns: list[str], block: np.ndarray) -> bytes:
    """``to_parquet_bytes`` of the frame ``block.T`` (float64, columns x rows) over
    ``index`` (named, no NaT), without making that frame: a computed dataset piece is
    written from its arrays. The schema (with pandas' metadata) is made once per column
    layout and the columns go over as views of the block; a frame's pandas bookkeeping
    (``from_pandas``, an Arrow-backed column index's ``tolist``, ``dtypes``) cost more
    than encoding its values."""
    return _write(_float_table(index, columns, block))


def float_blocks_to_parquet(parts: Sequence[tuple[pd.DatetimeIndex, list[str], np.ndarray]]) -> bytes:
    """Several ``float_block_to_parquet`` frames of one layout (columns, index name and
    dtype) as ONE file, each frame one row group, in order: row group ``k`` read back is
    frame ``k``. ValueError when the layouts differ or a frame has no rows."""
    if not parts or any(len(index) == 0 for index, _, _ in parts):
        raise ValueError("every part of a bundle needs rows")
    layouts = {(tuple(columns), index.name, str(index.dtype)) for index, columns, _ in parts}
    if len(layouts) != 1:
        raise ValueError(f"a bundle's parts share one layout; got {len(layouts)}")
    tables = [_float_table(*part) for part in parts]
    buffer = io.BytesIO()
    with pq.ParquetWriter(buffer, tables[0].schema, **_write_options(tables[0].schema)) as writer:
        for table in tables:
            writer.write_table(table, row_group_size=table.num_rows)  # exactly one row group each
    return buffer.getvalue()


def _float_table(index: pd.DatetimeIndex, columns: list[str], block: np.ndarray) -> pa.Table:
    schema = _schema(tuple(columns), index.name, str(index.dtype))
    arrays = [pa.array(block[i], mask=np.isnan(block[i])) for i in range(block.shape[0])]  # NaN -> null, as from_pandas
    stamps = pa.array(index.asi8, type=schema.field(index.name).type)
    return pa.Table.from_arrays([*arrays, stamps], schema=schema)


def _write(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **_write_options(table.schema))
    return buffer.getvalue()


def _write_options(schema: pa.Schema) -> dict[str, Any]:
    plain = {f.name for f in schema if pa.types.is_floating(f.type) or pa.types.is_timestamp(f.type)}
    compression = {f.name: "none" if f.name in plain else "zstd" for f in schema}
    repeating = [f.name for f in schema if f.name not in plain]
    deltas = {f.name: "DELTA_BINARY_PACKED" for f in schema if pa.types.is_timestamp(f.type)}
    return {"compression": compression, "use_dictionary": repeating, "column_encoding": deltas or None}


def row_group(data: bytes, part: int) -> pa.Table:
    """Row group ``part`` of a file (its pandas metadata kept): one frame of a bundle."""
    reader = pq.ParquetFile(pa.BufferReader(data))
    if not 0 <= part < reader.metadata.num_row_groups:
        raise IndexError(f"the file has {reader.metadata.num_row_groups} row groups, not {part + 1}")
    return reader.read_row_group(part, use_threads=False).replace_schema_metadata(reader.schema_arrow.metadata)


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    frame = _float_frame(table)
    return table.to_pandas() if frame is None else frame


def table_to_parquet(table: pa.Table) -> bytes:
    """A table (a bundle's row group) as a file of its own, encoded as every stored file is."""
    return _write(table)


def table_index_and_columns(table: pa.Table) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``index_and_columns`` of a table already read (a bundle's row group)."""
    (stamps,), columns = _table_levels_and_columns(table)
    return stamps, columns


def _float_block(frame: pd.DataFrame) -> np.ndarray | None:
    """The frame's values as (columns, rows), C-contiguous, when ``float_block_to_parquet``
    applies (float64 columns with distinct string names over a named datetime index)."""
    columns = frame.columns.tolist()  # one conversion: iterating an Arrow-backed index is slow
    if not (isinstance(frame.index, pd.DatetimeIndex) and isinstance(frame.index.name, str) and columns
            and not frame.index.hasnans
            and all(isinstance(c, str) for c in columns) and len(set(columns)) == len(columns)
            and frame.index.name not in columns and all(d == np.float64 for d in frame.dtypes.tolist())):
        return None
    return np.ascontiguousarray(frame.to_numpy().T)


@functools.lru_cache(maxsize=256)
def _schema(columns: tuple[str, ...], index_name: str, index_dtype: str) -> pa.Schema:
    empty = pd.DataFrame({c: np.empty(0, dtype="float64") for c in columns},
                         index=pd.DatetimeIndex([], dtype=index_dtype, name=index_name))
    return pa.Schema.from_pandas(empty, preserve_index=True)


def from_parquet_bytes(data: bytes) -> pd.DataFrame:
    return table_to_frame(_read(data))


def _float_frame(table: pa.Table) -> pd.DataFrame | None:
    """``table.to_pandas()`` of float64 columns over one timestamp index (every bar series
    and dataset piece), made from one (columns x rows) block: pyarrow's conversion spent
    ~0.6 ms per bar series on per-column bookkeeping. None when the table is anything else."""
    meta = table.schema.pandas_metadata
    if meta is None or len(meta.get("index_columns", ())) != 1 or not isinstance(meta["index_columns"][0], str):
        return None
    name = meta["index_columns"][0]
    if meta.get("column_indexes") not in ([], [_PLAIN_COLUMN_INDEX]):
        return None
    columns = [c for c in table.column_names if c != name]
    described = {c.get("field_name"): c.get("name") for c in meta.get("columns", ())}
    if (len(columns) != table.num_columns - 1 or len(set(columns)) != len(columns)
            or any(described.get(c) != c for c in columns) or described.get(name) != name
            or not pa.types.is_timestamp(table.schema.field(name).type)
            or not all(pa.types.is_float64(table.schema.field(c).type) for c in columns)):
        return None
    stamps = table.column(name)
    index = pd.DatetimeIndex(stamps.to_numpy(), name=name)
    if stamps.type.tz is not None:
        index = index.tz_localize("UTC").tz_convert(stamps.type.tz)
    block = np.empty((len(columns), table.num_rows), dtype="float64")
    for at, column in enumerate(columns):
        block[at] = table.column(column).to_numpy()
    return pd.DataFrame(block.T, index=index, columns=columns, copy=False)


_PLAIN_COLUMN_INDEX = {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "str",
                       "metadata": {"encoding": "UTF-8"}}


def _read(data: bytes) -> pa.Table:
    """One file from memory: ``ParquetFile`` skips the dataset layer of ``pq.read_table``
    (~0.4 ms per read, paid per bar series and per piece); a small file is decoded on this
    thread (handing its few columns to pyarrow's pool cost more than decoding them)."""
    small = len(data) < _THREADED_READ_BYTES
    return pq.ParquetFile(pa.BufferReader(data), pre_buffer=not small).read(use_threads=not small)


#: Files from this size on are decoded by pyarrow's thread pool.
_THREADED_READ_BYTES = 8 * 1024 * 1024


def columns_with_values(data: bytes) -> set[str] | None:
    """The columns holding a value other than null or NaN, from the file's footer alone (a
    bar series' fields without decoding its bars). None when the statistics cannot tell
    (none written, or a column of NaNs stored as values rather than nulls): decode it."""
    meta = pq.ParquetFile(pa.BufferReader(data)).metadata
    found: set[str] = set()
    for group in range(meta.num_row_groups):
        chunks = meta.row_group(group)
        for at in range(chunks.num_columns):
            chunk = chunks.column(at)
            if chunk.num_values == 0:
                continue
            stats = chunk.statistics
            if stats is None or not stats.has_null_count:
                return None
            if chunk.num_values - stats.null_count == 0:
                continue
            if not stats.has_min_max:  # min and max skip NaN: values, but perhaps only NaNs
                return None
            found.add(chunk.path_in_schema)
    return found


def index_and_columns(data: bytes) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A stored frame with one datetime index as arrays (UTC nanoseconds, float64 columns),
    without building a DataFrame: stacking many small frames costs mostly that."""
    (stamps,), columns = _levels_and_columns(data)
    return stamps, columns


def panel_arrays(data: bytes) -> tuple[np.ndarray, pd.Categorical, dict[str, np.ndarray]]:
    """A stored (timestamp, symbol) panel as arrays: UTC nanoseconds, symbols, float64 columns."""
    (stamps, symbols), columns = _levels_and_columns(data)
    return stamps, symbols, columns


def head_arrays(data: bytes, rows: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``index_and_columns`` of the first ``rows`` rows only (a panel's preview reads a few
    pieces' heads: without a DataFrame each, ~4x cheaper than ``head_of_parquet``)."""
    reader = pq.ParquetFile(pa.BufferReader(data))
    batch = next(reader.iter_batches(batch_size=rows), None)
    schema = reader.schema_arrow
    table = schema.empty_table() if batch is None else pa.Table.from_batches([batch])
    (stamps,), columns = _table_levels_and_columns(table.replace_schema_metadata(schema.metadata))
    return stamps, columns


def _levels_and_columns(data: bytes) -> tuple[list[Any], dict[str, np.ndarray]]:
    return _table_levels_and_columns(_read(data))


def _table_levels_and_columns(table: pa.Table) -> tuple[list[Any], dict[str, np.ndarray]]:
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
