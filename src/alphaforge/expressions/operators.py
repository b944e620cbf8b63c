"""The operator table: every function and infix operator of the language, its parameters
and what kind of computation it is. The parser, the checker, the printer and the evaluator
all read this one table, so an operator is added in one place (plus its kernel).

Parameter kinds:

- ``series``: any expression; a condition counts as a number (1 true, 0 false);
- ``condition``: a comparison or a logical expression (``and``, ``or``, ``not``);
- ``lag`` / ``window`` / ``span``: an integer constant ``>= minimum`` (a literal, so the
  bars an expression reads are known before it runs: warm-up, causality);
- ``probability``: a constant in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ParamKind = Literal["series", "condition", "lag", "window", "span", "probability"]
OperatorKind = Literal["elementwise", "time_series", "cross_sectional"]
ResultType = Literal["number", "boolean"]

#: Parameter kinds that take an integer constant counting bars.
BAR_COUNTS: frozenset[str] = frozenset({"lag", "window", "span"})


@dataclass(frozen=True)
class Param:
    name: str
    kind: ParamKind = "series"
    minimum: int = 1
    #: Why the minimum, appended to the error when a value is below it.
    why: str = ""


@dataclass(frozen=True)
class Operator:
    name: str
    params: tuple[Param, ...]
    kind: OperatorKind
    summary: str
    returns: ResultType = "number"
    #: Infix or prefix spelling (``+``, ``and``, ``not``); None for functions called by name.
    symbol: str | None = None
    #: A value depends on every earlier bar, not just a window (ewm): flagged to callers.
    recursive: bool = False

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(p.name for p in self.params)})"


_X, _Y = Param("x"), Param("y")
_LAG = Param("n", "lag", 1)
_WINDOW = Param("n", "window", 1)
_WINDOW2 = Param("n", "window", 2, "the statistic needs at least two bars")


def _op(name: str, params: tuple[Param, ...], kind: OperatorKind, summary: str, **more: object) -> Operator:
    return Operator(name, params, kind, summary, **more)  # type: ignore[arg-type]


_TABLE: tuple[Operator, ...] = (
    # infix and prefix operators (not callable by name: one spelling each)
    _op("add", (_X, _Y), "elementwise", "x + y", symbol="+"),
    _op("sub", (_X, _Y), "elementwise", "x - y", symbol="-"),
    _op("mul", (_X, _Y), "elementwise", "x * y", symbol="*"),
    _op("div", (_X, _Y), "elementwise", "x / y (division by zero gives ±inf or NaN, as numpy)", symbol="/"),
    _op("neg", (_X,), "elementwise", "-x", symbol="-"),
    _op("lt", (_X, _Y), "elementwise", "x < y: 1 or 0, NaN if either is NaN", returns="boolean", symbol="<"),
    _op("le", (_X, _Y), "elementwise", "x <= y", returns="boolean", symbol="<="),
    _op("gt", (_X, _Y), "elementwise", "x > y", returns="boolean", symbol=">"),
    _op("ge", (_X, _Y), "elementwise", "x >= y", returns="boolean", symbol=">="),
    _op("eq", (_X, _Y), "elementwise", "x == y", returns="boolean", symbol="=="),
    _op("ne", (_X, _Y), "elementwise", "x != y", returns="boolean", symbol="!="),
    _op("and", (Param("x", "condition"), Param("y", "condition")), "elementwise",
        "both true; NaN if either is NaN", returns="boolean", symbol="and"),
    _op("or", (Param("x", "condition"), Param("y", "condition")), "elementwise",
        "either true; NaN if either is NaN", returns="boolean", symbol="or"),
    _op("not", (Param("x", "condition"),), "elementwise", "not x; NaN stays NaN", returns="boolean", symbol="not"),
    # element-wise functions
    _op("log", (_X,), "elementwise", "natural log (NaN below 0, -inf at 0, as numpy)"),
    _op("abs", (_X,), "elementwise", "absolute value"),
    _op("sign", (_X,), "elementwise", "-1, 0 or 1"),
    _op("greater", (Param("a"), Param("b")), "elementwise", "element-wise max of a and b (NaN if either is)"),
    _op("less", (Param("a"), Param("b")), "elementwise", "element-wise min of a and b (NaN if either is)"),
    _op("if", (Param("cond", "condition"), Param("a"), Param("b")), "elementwise",
        "a where cond is true, b where false, NaN where cond is NaN; NaN before the warm-up of all three "
        "(a value never starts earlier because the other branch was taken)"),
    # time series: the current and the n - 1 (or n) earlier bars of the same symbol
    _op("ref", (_X, _LAG), "time_series", "x n bars earlier"),
    _op("delta", (_X, _LAG), "time_series", "x - ref(x, n)"),
    _op("mean", (_X, _WINDOW), "time_series", "rolling mean over n bars"),
    _op("sum", (_X, _WINDOW), "time_series", "rolling sum over n bars"),
    _op("std", (_X, _WINDOW2), "time_series", "rolling sample standard deviation (ddof 1)"),
    _op("min", (_X, _WINDOW), "time_series", "rolling minimum"),
    _op("max", (_X, _WINDOW), "time_series", "rolling maximum"),
    _op("rank", (_X, _WINDOW), "time_series",
        "percentile rank of the current value within its window: average rank / n, in (0, 1]"),
    _op("quantile", (_X, _WINDOW, Param("q", "probability")), "time_series",
        "rolling q-quantile, linear interpolation"),
    _op("idxmax", (_X, _WINDOW), "time_series",
        "1-based position of the window's maximum, counted from its oldest bar (first on ties)"),
    _op("idxmin", (_X, _WINDOW), "time_series", "1-based position of the window's minimum (first on ties)"),
    _op("slope", (_X, _WINDOW2), "time_series", "slope of the least-squares line of x on 1..n over the window"),
    _op("rsquare", (_X, _WINDOW2), "time_series", "R² of that line (NaN on a constant window)"),
    _op("resi", (_X, _WINDOW2), "time_series", "residual of the window's last value from that line"),
    _op("corr", (_X, _Y, _WINDOW2), "time_series", "rolling Pearson correlation (NaN on a constant window)"),
    _op("cov", (_X, _Y, _WINDOW2), "time_series", "rolling sample covariance (ddof 1)"),
    _op("ewm", (_X, Param("span", "span", 1)), "time_series",
        "exponentially weighted mean, alpha = 2 / (span + 1), pandas adjust=True; first value at "
        "bar span (recursive: it depends on every bar since the symbol's first)", recursive=True),
    # cross-sectional: all symbols' values at the same timestamp
    _op("cs_rank", (_X,), "cross_sectional",
        "percentile rank among the symbols at the same timestamp: (rank - 1) / (count - 1), average "
        "ranks on ties, 0.5 for a lone value"),
    _op("cs_zscore", (_X,), "cross_sectional",
        "(x - mean) / std (ddof 1) across the symbols at the same timestamp; NaN below 2 values or no spread"),
    _op("cs_demean", (_X,), "cross_sectional", "x - mean across the symbols at the same timestamp"),
)

#: Every operator by name.
OPERATORS: dict[str, Operator] = {op.name: op for op in _TABLE}

#: Operators a user calls by name, ``mean(close, 5)`` (infix ones have a symbol instead).
FUNCTIONS: dict[str, Operator] = {op.name: op for op in _TABLE if op.symbol is None}

#: Binding powers of the infix operators (higher binds tighter), shared by parser and printer.
INFIX: dict[str, tuple[str, int]] = {
    "or": ("or", 10),
    "and": ("and", 20),
    "<": ("lt", 40), "<=": ("le", 40), ">": ("gt", 40), ">=": ("ge", 40), "==": ("eq", 40), "!=": ("ne", 40),
    "+": ("add", 50), "-": ("sub", 50),
    "*": ("mul", 60), "/": ("div", 60),
}
NOT_POWER = 30  # `not a > b` is not (a > b); `not a and b` is (not a) and b
NEG_POWER = 70  # `-a * b` is (-a) * b
COMPARISON_POWER = 40  # comparisons do not chain: `a < b < c` is refused
ATOM_POWER = 100

#: Binding power of each infix/prefix operator by name (for the printer).
POWER: dict[str, int] = {name: power for name, power in INFIX.values()} | {"not": NOT_POWER, "neg": NEG_POWER}
