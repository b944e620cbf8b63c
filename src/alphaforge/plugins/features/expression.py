"""Expression features: a definition that IS a formula over the bar fields
(``mean(close, 5) / close``), or a dict of named formulas that become the dataset's columns.

The formulas are parsed by ``alphaforge.expressions`` (never evaluated as Python) when the
definition is validated: a look-ahead (``ref(close, -1)``), a window that is not a positive
integer constant or an unknown name is a 422 pointing at its position. The parameters hold
each formula's canonical text, so spellings that differ only in whitespace or number format
share one version hash and one dataset. Causal by construction (every operator reads the
current and earlier bars only); the warm-up is the deepest chain of windows; a formula with
``ewm`` depends on every earlier bar, so it warms up over the whole history.

Cross-sectional operators (``cs_rank``...) need every symbol of a date: they belong to
``cross_sectional.expression``, which reads a per-symbol feature's panel.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from alphaforge.errors import InvalidInput
from alphaforge.expressions import (
    BAR_FIELDS,
    Expr,
    PanelData,
    canonical,
    evaluate,
    fields_of,
    is_cross_sectional,
    is_recursive,
    parse,
    warmup,
)
from alphaforge.marketdata.bars import BAR_COLUMNS
from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.features.base import FeatureInputs, FeaturePlugin, feature_plugins

#: Named formulas one definition may hold (Alpha158 is 157 of them).
MAX_EXPRESSIONS = 500
MAX_EXPRESSION_CHARS = 2_000
DEFAULT_EXPRESSION = "close / mean(close, 20) - 1"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def parse_formula(text: str, where: str, fields: Sequence[str] = BAR_FIELDS) -> Expr:
    """``text`` parsed and checked; the 422 says which formula (``where``) and where in it."""
    try:
        return parse(text, fields=fields)
    except InvalidInput as exc:
        raise ValueError(f"{where}: {exc.message}") from None


class ExpressionParams(PluginParams):
    expression: str | None = Field(
        None, min_length=1, max_length=MAX_EXPRESSION_CHARS,
        description=f"one formula over close, open, high, low, volume (default, an example: {DEFAULT_EXPRESSION!r}); "
        "operators: GET /api/v1/features/expressions",
    )
    name: str | None = Field(None, description="the column of a single `expression` (default 'value')")
    expressions: dict[str, str] | None = Field(
        None, min_length=1, max_length=MAX_EXPRESSIONS,
        description="named formulas instead of one `expression`: each name becomes a column (columns in name order)",
    )

    @model_validator(mode="after")
    def _canonical(self) -> ExpressionParams:
        """One form whatever the spelling: ``expressions`` of canonical texts (a single
        ``expression`` becomes ``{name: text}``), so equal formulas hash equal."""
        if self.expressions is not None and (self.expression is not None or self.name is not None):
            raise ValueError("give either `expression` (and `name`) or `expressions`, not both")
        single = self.expressions is None
        named = self.expressions if self.expressions is not None else {
            self.name or "value": self.expression or DEFAULT_EXPRESSION
        }
        texts: dict[str, str] = {}
        for name, text in named.items():
            where = "expression" if single else f"expressions[{name!r}]"
            if not _NAME.match(name):
                raise ValueError(f"column name {name!r} must be an identifier of at most 64 characters "
                                 "(letters, digits, _; not starting with a digit)")
            if len(text) > MAX_EXPRESSION_CHARS:
                raise ValueError(f"{where} is longer than {MAX_EXPRESSION_CHARS} characters")
            expr = parse_formula(text, where)
            if is_cross_sectional(expr):
                raise ValueError(
                    f"{where} uses a cross-sectional operator (cs_rank, cs_zscore, cs_demean): those "
                    "combine the symbols of a date, so they belong to a cross_sectional.expression over this feature"
                )
            texts[name] = canonical(expr)
        # Columns in name order: a JSON object's key order is not kept by every store (PostgreSQL's
        # JSONB reorders it), and two orders of the same formulas are one definition.
        object.__setattr__(self, "expressions", dict(sorted(texts.items())))
        object.__setattr__(self, "expression", None)
        object.__setattr__(self, "name", None)
        return self


@feature_plugins.register
class ExpressionFeature(FeaturePlugin):
    key = "automated.expression"
    category = "automated"
    description = ("Formulas over the bar fields in alphaforge's expression language (ref, mean, std, slope, corr, "
                   "ewm, ...): one column per named formula, causal by construction")
    Params = ExpressionParams
    libraries: ClassVar[tuple[str, ...]] = ("numpy", "pandas")

    @cached_property
    def formulas(self) -> dict[str, Expr]:
        return {name: parse(text) for name, text in self.params.expressions.items()}  # type: ignore[attr-defined]

    @property
    def output_columns(self) -> list[str]:
        return list(self.formulas)

    @property
    def lookback(self) -> int:
        return max(warmup(expr) for expr in self.formulas.values())

    @property
    def recursive(self) -> bool:  # type: ignore[override]
        return any(is_recursive(expr) for expr in self.formulas.values())

    def bar_fields(self) -> tuple[str, ...]:
        used = set().union(*(fields_of(expr) for expr in self.formulas.values()))
        return tuple(c for c in BAR_COLUMNS if c in used)

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        return self.compute_batch([inputs])[0]

    def compute_batch(self, batch: Sequence[FeatureInputs]) -> list[dict[str, np.ndarray]]:
        """Every symbol of the batch in one vectorised evaluation (each common subexpression once)."""
        fields = self.bar_fields()
        data = PanelData.from_arrays(
            [str(i) for i in range(len(batch))],
            [one.bars.timestamps for one in batch],
            {f: [one.bars.column(f) for one in batch] for f in fields},
        )
        values = evaluate(self.formulas, data)
        return [
            {name: values[name][data.offsets[i]:data.offsets[i + 1]] for name in self.formulas}
            for i in range(len(batch))
        ]
