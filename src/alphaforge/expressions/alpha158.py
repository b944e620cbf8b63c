"""Qlib's Alpha158 factor set in this language: name -> expression text, in Qlib's order.

Written from the published definitions (``Alpha158DL.get_feature_config`` in
``qlib/contrib/data/loader.py`` and the operators of ``qlib/data/ops.py``): the nine
k-bar shape features, today's open/high/low over close, and 29 rolling families over
windows of 5, 10, 20, 30 and 60 bars. Qlib adds 1e-12 to some denominators; so do we, so
values agree.

Deliberate differences from Qlib:

- **VWAP0 is left out**: it needs a ``vwap`` field our bars do not have. Hence 157
  features, not 158.
- **Full windows only**: Qlib's rolling operators use ``min_periods=1``, so a 60-bar
  feature has values from the first bar, computed over a partial window; ours are NaN
  until the window is full (``warmup``), and where the window holds a NaN.
- **A comparison with NaN is NaN**, not false (CNTP/CNTN/CNTD only differ on NaN inputs).
- **RSQR and CORR are NaN on an exactly constant window** (no line, no correlation); Qlib
  blanks windows whose rolling std is within an absolute 2e-5 of 0, a threshold that
  depends on the price scale. Any other non-finite correlation is NaN too.
- **Windows count each symbol's own bars**: a symbol's gaps are not filled with NaN rows
  from a market calendar, so a 5-bar window is always the symbol's last 5 bars.
- BETA, RESI and RSQR are computed in closed form over each window (a weighted sum of its
  values) instead of Qlib's running sums: the same numbers up to rounding.
"""

from __future__ import annotations

from alphaforge.expressions.nodes import Expr
from alphaforge.expressions.parser import parse

WINDOWS: tuple[int, ...] = (5, 10, 20, 30, 60)

_EPS = "1e-12"
_RANGE = f"(high - low + {_EPS})"
_UP = "greater(close - ref(close, 1), 0)"
_DOWN = "greater(ref(close, 1) - close, 0)"
_MOVE = "abs(close - ref(close, 1))"
_VUP = "greater(volume - ref(volume, 1), 0)"
_VDOWN = "greater(ref(volume, 1) - volume, 0)"
_VMOVE = "abs(volume - ref(volume, 1))"
_WEIGHTED_MOVE = "abs(close / ref(close, 1) - 1) * volume"

_KBAR: dict[str, str] = {
    "KMID": "(close - open) / open",
    "KLEN": "(high - low) / open",
    "KMID2": f"(close - open) / {_RANGE}",
    "KUP": "(high - greater(open, close)) / open",
    "KUP2": f"(high - greater(open, close)) / {_RANGE}",
    "KLOW": "(less(open, close) - low) / open",
    "KLOW2": f"(less(open, close) - low) / {_RANGE}",
    "KSFT": "(2 * close - high - low) / open",
    "KSFT2": f"(2 * close - high - low) / {_RANGE}",
}

_PRICE: dict[str, str] = {"OPEN0": "open / close", "HIGH0": "high / close", "LOW0": "low / close"}

#: Each rolling family as a template over its window ``{d}``.
_ROLLING: dict[str, str] = {
    "ROC": "ref(close, {d}) / close",
    "MA": "mean(close, {d}) / close",
    "STD": "std(close, {d}) / close",
    "BETA": "slope(close, {d}) / close",
    "RSQR": "rsquare(close, {d})",
    "RESI": "resi(close, {d}) / close",
    "MAX": "max(high, {d}) / close",
    "MIN": "min(low, {d}) / close",
    "QTLU": "quantile(close, {d}, 0.8) / close",
    "QTLD": "quantile(close, {d}, 0.2) / close",
    "RANK": "rank(close, {d})",
    "RSV": "(close - min(low, {d})) / (max(high, {d}) - min(low, {d}) + 1e-12)",
    "IMAX": "idxmax(high, {d}) / {d}",
    "IMIN": "idxmin(low, {d}) / {d}",
    "IMXD": "(idxmax(high, {d}) - idxmin(low, {d})) / {d}",
    "CORR": "corr(close, log(volume + 1), {d})",
    "CORD": "corr(close / ref(close, 1), log(volume / ref(volume, 1) + 1), {d})",
    "CNTP": "mean(close > ref(close, 1), {d})",
    "CNTN": "mean(close < ref(close, 1), {d})",
    "CNTD": "mean(close > ref(close, 1), {d}) - mean(close < ref(close, 1), {d})",
    "SUMP": f"sum({_UP}, {{d}}) / (sum({_MOVE}, {{d}}) + 1e-12)",
    "SUMN": f"sum({_DOWN}, {{d}}) / (sum({_MOVE}, {{d}}) + 1e-12)",
    "SUMD": f"(sum({_UP}, {{d}}) - sum({_DOWN}, {{d}})) / (sum({_MOVE}, {{d}}) + 1e-12)",
    "VMA": "mean(volume, {d}) / (volume + 1e-12)",
    "VSTD": "std(volume, {d}) / (volume + 1e-12)",
    "WVMA": f"std({_WEIGHTED_MOVE}, {{d}}) / (mean({_WEIGHTED_MOVE}, {{d}}) + 1e-12)",
    "VSUMP": f"sum({_VUP}, {{d}}) / (sum({_VMOVE}, {{d}}) + 1e-12)",
    "VSUMN": f"sum({_VDOWN}, {{d}}) / (sum({_VMOVE}, {{d}}) + 1e-12)",
    "VSUMD": f"(sum({_VUP}, {{d}}) - sum({_VDOWN}, {{d}})) / (sum({_VMOVE}, {{d}}) + 1e-12)",
}

#: The 157 features, name -> expression text, in Qlib's order (VWAP0 left out).
ALPHA158: dict[str, str] = {
    **_KBAR,
    **_PRICE,
    **{f"{family}{d}": template.format(d=d) for family, template in _ROLLING.items() for d in WINDOWS},
}


def alpha158() -> dict[str, Expr]:
    """The Alpha158 features parsed (and checked against the bar fields), in order."""
    return {name: parse(text) for name, text in ALPHA158.items()}
