"""The parse tree: three frozen node kinds, compared by structure and not by position.

Positions are carried for error messages only (``compare=False``), so the same expression
written with other spacing is equal, hashes the same, and is computed once when it occurs
twice (common subexpressions are found by using nodes as dictionary keys).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Union

from alphaforge.expressions.errors import ExpressionError

#: Deeper trees are refused with a message instead of a RecursionError (every pass over a
#: tree recurses); 200 levels is far beyond any hand-written factor.
MAX_DEPTH = 200


@dataclass(frozen=True, slots=True)
class Number:
    """A numeric constant. Stored as a float, so ``5`` and ``5.0`` are the same node."""

    value: float
    pos: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        # -0.0 == 0.0 but prints differently: one spelling per value
        object.__setattr__(self, "value", float(self.value) + 0.0)


@dataclass(frozen=True, slots=True)
class Name:
    """A field the caller supplies (``close``, ``volume``, later features or macro series)."""

    name: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    """An operator applied to its arguments, in the operator's parameter order (infix
    operators such as ``+`` are calls too: ``add(a, b)``)."""

    op: str
    args: tuple[Expr, ...]
    pos: int = field(default=0, compare=False)


Expr = Union[Number, Name, Call]


def walk(expr: Expr) -> Iterator[Expr]:
    """Every node of ``expr``, parents before children."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, Call):
            stack.extend(reversed(node.args))


def start_of(expr: Expr) -> int:
    """Where ``expr``'s text begins (an infix call's own position is its operator's)."""
    while isinstance(expr, Call) and expr.args and expr.args[0].pos < expr.pos:
        expr = expr.args[0]
    return expr.pos


def guard_depth(expr: Expr, limit: int = MAX_DEPTH) -> None:
    """Refuse a tree deeper than ``limit`` (``a + a + ... + a`` parses without recursion
    but is as deep as it is long), at the first node below the limit."""
    stack = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise ExpressionError(f"expression nested more than {limit} deep", start_of(node))
        if isinstance(node, Call):
            stack.extend((arg, depth + 1) for arg in node.args)
