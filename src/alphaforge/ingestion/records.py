"""Uploaded records, read chunk by chunk: a frame (a JSON upload, bundled data) or a CSV
file streamed from disk.

The data-quality gates read an upload one chunk of rows at a time, so an upload is never
held as one Python object per cell: a CSV is read by pyarrow one block at a time into
compact Arrow strings (pandas' ``str`` dtype, exactly what ``pandas.read_csv(dtype=str)``
gives), each chunk is converted (pyarrow's number parser and ISO 8601 first, pandas' parsers
for the rest: the values pandas alone gives), and only the converted arrays (numbers,
nanoseconds) are kept. The chunks are small so a gate running in a worker thread never
holds the GIL for long (the event loop keeps answering).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from alphaforge.errors import InvalidInput

#: Rows per chunk of a frame; a CSV chunk is one pyarrow block (about as many rows of bars).
CHUNK_ROWS = 16_384
CSV_BLOCK_BYTES = 1 << 20


class Records(Protocol):
    """Rows of an upload, column labels first, then the rows in chunks (upload order)."""

    @property
    def columns(self) -> list[Any]: ...

    def chunks(self, columns: Sequence[Any]) -> Iterator[pd.DataFrame]:
        """The rows of ``columns`` (labels from :attr:`columns`), a few thousand at a time."""
        ...


@dataclass(frozen=True)
class FrameRecords:
    frame: pd.DataFrame

    @property
    def columns(self) -> list[Any]:
        return list(self.frame.columns)

    def chunks(self, columns: Sequence[Any]) -> Iterator[pd.DataFrame]:
        selected = self.frame[list(columns)]
        for start in range(0, len(selected), CHUNK_ROWS):
            yield selected.iloc[start : start + CHUNK_ROWS]


class CsvRecords:
    """A CSV file (a path, or a seekable binary file such as an upload's spooled temporary
    file) read with pandas' rules for ``read_csv(dtype=str, keep_default_na=False,
    na_values=[""])``: every value a string, only an empty field missing, duplicate column
    names renamed ``x.1``. Every :meth:`chunks` reads the file again from its start."""

    def __init__(self, source: str | Path | BinaryIO) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._columns = self._read_header()

    @property
    def columns(self) -> list[Any]:
        return list(self._columns)

    def _rewind(self) -> str | Path | BinaryIO:
        """The source from its start: a path as it is; a file through a view of its own
        position (``_PassView``), as a reader abandoned mid-pass may still be reading ahead."""
        if isinstance(self.source, (str, Path)):
            return self.source
        return _PassView(self.source, self._lock)

    def _read_header(self) -> list[str]:
        """pandas' column names (duplicates renamed, empty ones ``Unnamed: i``)."""
        try:
            return [str(c) for c in pd.read_csv(self._rewind(), nrows=0, dtype=str).columns]
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read the CSV upload: {exc}") from None

    def _open(self) -> pacsv.CSVStreamingReader:
        """One reader per pass: pyarrow reads ahead in a background thread, so two readers
        must never share the file. The header comes back as the first row (names
        ``f0``, ``f1``, ... let every column be typed a string, whatever its header says)."""
        names = [f"f{i}" for i in range(len(self._columns))]
        return pacsv.open_csv(
            self._rewind(),
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False,
                                           autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),  # as pandas: a quoted value may span lines
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )

    def chunks(self, columns: Sequence[Any]) -> Iterator[pd.DataFrame]:
        positions = [self._columns.index(c) for c in columns]
        reader = None
        try:
            reader = self._open()
            if len(reader.schema) != len(self._columns):
                raise InvalidInput(f"cannot read the CSV upload: its header has {len(self._columns)} columns "
                                   f"or {len(reader.schema)} (a quote never closed?)")
            header = True
            for batch in reader:
                if header:  # the header row, read as data
                    batch, header = batch.slice(1), False
                frame = batch.select(positions).to_pandas()
                frame.columns = list(columns)
                yield frame
        except pa.ArrowInvalid as exc:
            if "straddl" in str(exc):  # pyarrow reads a row within one block
                raise InvalidInput(
                    f"cannot read the CSV upload: a row is longer than {CSV_BLOCK_BYTES // (1 << 20)} MiB "
                    "(or a quote is never closed)"
                ) from None
            raise InvalidInput(f"cannot read the CSV upload: {exc}") from None
        finally:
            if reader is not None:
                reader.close()


class _PassView(io.RawIOBase):
    """One pass's reads of a shared file: its own position, each read a seek and a read
    under the file's lock. pyarrow's reader reads ahead on a thread that closing it does not
    stop at once; reading the shared file's own position, an abandoned pass's last read-ahead
    moved the next pass's (rows went missing)."""

    def __init__(self, source: BinaryIO, lock: threading.Lock) -> None:
        super().__init__()
        self._source, self._lock, self._at = source, lock, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with self._lock:
            self._source.seek(self._at)
            data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        self._at += len(data)
        return len(data)


def read_csv_upload(source: str | Path | BinaryIO | bytes) -> CsvRecords:
    """An uploaded CSV (a path, a seekable binary file, or bytes) as records for a gate: the
    header is read now (a 422 when it cannot be), the rows block by block when gated."""
    return CsvRecords(io.BytesIO(source) if isinstance(source, bytes) else source)


def as_records(records: pd.DataFrame | Records) -> Records:
    return FrameRecords(records) if isinstance(records, pd.DataFrame) else records



class ColumnBuffer:
    """Parsed columns (rows of one 2D array) filled chunk after chunk, doubling its room when
    full: the values are held once, where a list of parts concatenated at the end would
    hold them twice (and leave the parts' memory fragmented in the worker thread's heap).
    Room not yet written costs no resident memory."""

    def __init__(self, n_columns: int, dtype: str, capacity: int = 1 << 16) -> None:
        self._data = np.empty((n_columns, capacity), dtype=dtype)
        self.n_rows = 0

    def append(self, *columns: np.ndarray) -> None:
        m = len(columns[0])
        if self.n_rows + m > self._data.shape[1]:
            grown = np.empty((self._data.shape[0], max(2 * self._data.shape[1], self.n_rows + m)), self._data.dtype)
            grown[:, : self.n_rows] = self._data[:, : self.n_rows]
            self._data = grown
        for row, values in zip(self._data, columns, strict=True):
            row[self.n_rows : self.n_rows + m] = values
        self.n_rows += m

    def values(self) -> np.ndarray:
        """The filled part: shape (n_columns, n_rows), each row contiguous (a view)."""
        return self._data[:, : self.n_rows]


# -- parsing a chunk's columns ---------------------------------------------------------------
_NAT = np.iinfo(np.int64).min  # NaT as int64


def _is_arrow_text(raw: pd.Series) -> bool:
    return isinstance(raw.dtype, pd.StringDtype) and raw.dtype.storage == "pyarrow"


def parse_numbers(raw: pd.Series) -> np.ndarray:
    """Uploaded numbers as float64, NaN where a value is missing or not a number: pandas'
    ``to_numeric(errors="coerce")``. CSV text goes through pyarrow's parser first (correctly
    rounded like pandas', and without holding the GIL); a chunk it refuses (spaces around a
    number, words) is left to pandas."""
    if _is_arrow_text(raw):
        try:
            return np.asarray(pc.cast(pa.array(raw), pa.float64()).to_numpy(zero_copy_only=False), dtype="float64")
        except pa.ArrowInvalid:
            pass
    return pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _utc_ns(parsed: pd.DatetimeIndex, lo: pd.Timestamp, hi: pd.Timestamp) -> np.ndarray:
    """int64 UTC ns, NaT (int64 min) outside [lo, hi] (pandas may parse a far date at a coarser unit)."""
    with np.errstate(invalid="ignore"):
        outside = np.asarray((parsed < lo) | (parsed > hi))
    if outside.any():
        parsed = parsed.where(~outside, pd.NaT)
    return np.asarray(parsed.as_unit("ns").asi8, dtype="int64")


def parse_times(raw: pd.Series, lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Uploaded times as int64 UTC nanoseconds (NaT as int64 min), and the mask of unusable
    ones (missing, unparseable, outside [lo, hi]). Datetimes are taken as they are (naive =
    UTC); anything else is read as text in any format pandas reads, each value on its own
    (``format="mixed"``), ISO 8601 tried first (the same instants, six times faster)."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(raw.dtype):
        parsed = pd.DatetimeIndex(raw)
        ns = _utc_ns(parsed.tz_localize("UTC") if parsed.tz is None else parsed.tz_convert("UTC"), lo, hi)
        return ns, ns == _NAT
    text = raw.astype("string")
    ns = _utc_ns(pd.DatetimeIndex(pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")), lo, hi)
    retry = (ns == _NAT) & text.notna().to_numpy()
    if retry.any():
        others = pd.to_datetime(text[retry], utc=True, errors="coerce", format="mixed")
        ns[retry] = _utc_ns(pd.DatetimeIndex(others), lo, hi)
    return ns, ns == _NAT
