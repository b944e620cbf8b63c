"""A small language for factor expressions (``mean(close, 5) / close``), parsed by its own
tokenizer and precedence parser (never evaluated as Python), checked against the fields a
caller offers, and evaluated vectorised over a panel of symbols.

Every operator is causal by construction: time-series operators read the current and
earlier bars of the same symbol only (lags and windows are positive integer constants),
cross-sectional ones the other symbols' values at the same timestamp only. Windows are
full or NaN (no partial windows), a window holding a NaN gives NaN, and comparisons give
1.0 / 0.0 (NaN when either side is NaN). ``operators.OPERATORS`` lists every operator with
its meaning.

Public API::

    expr = parse("mean(close, 5) / close")          # ExpressionError on any mistake
    canonical(expr)                                  # "mean(close, 5) / close": one spelling
    warmup(expr), fields_of(expr), is_recursive(expr), is_cross_sectional(expr)
    panel = PanelData.from_frames({"AAA": frame_a, "BBB": frame_b})
    values = evaluate({"ma5": expr}, panel)          # name -> float64 array, panel row order
    panel.to_frame(values)                           # indexed by (timestamp UTC, symbol)
"""

from __future__ import annotations

from alphaforge.expressions.analysis import fields_of, is_cross_sectional, is_recursive, warmup
from alphaforge.expressions.canonical import canonical
from alphaforge.expressions.check import BAR_FIELDS, check
from alphaforge.expressions.errors import ExpressionError
from alphaforge.expressions.evaluate import Plan, Step, evaluate, plan
from alphaforge.expressions.nodes import Call, Expr, Name, Number
from alphaforge.expressions.operators import FUNCTIONS, OPERATORS, Operator
from alphaforge.expressions.panel import PanelData
from alphaforge.expressions.parser import parse, parse_syntax

__all__ = [
    "BAR_FIELDS",
    "FUNCTIONS",
    "OPERATORS",
    "Call",
    "Expr",
    "ExpressionError",
    "Name",
    "Number",
    "Operator",
    "PanelData",
    "Plan",
    "Step",
    "canonical",
    "check",
    "evaluate",
    "fields_of",
    "is_cross_sectional",
    "is_recursive",
    "parse",
    "parse_syntax",
    "plan",
    "warmup",
]
