"""The one stored encoding: every frame comes back as it went in, whichever way it was
converted (the float short cut of ``to_parquet_bytes`` or pyarrow's ``from_pandas``), and
floats are stored plain while timestamps and labels are compressed."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alphaforge.storage.parquet import columns_with_values, from_parquet_bytes, index_and_columns, to_parquet_bytes


def _frame(tz: str | None, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    index = pd.date_range("2001-01-01", periods=n, freq="D", tz=tz, name="timestamp")
    values = rng.normal(size=(n, 3))
    values[:25, 0] = np.nan
    values[rng.random(n) < 0.05, 2] = np.nan
    return pd.DataFrame(values, index=index, columns=["sma_5", "rsi_14", "x"])


def _reference(frame: pd.DataFrame) -> bytes:
    """pyarrow's own conversion, written the default way: the oracle for what the file holds."""
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=True), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("tz", ["UTC", None, "America/New_York"])
def test_float_frames_read_back_equal_to_pyarrows_own_conversion(tz: str | None) -> None:
    frame = _frame(tz)
    ours, theirs = pq.read_table(io.BytesIO(to_parquet_bytes(frame))), pq.read_table(io.BytesIO(_reference(frame)))
    assert ours.equals(theirs, check_metadata=True)  # schema, pandas metadata, nulls where NaN
    pd.testing.assert_frame_equal(from_parquet_bytes(to_parquet_bytes(frame)), frame, check_freq=False)
    stamps, columns = index_and_columns(to_parquet_bytes(frame))
    assert (stamps == frame.index.as_unit("ns").asi8).all()
    for name in frame.columns:
        np.testing.assert_array_equal(columns[name], frame[name].to_numpy())


def test_frames_outside_the_short_cut_keep_every_column_and_index() -> None:
    base = _frame("UTC", 50)
    mixed = base.assign(label=["a", "b"] * 25, count=np.arange(50))
    panel = pd.concat([base.assign(symbol=s) for s in ("AAA", "BBB")]).set_index("symbol", append=True).sort_index()
    non_contiguous = base.iloc[::2]
    int_named = base.set_axis([0, 1, 2], axis=1)
    with_nat = base.set_axis(base.index.where(np.arange(50) != 3), axis=0)  # a missing timestamp stays missing
    for frame in (mixed, panel, non_contiguous, int_named, with_nat, base.iloc[:0]):
        pd.testing.assert_frame_equal(from_parquet_bytes(to_parquet_bytes(frame)), frame, check_freq=False)


def test_floats_are_plain_timestamps_delta_encoded_and_the_rest_compressed() -> None:
    frame = _frame("UTC").assign(symbol="AAA").set_index("symbol", append=True)
    meta = pq.ParquetFile(io.BytesIO(to_parquet_bytes(frame))).metadata.row_group(0)
    codecs = {meta.column(i).path_in_schema: meta.column(i).compression for i in range(meta.num_columns)}
    assert codecs == {"sma_5": "UNCOMPRESSED", "rsi_14": "UNCOMPRESSED", "x": "UNCOMPRESSED",
                      "timestamp": "UNCOMPRESSED", "symbol": "ZSTD"}
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert "DELTA_BINARY_PACKED" in encodings["timestamp"]
    assert any("DICTIONARY" in e for e in encodings["symbol"])


@pytest.mark.parametrize("tz", ["UTC", None, "America/New_York"])
def test_float_frames_read_back_as_pyarrows_own_to_pandas(tz: str | None) -> None:
    """``from_parquet_bytes`` builds float frames itself: the same frame, dtypes and index
    as ``Table.to_pandas`` (the oracle), for our files and pyarrow's default ones."""
    base = _frame(tz)
    lacking = base.assign(x=np.nan)  # a field missing throughout (close-only bars): all nulls
    for frame in (base, lacking, base[["rsi_14"]], base.iloc[:0]):
        for data in (to_parquet_bytes(frame), _reference(frame)):
            expected = pq.read_table(io.BytesIO(data)).to_pandas()
            got = from_parquet_bytes(data)
            pd.testing.assert_frame_equal(got, expected, check_exact=True)
            assert got.index.dtype == expected.index.dtype and got.columns.dtype == expected.columns.dtype
            assert got.index.name == expected.index.name and got.columns.name == expected.columns.name


def test_the_columns_with_values_are_read_from_the_footer_or_not_at_all() -> None:
    """A bar series' fields from its footer: the same as decoding it (``present_fields``),
    and None (decode it) where NaNs were stored as values, which statistics cannot tell."""
    from alphaforge.marketdata.bars import BAR_COLUMNS, present_fields

    index = pd.date_range("2001-01-01", periods=300, freq="D", tz="UTC", name="timestamp")
    rng = np.random.default_rng(3)
    full = pd.DataFrame(rng.random((300, len(BAR_COLUMNS))), index=index, columns=list(BAR_COLUMNS))
    close_only = full.assign(**{c: np.nan for c in BAR_COLUMNS if c != "close"})
    gappy = full.assign(volume=np.where(rng.random(300) < 0.9, np.nan, full["volume"]))
    for frame in (full, close_only, gappy, full.iloc[:0]):
        found = columns_with_values(to_parquet_bytes(frame))
        assert found is not None
        assert tuple(c for c in BAR_COLUMNS if c in found) == present_fields(frame)
    nan_values = pa.table({"close": pa.array(np.full(3, np.nan), from_pandas=False), "open": [1.0, 2.0, 3.0]})
    buffer = io.BytesIO()
    pq.write_table(nan_values, buffer)
    assert columns_with_values(buffer.getvalue()) is None


@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_a_piece_written_from_its_arrays_holds_what_pyarrow_writes_for_its_frame(tz: str) -> None:
    """A computed piece goes to Parquet from its (columns x rows) block without a DataFrame;
    the file must hold what pyarrow's own conversion of that frame holds (NaN as null), and
    a piece with a missing timestamp takes the frame path and keeps it missing."""
    from alphaforge.features.generation import Values

    frame = _frame(tz)
    values = Values(frame.index, list(frame.columns), np.ascontiguousarray(frame.to_numpy().T))
    ours, theirs = pq.read_table(io.BytesIO(values.parquet())), pq.read_table(io.BytesIO(_reference(frame)))
    assert ours.equals(theirs, check_metadata=True)
    pd.testing.assert_frame_equal(values.frame(), frame)
    with_nat = frame.index.where(np.arange(len(frame)) != 3)
    missing = Values(with_nat, values.columns, values.block)
    pd.testing.assert_frame_equal(from_parquet_bytes(missing.parquet()), frame.set_axis(with_nat, axis=0), check_freq=False)
