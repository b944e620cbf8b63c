"""Evaluation: named expressions over a panel, each distinct subexpression computed once.

``plan`` lists the distinct subexpressions of all the named expressions (equal subtrees,
i.e. the same canonical text, are one step), inputs before their users; ``evaluate`` runs
the steps in that order and frees an intermediate as soon as its last user has run, so
memory holds the outputs plus the live frontier, not every intermediate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from alphaforge.expressions import kernels
from alphaforge.expressions.analysis import warmup
from alphaforge.expressions.canonical import canonical
from alphaforge.expressions.check import check
from alphaforge.expressions.errors import ExpressionError
from alphaforge.expressions.nodes import Call, Expr, Name, Number
from alphaforge.expressions.operators import BAR_COUNTS, OPERATORS
from alphaforge.expressions.panel import PanelData
from alphaforge.expressions.parser import parse


@dataclass(frozen=True)
class Step:
    """One distinct subexpression: an operator call whose inputs are earlier steps, fields
    or constants."""

    node: Call

    @property
    def text(self) -> str:
        return canonical(self.node)


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    outputs: Mapping[str, Expr]

    def uses(self) -> Counter[Expr]:
        """How many steps (and outputs) read each step's result."""
        counts: Counter[Expr] = Counter()
        for step in self.steps:
            counts.update({arg for arg in _series_args(step.node) if isinstance(arg, Call)})
        counts.update(expr for expr in self.outputs.values() if isinstance(expr, Call))
        return counts


def plan(named: Mapping[str, Expr]) -> Plan:
    """The steps that compute every expression of ``named``, each distinct subtree once."""
    seen: dict[Expr, None] = {}
    steps: list[Step] = []

    def visit(node: Expr) -> None:
        if not isinstance(node, Call) or node in seen:
            return
        for arg in _series_args(node):
            visit(arg)
        seen[node] = None
        steps.append(Step(node))

    for expr in named.values():
        visit(expr)
    return Plan(tuple(steps), dict(named))


def evaluate(named: Mapping[str, Expr | str], data: PanelData) -> dict[str, np.ndarray]:
    """Compute each named expression on ``data``: per name, one float64 array with a value
    per row of ``data`` in its row order (symbol after symbol, each in time order; see
    ``PanelData.to_frame`` for a frame). Text is parsed with the panel's fields as names."""
    exprs: dict[str, Expr] = {}
    for name, expr in named.items():
        if isinstance(expr, str):
            expr = parse(expr, fields=data.fields)
        else:
            check(expr, data.fields)
        exprs[name] = expr
    return _run(plan(exprs), data)


def _run(work: Plan, data: PanelData) -> dict[str, np.ndarray]:
    remaining = work.uses()
    values: dict[Expr, kernels.Value] = {}
    with np.errstate(all="ignore"):
        for step in work.steps:
            node = step.node
            op = OPERATORS[node.op]
            args = [_argument(param.kind, arg, values, data) for param, arg in zip(op.params, node.args)]
            result = kernels.KERNELS[node.op](data, *args)
            if node.op == "if" and isinstance(result, np.ndarray) and (bars := warmup(node)):
                # the branch not taken may start earlier: values begin at warmup(node), whatever the data
                result[data.bar_numbers < bars] = np.nan
            values[node] = result
            for arg in set(_series_args(node)):
                if isinstance(arg, Call):
                    remaining[arg] -= 1
                    if remaining[arg] == 0:
                        del values[arg]
    given: set[int] = set()
    out: dict[str, np.ndarray] = {}
    for name, expr in work.outputs.items():
        result = _argument("series", expr, values, data)
        if not isinstance(result, np.ndarray):
            result = np.full(data.n_rows, result)
        elif isinstance(expr, Name) or id(result) in given:
            result = result.copy()  # never hand out a panel's field, nor one array twice
        given.add(id(result))
        out[name] = result
    return out


def _argument(kind: str, arg: Expr, values: Mapping[Expr, kernels.Value], data: PanelData) -> kernels.Value | int:
    if isinstance(arg, Number):
        return int(arg.value) if kind in BAR_COUNTS else arg.value
    if isinstance(arg, Name):
        try:
            return data.fields[arg.name]
        except KeyError:
            raise ExpressionError(f"the panel has no field '{arg.name}'", arg.pos) from None
    return values[arg]


def _series_args(node: Call) -> list[Expr]:
    op = OPERATORS[node.op]
    return [arg for param, arg in zip(op.params, node.args) if param.kind in ("series", "condition")]
