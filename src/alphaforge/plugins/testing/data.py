"""Data the conformance checks share: the real GSPC daily bars bundled with arch."""

from __future__ import annotations

from functools import cache

import pandas as pd

from alphaforge.ingestion.bars import parse_bars_upload
from alphaforge.ingestion.bundled import sample_bars


@cache
def gspc_bars() -> pd.DataFrame:
    """The S&P 500 daily bars (1999–2018) through the quality gate, parsed once per
    process. Shared by every check: slice or copy it, never change it in place."""
    frame, report = parse_bars_upload(sample_bars("GSPC"))
    if not report.ok:
        raise AssertionError(f"the bundled GSPC bars fail the quality gate: {report}")
    return frame
