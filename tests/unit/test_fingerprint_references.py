"""The bar and point-in-time fingerprints against independent encodings written here with
``struct`` from their documented layouts (not with the code's numpy path)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.ingestion.bars import parse_bars_upload
from alphaforge.marketdata.bars import fingerprint
from alphaforge.marketdata.pit import PitSeries
from alphaforge.ingestion.bundled import sample_bars
from references import bars_fingerprint, pit_fingerprint


def test_bar_fingerprint_matches_its_layout_on_the_real_bars() -> None:
    frame, report = parse_bars_upload(sample_bars("GSPC"))
    assert report.ok
    for part in (frame.iloc[:1], frame.loc["2008-09-01":"2008-12-31"], frame):
        assert fingerprint(part) == bars_fingerprint(part)


NS = st.integers(min_value=-(2**62), max_value=2**62)
VALUES = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 1.5])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(NS, NS, VALUES), max_size=30), st.randoms(use_true_random=False))
def test_pit_fingerprint_matches_its_layout_in_any_order(records: list[tuple[int, int, float]], rng) -> None:
    shuffled = list(records)
    rng.shuffle(shuffled)
    series = PitSeries(
        np.array([r[0] for r in shuffled], dtype="int64"),
        np.array([r[1] for r in shuffled], dtype="int64"),
        np.array([r[2] for r in shuffled], dtype="float64"),
    )
    assert series.fingerprint() == pit_fingerprint(records)
