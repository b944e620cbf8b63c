"""Cross-sectional features: a feature definition that IS a per-date rank, z-score or demean
of another feature over the symbols of a universe (optionally within groups).

Such a plugin has no single-symbol values: it reads the input feature's *panel* (the same
universe or symbols, range and timeframe: ``features.panels``) and applies
``cross_section.apply_cross_section`` to one of its columns. The value at (t, s) uses only
the input's values at date t of the symbols present at t (and, with ``group_field``, each
symbol's fundamentals field as known at t), so it is causal by construction; the kit checks
it on a panel (``per_symbol`` is False, so the per-symbol checks do not apply).
"""

from __future__ import annotations

import uuid
from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from alphaforge.errors import InvalidInput
from alphaforge.expressions import PanelData, canonical, check, evaluate, fields_of, parse_syntax
from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.features.base import (
    FeatureInputs,
    FeaturePlugin,
    feature_plugins,
)
from alphaforge.plugins.features.cross_section import (
    SYMBOL,
    TIMESTAMP,
    CrossSectionOperator,
    apply_cross_section,
)

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
GROUP = "_group"


class CrossSectionParams(PluginParams):
    feature_id: str | None = Field(
        None, pattern=UUID_PATTERN, description="id of the feature definition to transform (required to create one)"
    )
    column: str | None = Field(
        None, min_length=1, max_length=100,
        description="which output column of the input feature (may be left out when it has one)",
    )
    group_field: str | None = Field(
        None, min_length=1, max_length=100,
        description="a fundamentals field (e.g. a sector code) read point in time per symbol: the operator "
        "then runs within each (date, group); a symbol without a value that date gets NaN",
    )

    @field_validator("feature_id")
    @classmethod
    def _canonical(cls, value: str | None) -> str | None:
        """One spelling per id, so the same input always gives the same version hash."""
        return None if value is None else str(uuid.UUID(value))


class CrossSectionalFeature(FeaturePlugin):
    """Base of the three operators: a feature computed over a panel, never one symbol."""

    category = "cross_sectional"
    per_symbol = False
    operator: ClassVar[CrossSectionOperator]
    Params = CrossSectionParams
    libraries = ("numpy", "pandas")

    @property
    def output_columns(self) -> list[str]:
        return [self.operator]

    @property
    def lookback(self) -> int:
        return 0

    def bar_fields(self) -> tuple[str, ...]:
        return ()  # reads no bars itself: its input feature does

    def input_feature_id(self) -> uuid.UUID:
        """The definition it transforms; 422 when the parameters do not name one."""
        raw = self.params.feature_id  # type: ignore[attr-defined]
        if raw is None:
            raise InvalidInput(
                f"{self.key} needs parameters.feature_id: the id of the feature definition to transform",
                field="parameters.feature_id",
            )
        return uuid.UUID(raw)

    def group_field(self) -> str | None:
        return self.params.group_field  # type: ignore[attr-defined]

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        raise InvalidInput(
            f"{self.key} is cross-sectional: it combines the symbols of a universe on each date, so one "
            "symbol's bars cannot give it a value; request a panel (a universe or symbols)"
        )

    def compute_panel(self, panel: pd.DataFrame, groups: pd.Series | None = None) -> pd.DataFrame:
        """``panel``: the input feature's panel (index (timestamp, symbol)); ``groups``: each
        row's group label (NaN: none), aligned with it. One column, same index."""
        column = self.input_column(list(panel.columns))
        long = pd.DataFrame({
            TIMESTAMP: panel.index.get_level_values(TIMESTAMP),
            SYMBOL: panel.index.get_level_values(SYMBOL),
            column: panel[column].to_numpy(dtype="float64"),
        })
        if groups is not None:
            long[GROUP] = np.asarray(groups, dtype="float64")
        out = apply_cross_section(long, self.operator, column, GROUP if groups is not None else None)
        return pd.DataFrame({self.operator: out[column].to_numpy()}, index=panel.index)

    def input_column(self, available: list[str]) -> str:
        """The input column it transforms, of the input's ``available`` ones (422 when
        ``column`` names none of them, or is left out among several)."""
        wanted = self.params.column  # type: ignore[attr-defined]
        if wanted is None and len(available) == 1:
            return available[0]
        if wanted is None or wanted not in available:
            raise InvalidInput(
                f"{self.key}: name parameters.column, one of the input feature's columns {available}"
                + ("" if wanted is None else f" (got {wanted!r})"),
                field="parameters.column",
            )
        return wanted


@feature_plugins.register
class CrossSectionRank(CrossSectionalFeature):
    key = "cross_sectional.rank"
    operator = "rank"
    description = ("Per date, the percentile rank (rank - 1) / (n - 1) of another feature across the universe's "
                   "symbols that date (ties averaged; a lone value 0.5)")


@feature_plugins.register
class CrossSectionZScore(CrossSectionalFeature):
    key = "cross_sectional.zscore"
    operator = "zscore"
    description = "Per date, (x - mean) / std (ddof 1) of another feature across the universe's symbols that date"


@feature_plugins.register
class CrossSectionDemean(CrossSectionalFeature):
    key = "cross_sectional.demean"
    operator = "demean"
    description = "Per date, x - mean of another feature across the universe's symbols that date"


class CrossSectionExpressionParams(PluginParams):
    feature_id: str | None = Field(
        None, pattern=UUID_PATTERN, description="id of the feature definition whose columns the expression reads (required)"
    )
    expression: str = Field(
        "cs_rank(value)", min_length=1, max_length=2_000,
        description="a formula over the input feature's columns (by name) with cross-sectional operators "
        "(cs_rank, cs_zscore, cs_demean) and any other operator of the language, e.g. cs_rank(mom / vol)",
    )
    name: str = Field("value", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", description="the output column")

    @field_validator("feature_id")
    @classmethod
    def _canonical(cls, value: str | None) -> str | None:
        return None if value is None else str(uuid.UUID(value))

    @field_validator("expression")
    @classmethod
    def _canonical_expression(cls, value: str) -> str:
        """Syntax checked now, names once the input's columns are known (``input_column``);
        one spelling per formula, so spellings share a hash."""
        try:
            expr = parse_syntax(value)
            check(expr, fields_of(expr))  # lags, windows and types now; the names against the input later
            return canonical(expr)
        except InvalidInput as exc:
            raise ValueError(f"expression: {exc.message}") from None


@feature_plugins.register
class CrossSectionExpression(CrossSectionalFeature):
    """A formula over another feature's panel: its columns are the names, and the
    cross-sectional operators combine the symbols present on each date. Time-series
    operators in it run over each symbol's rows of the panel (its dates as a member)."""

    key = "cross_sectional.expression"
    operator = "expression"  # type: ignore[assignment]
    description = ("Per date, a formula over another feature's columns across the universe's symbols, e.g. "
                   "cs_rank(mom / vol): the expression language with cs_rank, cs_zscore, cs_demean")
    Params = CrossSectionExpressionParams

    @property
    def output_columns(self) -> list[str]:
        return [self.params.name]  # type: ignore[attr-defined]

    def group_field(self) -> str | None:
        return None

    def input_column(self, available: list[str]) -> str:
        """Every name in the formula must be one of the input's columns (422 pointing at it)."""
        check(parse_syntax(self.params.expression), available)  # type: ignore[attr-defined]
        return available[0]

    def compute_panel(self, panel: pd.DataFrame, groups: pd.Series | None = None) -> pd.DataFrame:
        expr = parse_syntax(self.params.expression)  # type: ignore[attr-defined]
        columns = list(panel.columns)
        check(expr, columns)
        stamps = pd.DatetimeIndex(panel.index.get_level_values(TIMESTAMP)).as_unit("ns").asi8
        codes, symbols = pd.factorize(panel.index.get_level_values(SYMBOL), sort=True)
        order = np.lexsort((stamps, codes))  # symbol after symbol, each in time order
        offsets = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(symbols)))])
        data = PanelData(
            tuple(str(s) for s in symbols), offsets, stamps[order],
            {c: panel[c].to_numpy(dtype="float64")[order] for c in fields_of(expr)},
        )
        out = np.empty(len(panel))
        out[order] = evaluate({"value": expr}, data)["value"]
        return pd.DataFrame({self.params.name: out}, index=panel.index)  # type: ignore[attr-defined]
