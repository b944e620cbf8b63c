"""Ready-made feature definitions a user lists and copies (``GET /api/v1/features/library``):
each is a body for ``POST /api/v1/features`` as it stands, so "create the Alpha158 features"
is one request. Also the expression language's operators, for a form or a reader."""

from __future__ import annotations

from typing import Any

from alphaforge.expressions import FUNCTIONS
from alphaforge.expressions.alpha158 import ALPHA158
from alphaforge.plugins.features.expression import ExpressionFeature


def templates() -> list[dict[str, Any]]:
    """The ready-made definitions, their expressions in canonical form (what a stored
    definition holds, so a copy hashes like any other spelling of it)."""
    alpha158 = ExpressionFeature.from_parameters({"expressions": ALPHA158})
    return [{
        "name": "Alpha158",
        "type": ExpressionFeature.category,
        "plugin_key": ExpressionFeature.key,
        "parameters": alpha158.resolved_parameters(),
        "description": (
            "Qlib's Alpha158 factor set (157 formulas: VWAP0 needs a vwap field the bars do not have) over open, "
            "high, low, close and volume, written in alphaforge's expression language from Qlib's published "
            "definitions; full windows only (NaN until a window is full)"
        ),
    }]


def operators() -> list[dict[str, str]]:
    """Every function of the language: its call signature, kind and what it computes."""
    return [
        {"name": op.name, "signature": op.signature, "kind": op.kind, "summary": op.summary}
        for op in sorted(FUNCTIONS.values(), key=lambda op: op.name)
    ]
