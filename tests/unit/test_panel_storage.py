"""The pieces of a panel's storage: the preview read from a Parquet head, the stacked
(timestamp, symbol) frame, and the bar catalog a request key is computed from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alphaforge.features.panel_store import frame_arrays, stack_arrays, to_frame
from alphaforge.marketdata.bars import Timeframe, fingerprint
from alphaforge.storage.parquet import from_parquet_bytes, head_of_parquet, index_and_columns, to_parquet_bytes


def _piece(seed: int, n: int, start: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=n, freq="B", tz="UTC", name="timestamp")
    values = rng.normal(size=(n, 2))
    values[rng.random(n) < 0.1, 0] = np.nan
    return pd.DataFrame(values, index=index, columns=["a", "b"])


def test_head_of_parquet_is_the_first_rows_with_their_index() -> None:
    frames = [_piece(1, 300, "2020-01-01"), _piece(2, 250, "2020-03-02")]
    panel = pd.concat([f.assign(symbol=s).set_index("symbol", append=True) for f, s in zip(frames, "XY")]).sort_index()
    data = to_parquet_bytes(panel)
    pd.testing.assert_frame_equal(head_of_parquet(data, 10), from_parquet_bytes(data).head(10))
    single = to_parquet_bytes(frames[0])
    pd.testing.assert_frame_equal(head_of_parquet(single, 7), frames[0].head(7), check_freq=False)
    empty = to_parquet_bytes(frames[0].iloc[:0])
    assert head_of_parquet(empty, 10).empty and list(head_of_parquet(empty, 10).columns) == ["a", "b"]


def test_stacked_pieces_equal_pandas_concat_and_sort() -> None:
    """Overlapping and disjoint dates, symbols given out of order, one symbol in two spells."""
    frames = [_piece(3, 120, "2021-01-01"), _piece(4, 80, "2020-11-02"), _piece(5, 60, "2021-09-01"), _piece(6, 50, "2020-06-01")]
    symbols = ["MSFT", "AAPL", "MSFT", "KO"]
    expected = pd.concat([f.assign(symbol=s).set_index("symbol", append=True) for f, s in zip(frames, symbols)]).sort_index()
    stored = [index_and_columns(to_parquet_bytes(f)) for f in frames]
    for stacked in (to_frame(stack_arrays(stored, symbols)), to_frame(stack_arrays([frame_arrays(f) for f in frames], symbols))):
        pd.testing.assert_frame_equal(stacked, expected, check_index_type=False)
        assert stacked.index.names == ["timestamp", "symbol"]


def test_series_states_name_each_series_fingerprint_span_and_fields(tmp_path: Path) -> None:
    from alphaforge.bootstrap import start_context
    from alphaforge.ingestion.service import ingest_bars
    from alphaforge.settings import Settings

    ctx = start_context(Settings(data_dir=tmp_path, load_sample_data=False))
    try:
        full = _piece(7, 40, "2022-01-03").rename(columns={"a": "open", "b": "close"}).abs() + 10
        full = full.fillna(11.0).assign(high=lambda f: f[["open", "close"]].max(axis=1) + 1,
                                        low=lambda f: f[["open", "close"]].min(axis=1) - 1, volume=1000.0)
        ingest_bars(ctx, "FULL", Timeframe.DAY, full.reset_index())
        ingest_bars(ctx, "CLOSE", Timeframe.DAY, full[["close"]].reset_index())
        states = ctx.bars.series_states(["FULL", "CLOSE", "NONE"], Timeframe.DAY)
        assert set(states) == {"FULL", "CLOSE"}
        assert states["CLOSE"].fields == ("close",)
        assert set(states["FULL"].fields) == {"open", "high", "low", "close", "volume"}
        stored = ctx.bars.get_bars("FULL", Timeframe.DAY, full.index[0], full.index[-1] + pd.Timedelta(days=1))
        assert states["FULL"].fingerprint == fingerprint(stored)
        assert (states["FULL"].first_bar, states["FULL"].last_bar) == (full.index[0], full.index[-1])
        weekly = ctx.bars.series_states(["FULL"], Timeframe.WEEK)
        assert weekly["FULL"].fingerprint == states["FULL"].fingerprint  # aggregated from the daily series on read

        restated = full.iloc[[5]].assign(close=lambda f: f["open"])  # still inside [low, high]
        ingest_bars(ctx, "FULL", Timeframe.DAY, restated.reset_index())
        assert ctx.bars.series_states(["FULL"], Timeframe.DAY)["FULL"].fingerprint != states["FULL"].fingerprint
    finally:
        ctx.close()


def test_pooled_join_equals_pandas_inner_join_with_and_without_identical_rows() -> None:
    from alphaforge.storage.parquet import panel_arrays
    from alphaforge.training.pooled import _join

    frames = [_piece(8, 90, "2021-01-01"), _piece(9, 70, "2021-02-01"), _piece(10, 40, "2020-12-01")]
    panel = pd.concat([f.assign(symbol=s).set_index("symbol", append=True) for f, s in zip(frames, ["B", "A", "C"])]).sort_index()
    other = panel * 2.0 + 1.0
    same = _join([panel_arrays(to_parquet_bytes(p)) for p in (panel, other)], [["a1", "b1"], ["a2", "b2"]])
    expected = pd.concat([panel.set_axis(["a1", "b1"], axis=1), other.set_axis(["a2", "b2"], axis=1)], axis=1)
    pd.testing.assert_frame_equal(same, expected, check_index_type=False)

    fewer = other.drop(index=other.index[::7])  # rows missing from one panel: an inner join
    joined = _join([panel_arrays(to_parquet_bytes(p)) for p in (panel, fewer)], [["a1", "b1"], ["a2", "b2"]])
    expected = pd.concat([panel.set_axis(["a1", "b1"], axis=1), fewer.set_axis(["a2", "b2"], axis=1)], axis=1,
                         join="inner").sort_index()
    assert len(joined) == len(panel) - len(panel.index[::7])
    pd.testing.assert_frame_equal(joined, expected, check_index_type=False)


def test_a_views_preview_is_the_first_rows_of_its_pieces_stacked(tmp_path: Path) -> None:
    """Pieces starting on different dates, one symbol in two spells, some first rows not
    recorded: the preview reads only the heads that can hold a first row, and equals the head
    of the whole panel."""
    from types import SimpleNamespace

    from alphaforge.features import panel_store
    from alphaforge.features.generation import PREVIEW_ROWS, preview_records
    from alphaforge.storage.object_store import ObjectStore

    ctx = SimpleNamespace(objects=ObjectStore((tmp_path / "objects").as_uri()))
    starts = ["2020-01-06", "2020-01-06", "2020-01-03", "2020-03-02", "2020-01-06", "2020-01-08", "2020-01-06"]
    symbols = ["MSFT", "AAPL", "KO", "MSFT", "PG", "XOM", "JNJ"]
    frames = [_piece(10 + i, 40, start) for i, start in enumerate(starts)]
    expected = preview_records(panel_store.stack_frames(frames, symbols))
    assert len(expected) == PREVIEW_ROWS
    for known in (set(range(len(frames))), {0, 2, 3, 5}, set()):
        members = [
            panel_store.Member(sym, ctx.objects.put(f"p/{i}.parquet", to_parquet_bytes(f)), len(f),
                               f.index[0].value if i in known else None)  # UTC nanoseconds of its first row
            for i, (f, sym) in enumerate(zip(frames, symbols))
        ]
        uri = panel_store.put_view(ctx, f"v{len(known)}", members, ["a", "b"])
        read: list[str] = []
        get = ctx.objects.get
        ctx.objects.get = lambda key, get=get: read.append(key) or get(key)
        assert panel_store.preview(ctx, uri) == expected
        del ctx.objects.get
        if known == set(range(len(frames))):  # KO, then the four of 2020-01-06 (10 rows by then): XOM, MSFT's 2nd unread
            assert sorted(read) == sorted([f"v{len(known)}{panel_store.MANIFEST_SUFFIX}"] + [f"p/{i}.parquet" for i in (2, 1, 6, 0, 4)])
