"""Uploaded records read chunk by chunk: a CSV streamed with pyarrow must give exactly what
``pandas.read_csv(dtype=str, keep_default_na=False, na_values=[""])`` gives (pandas is the
reference here), block after block; the gate helpers describe only the first bad rows."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaforge.errors import InvalidInput
from alphaforge.ingestion import records as records_module
from alphaforge.ingestion.gate import FirstValues, find_bad_rows, first_true
from alphaforge.ingestion.records import FrameRecords, read_csv_upload

TRICKY = {
    "bom and crlf": "\ufefftimestamp,open\r\n2020-01-02,1\r\n2020-01-03,\r\n",
    "quoted newline, comma and quote": 'a,"b\nc",d\n"x\ny","1,5","say ""hi"""\n,,\n',
    "duplicate and empty names": "a,a,,b\n1,2,3,4\n5,,7,8\n",
    "blank lines": "\n\na,b\n\n1,2\n\n3,4\n",
    "not-missing words and spaces": "a,b\nNA, null \nnan,NaT\n",
    "quoted empty": 'a,b\n"",1\n',
}


def _pandas(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""])


def _streamed(source: object) -> pd.DataFrame:
    records = read_csv_upload(source)  # type: ignore[arg-type]
    return pd.concat(list(records.chunks(records.columns)), ignore_index=True)


@pytest.mark.parametrize("text", TRICKY.values(), ids=TRICKY.keys())
def test_csv_reads_as_pandas_does(text: str) -> None:
    data = text.encode()
    expected = _pandas(data)
    got = _streamed(data)
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got, expected)


def test_csv_is_read_block_by_block_from_a_file_and_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records_module, "CSV_BLOCK_BYTES", 4096)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"ts": [f"2020-01-01T{h % 24:02d}:00:00Z" for h in range(5000)],
                          "x": rng.normal(size=5000).astype(str), "note": ['a "quoted", text'] * 5000})
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    records = read_csv_upload(path)
    chunks = list(records.chunks(["x", "ts"]))
    assert len(chunks) > 10, "a 4 KiB block holds a few dozen rows"
    got = pd.concat(chunks, ignore_index=True)
    assert list(got.columns) == ["x", "ts"]
    pd.testing.assert_frame_equal(got, _pandas(path.read_bytes())[["x", "ts"]])
    with open(path, "rb") as handle:  # a seekable file: every read starts at the beginning
        from_handle = read_csv_upload(handle)
        abandoned = from_handle.chunks(["note"])
        next(abandoned)
        abandoned.close()  # its reader is closed: it reads the file no more
        first = pd.concat(list(from_handle.chunks(["note"])), ignore_index=True)
        again = pd.concat(list(from_handle.chunks(["note"])), ignore_index=True)
    assert first.equals(again) and len(first) == 5000


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "cannot read the CSV upload: No columns to parse"),
        (b"a,b\n1,2,3\n", "Expected 2 columns, got 3"),
        (b"a,b\n1\n", "Expected 2 columns, got 1"),
        (b"a,b\n\xe9,1\n", "invalid UTF8"),
    ],
    ids=["empty", "long row", "short row", "not utf-8"],
)
def test_unreadable_csv_is_a_422(data: bytes, expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected):
        _streamed(data)


def test_a_row_longer_than_a_block_is_a_422(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records_module, "CSV_BLOCK_BYTES", 1024)
    with pytest.raises(InvalidInput, match="a row is longer than"):
        _streamed(b"a,b\n1," + b"x" * 5000 + b"\n")


def test_frame_records_come_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records_module, "CHUNK_ROWS", 3)
    frame = pd.DataFrame({"a": range(10), "b": list("abcdefghij")})
    chunks = list(FrameRecords(frame).chunks(["b"]))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    assert pd.concat(chunks)["b"].tolist() == list("abcdefghij")


def test_only_the_first_bad_rows_are_described() -> None:
    n = 1_000_000
    every_third = np.arange(n) % 3 == 2
    last = np.zeros(n, dtype=bool)
    last[-1] = True
    described, n_bad = find_bad_rows(n, [(every_third, "third"), (last, lambda i: f"last is {i}")], limit=4)
    assert n_bad == n // 3 + (0 if (n - 1) % 3 == 2 else 1)
    assert described == [(2, ["third"]), (5, ["third"]), (8, ["third"]), (11, ["third"])]
    tail, count = find_bad_rows(n, [(last, lambda i: f"last is {i}")], limit=20)
    assert tail == [(n - 1, [f"last is {n - 1}"])] and count == 1
    assert first_true(every_third, 2, block=4) == [2, 5]


def test_first_values_keep_the_first_offered_rows_across_chunks() -> None:
    kept = FirstValues(limit=3)
    kept.offer(0, np.array([False, True]), pd.Series(["a", "b"]))
    kept.offer(2, np.array([True, True, True]), pd.Series(["c", "d", "e"]))
    assert kept.values == {1: "b", 2: "c", 3: "d"}
