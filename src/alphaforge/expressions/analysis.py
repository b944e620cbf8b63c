"""What an expression needs, read from its tree before it runs: how many bars before its
first value can exist, which fields it reads, and whether it is recursive or
cross-sectional (callers use these for warm-up ranges, caching and validation)."""

from __future__ import annotations

from collections.abc import Mapping

from alphaforge.expressions.nodes import Call, Expr, Name, walk
from alphaforge.expressions.operators import OPERATORS


def warmup(expr: Expr, names: Mapping[str, int] | None = None) -> int:
    """The bars of a symbol before its first value can exist (``0``: from its first bar).
    ``names``: the warm-up of a field that has one (another feature read as an input).

    ``ref(x, n)`` and ``delta(x, n)`` add ``n``; a window of ``n`` bars adds ``n - 1`` (it
    needs its ``n - 1`` predecessors); nested operators add up, so ``mean(ref(close, 3), 5)``
    needs 3 + 4 = 7 bars before. Element-wise and cross-sectional operators take the
    deepest of their inputs. For ``ewm`` (recursive) this is when its first value is
    produced, not when it stops depending on where the history starts.
    """
    if isinstance(expr, Name):
        return (names or {}).get(expr.name, 0)
    if not isinstance(expr, Call):
        return 0
    op = OPERATORS[expr.op]
    inputs, extra = 0, 0
    for param, arg in zip(op.params, expr.args):
        if param.kind == "lag":
            extra = int(arg.value)  # type: ignore[union-attr]  # checked constant
        elif param.kind in ("window", "span"):
            extra = int(arg.value) - 1  # type: ignore[union-attr]
        elif param.kind != "probability":
            inputs = max(inputs, warmup(arg, names))
    return inputs + extra


def is_recursive(expr: Expr) -> bool:
    """Whether a value depends on every earlier bar (``ewm`` anywhere), so it changes with
    where a symbol's history starts and not only with a finite window."""
    return any(isinstance(node, Call) and OPERATORS[node.op].recursive for node in walk(expr))


def is_cross_sectional(expr: Expr) -> bool:
    """Whether a value depends on other symbols (a ``cs_*`` operator anywhere), so it can
    only be computed on a panel, and changes with the panel's symbols."""
    return any(isinstance(node, Call) and OPERATORS[node.op].kind == "cross_sectional" for node in walk(expr))


def fields_of(expr: Expr) -> frozenset[str]:
    """The fields ``expr`` reads."""
    return frozenset(node.name for node in walk(expr) if isinstance(node, Name))
