"""Alpha158 in the expression language: 157 features (Qlib's 158 less VWAP0), each parses,
and a handful match a direct pandas computation of Qlib's definition, per symbol, with full
windows (our deliberate difference from Qlib's min_periods=1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alphaforge.expressions import PanelData, canonical, evaluate, fields_of, parse, warmup
from alphaforge.expressions.alpha158 import ALPHA158, WINDOWS, alpha158

DAY = 86_400_000_000_000
FIELDS = ("open", "high", "low", "close", "volume")
FAMILIES = [
    "ROC", "MA", "STD", "BETA", "RSQR", "RESI", "MAX", "MIN", "QTLU", "QTLD", "RANK", "RSV", "IMAX", "IMIN", "IMXD",
    "CORR", "CORD", "CNTP", "CNTN", "CNTD", "SUMP", "SUMN", "SUMD", "VMA", "VSTD", "WVMA", "VSUMP", "VSUMN", "VSUMD",
]


def make_panel() -> PanelData:
    """Two symbols on different calendars (B starts later and skips days), 90 and 75 bars,
    each with a few unchanged closes."""
    rng = np.random.default_rng(7)
    calendars = {"A": np.arange(90), "B": np.sort(rng.choice(np.arange(10, 120), 75, replace=False))}
    stamps, fields = [], {f: [] for f in FIELDS}
    for days in calendars.values():
        n = len(days)
        close = 30 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        close[40:43] = close[39]  # unchanged closes (a halted stock): neither an up nor a down bar
        open_ = close * np.exp(rng.normal(0, 0.01, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.01, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.01, n)))
        volume = np.round(rng.lognormal(12, 0.5, n))
        stamps.append(days * DAY)
        for name, values in zip(FIELDS, (open_, high, low, close, volume)):
            fields[name].append(values)
    return PanelData.from_arrays(list(calendars), stamps, fields)


PANEL = make_panel()


def rolling_apply(s: pd.Series, d: int, fn) -> pd.Series:
    return s.rolling(d, min_periods=d).apply(fn, raw=True)


def line(w: np.ndarray):
    return stats.linregress(np.arange(1, len(w) + 1), w)


#: Qlib's definition of each feature, computed directly with pandas on one symbol's frame.
REFERENCE = {
    "KMID": lambda b: (b.close - b.open) / b.open,
    "KUP2": lambda b: (b.high - np.maximum(b.open, b.close)) / (b.high - b.low + 1e-12),
    "KSFT": lambda b: (2 * b.close - b.high - b.low) / b.open,
    "LOW0": lambda b: b.low / b.close,
    "ROC5": lambda b: b.close.shift(5) / b.close,
    "MA20": lambda b: b.close.rolling(20, min_periods=20).mean() / b.close,
    "STD20": lambda b: b.close.rolling(20, min_periods=20).std() / b.close,
    "BETA20": lambda b: rolling_apply(b.close, 20, lambda w: line(w).slope) / b.close,
    "RSQR20": lambda b: rolling_apply(b.close, 20, lambda w: line(w).rvalue ** 2),
    "RESI20": lambda b: rolling_apply(b.close, 20, lambda w: w[-1] - line(w).intercept - line(w).slope * 20) / b.close,
    "QTLU20": lambda b: rolling_apply(b.close, 20, lambda w: np.quantile(w, 0.8)) / b.close,
    "RANK20": lambda b: rolling_apply(b.close, 20, lambda w: stats.percentileofscore(w, w[-1]) / 100),
    "RSV10": lambda b: (b.close - b.low.rolling(10).min()) / (b.high.rolling(10).max() - b.low.rolling(10).min() + 1e-12),
    "CORR20": lambda b: b.close.rolling(20, min_periods=20).corr(np.log(b.volume + 1)),
    "CORD10": lambda b: (b.close / b.close.shift(1)).rolling(10).corr(np.log(b.volume / b.volume.shift(1) + 1)),
    "IMAX20": lambda b: rolling_apply(b.high, 20, lambda w: w.argmax() + 1) / 20,
    "IMXD30": lambda b: (rolling_apply(b.high, 30, lambda w: w.argmax() + 1)
                         - rolling_apply(b.low, 30, lambda w: w.argmin() + 1)) / 30,
    "CNTP20": lambda b: (b.close > b.close.shift(1)).astype(float).where(b.close.shift(1).notna()).rolling(20).mean(),
    "SUMP20": lambda b: (b.close - b.close.shift(1)).clip(lower=0).rolling(20).sum()
    / ((b.close - b.close.shift(1)).abs().rolling(20).sum() + 1e-12),
    "VSUMD5": lambda b: ((b.volume - b.volume.shift(1)).clip(lower=0).rolling(5).sum()
                         - (b.volume.shift(1) - b.volume).clip(lower=0).rolling(5).sum())
    / ((b.volume - b.volume.shift(1)).abs().rolling(5).sum() + 1e-12),
    "VSTD10": lambda b: b.volume.rolling(10).std() / (b.volume + 1e-12),
    "WVMA20": lambda b: ((b.close / b.close.shift(1) - 1).abs() * b.volume).rolling(20).std()
    / (((b.close / b.close.shift(1) - 1).abs() * b.volume).rolling(20).mean() + 1e-12),
    "MA60": lambda b: b.close.rolling(60, min_periods=60).mean() / b.close,
}


def test_157_features_in_qlibs_order() -> None:
    names = list(ALPHA158)
    assert len(names) == 157 == len(set(names))
    assert names[:12] == ["KMID", "KLEN", "KMID2", "KUP", "KUP2", "KLOW", "KLOW2", "KSFT", "KSFT2", "OPEN0", "HIGH0", "LOW0"]
    assert names[12:] == [f"{family}{d}" for family in FAMILIES for d in WINDOWS]
    assert "VWAP0" not in names  # no vwap field: the one deliberate omission


def test_every_feature_parses_and_reads_bar_fields_only() -> None:
    exprs = alpha158()
    for name, expr in exprs.items():
        assert parse(canonical(expr)) == expr, name
        assert fields_of(expr) <= {"open", "high", "low", "close", "volume"}
    assert warmup(exprs["KMID"]) == 0 and warmup(exprs["ROC60"]) == 60 and warmup(exprs["MA60"]) == 59
    assert warmup(exprs["CORD60"]) == 60 and warmup(exprs["SUMP5"]) == 5 and warmup(exprs["IMXD30"]) == 29


def test_all_features_evaluate_with_values_after_warmup() -> None:
    exprs = alpha158()
    out = evaluate(exprs, PANEL)
    for name, expr in exprs.items():
        bars = warmup(expr)
        assert np.isnan(out[name][PANEL.bar_numbers < bars]).all(), name
        assert np.isfinite(out[name][PANEL.bar_numbers >= bars]).all(), name


@pytest.mark.parametrize("name", list(REFERENCE))
def test_feature_matches_qlibs_definition(name: str) -> None:
    expected = []
    for symbol in PANEL.symbols:
        rows = PANEL.rows(symbol)
        bars = pd.DataFrame({f: PANEL.fields[f][rows] for f in FIELDS})
        expected.append(np.asarray(REFERENCE[name](bars), dtype=np.float64))
    expected = np.concatenate(expected)
    actual = evaluate({name: ALPHA158[name]}, PANEL)[name]
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=1e-8, atol=1e-12, equal_nan=True)
