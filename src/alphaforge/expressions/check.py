"""Static checks of a parse tree against a set of fields: names, arity, constant windows
and types, each refused with the position of the offending node.

Types are ``number`` and ``boolean``. Comparisons and ``and``/``or``/``not`` give booleans,
stored as 1.0 / 0.0 (NaN when unknown), so a boolean can be used wherever a number is
(``mean(close > ref(close, 1), 5)`` is the share of up bars), but a number is refused where
a condition is needed (``if(close, 1, 0)``): that is almost always a mistake.
"""

from __future__ import annotations

from collections.abc import Iterable

from alphaforge.expressions.canonical import canonical, format_number
from alphaforge.expressions.errors import ExpressionError
from alphaforge.expressions.nodes import Expr, Name, Number, guard_depth, start_of
from alphaforge.expressions.operators import BAR_COUNTS, FUNCTIONS, OPERATORS, Operator, Param, ResultType

#: The longest lag or window accepted (a bound on the memory one operator may take).
MAX_BARS = 100_000

#: The bar fields every panel has.
BAR_FIELDS: frozenset[str] = frozenset({"open", "high", "low", "close", "volume"})


def check(expr: Expr, fields: Iterable[str] = BAR_FIELDS) -> ResultType:
    """Check ``expr`` against ``fields`` (the names it may read); return its type."""
    guard_depth(expr)
    return _Checker(frozenset(fields)).visit(expr)


class _Checker:
    def __init__(self, fields: frozenset[str]) -> None:
        self.fields = fields

    def visit(self, expr: Expr) -> ResultType:
        if isinstance(expr, Number):
            return "number"
        if isinstance(expr, Name):
            if expr.name not in self.fields:
                if expr.name in FUNCTIONS:
                    raise ExpressionError(
                        f"'{expr.name}' is a function: call it as {FUNCTIONS[expr.name].signature}", expr.pos
                    )
                raise ExpressionError(
                    f"unknown name '{expr.name}'; valid names: {', '.join(sorted(self.fields))}", expr.pos
                )
            return "number"
        op = OPERATORS.get(expr.op)
        if op is None:
            raise ExpressionError(f"unknown operator '{expr.op}'", expr.pos)
        if len(expr.args) != len(op.params):
            raise ExpressionError(
                f"{op.signature} takes {len(op.params)} arguments, got {len(expr.args)}", expr.pos
            )
        types = [self.argument(op, param, arg) for param, arg in zip(op.params, expr.args)]
        if op.name == "if" and types[1] == types[2] == "boolean":
            return "boolean"
        return op.returns

    def argument(self, op: Operator, param: Param, arg: Expr) -> ResultType:
        if param.kind in BAR_COUNTS:
            _bar_count(op, param, arg)
            return "number"
        if param.kind == "probability":
            value = _constant(op, param, arg, "a constant in [0, 1]")
            if not 0.0 <= value <= 1.0:
                raise ExpressionError(
                    f"{op.name}'s {param.name} must be a constant in [0, 1] (got {format_number(value)})", start_of(arg)
                )
            return "number"
        kind = self.visit(arg)
        if param.kind == "condition" and kind != "boolean":
            what = f"{op.name}'s condition" if op.symbol is None else f"'{op.symbol}'"
            raise ExpressionError(
                f"{what} needs a comparison or a logical expression, not a number "
                f"(got {canonical(arg)}; write e.g. {canonical(arg)} > 0)",
                start_of(arg),
            )
        return kind


def _noun(param: Param) -> str:
    return {"lag": "lag", "window": "window", "span": "span"}[param.kind]


def _constant(op: Operator, param: Param, arg: Expr, wanted: str) -> float:
    if isinstance(arg, Number):
        return arg.value
    got = f"the name '{arg.name}'" if isinstance(arg, Name) else f"the expression {canonical(arg)}"
    raise ExpressionError(
        f"{op.name}'s {_noun(param) if param.kind in BAR_COUNTS else param.name} must be {wanted} "
        f"(got {got}): it is fixed when the expression is written, so the bars it reads are known before it runs",
        start_of(arg),
    )


def _bar_count(op: Operator, param: Param, arg: Expr) -> int:
    noun = _noun(param)
    wanted = "a positive integer constant" if param.minimum == 1 else f"an integer constant >= {param.minimum}"
    value = _constant(op, param, arg, wanted)
    if not value.is_integer() or value < param.minimum:
        if not value.is_integer():
            why = f": a {noun} counts whole bars"
        elif value < 0 and param.kind == "lag":
            why = ": a negative lag would read the future"
        elif value == 0 and param.kind == "lag":
            why = ": a lag of 0 is the current bar (write x itself)"
        elif value < 1:
            why = f": a {noun} holds at least one bar"
        else:
            why = f": {param.why}" if param.why else ""
        raise ExpressionError(f"{op.name}'s {noun} must be {wanted} (got {format_number(value)}){why}", start_of(arg))
    if value > MAX_BARS:
        raise ExpressionError(
            f"{op.name}'s {noun} must be at most {MAX_BARS} bars (got {format_number(value)})", start_of(arg)
        )
    return int(value)
