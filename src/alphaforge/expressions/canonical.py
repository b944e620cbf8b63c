"""One spelling per expression, for content hashes and for display.

The spelling: operators with single spaces around them and the fewest parentheses that
keep the tree (left-associative ``+ - * /``, ``and``, ``or``; comparisons never chain);
calls as ``name(arg, arg)`` with every argument positional, in the signature's order;
numbers in Python's shortest round-trip form with integral values written without a
fraction (``5`` for ``5.0``, ``0.8``, ``1e-12``). Equal trees (``==`` on nodes) always
print the same text and ``parse(canonical(e)) == e``.
"""

from __future__ import annotations

from alphaforge.expressions.nodes import Call, Expr, Name, Number
from alphaforge.expressions.operators import ATOM_POWER, COMPARISON_POWER, NEG_POWER, OPERATORS, POWER


def canonical(expr: Expr) -> str:
    """The canonical text of ``expr``."""
    return _print(expr)[0]


def format_number(value: float) -> str:
    """``5`` for 5.0, ``0.8``, ``1e-12``: the shortest text that reads back as the same float."""
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _negated_number(expr: Expr) -> Expr:
    """``neg(neg(...neg(number)))`` as the number it is; anything else unchanged."""
    if isinstance(expr, Call) and expr.op == "neg":
        inner = _negated_number(expr.args[0])
        return Number(-inner.value) if isinstance(inner, Number) else expr
    return expr


def _print(expr: Expr) -> tuple[str, int]:
    """The text of ``expr`` and the binding power of its outermost operator."""
    if isinstance(expr, Number):
        return format_number(expr.value), NEG_POWER if expr.value < 0 else ATOM_POWER
    if isinstance(expr, Name):
        return expr.name, ATOM_POWER
    op = OPERATORS[expr.op]
    if op.symbol is None:
        return f"{op.name}({', '.join(_print(arg)[0] for arg in expr.args)})", ATOM_POWER
    power = POWER[expr.op]
    if len(expr.args) == 1:
        (operand,) = expr.args
        if expr.op == "neg" and isinstance(number := _negated_number(expr), Number):
            return _print(number)  # the parser folds -5 (and --5) into a number: print it so
        text, inner = _print(operand)
        text = f"({text})" if inner < power else text
        return (f"not {text}" if expr.op == "not" else f"-{text}"), power
    (left, left_power), (right, right_power) = _print(expr.args[0]), _print(expr.args[1])
    if left_power < power or (power == COMPARISON_POWER and left_power == power):
        left = f"({left})"
    if right_power <= power:
        right = f"({right})"
    return f"{left} {op.symbol} {right}", power
