"""Fundamental features: the bars' symbol's point-in-time fundamentals read as of each bar.

A value at bar t uses only records whose ``available_at`` is at or before t (the vintage
known then): a quarter's EPS is used from its announcement on, never from its period end,
and a later restatement never changes an earlier bar. Where no figure is known yet the
value is NaN.

Ratios divide the bar's close by the latest known per-share figure. A P/E or P/B of a
non-positive EPS or book value is not meaningful, so ``pe_ratio`` and ``pb_ratio`` are NaN
where the figure is <= 0; ``earnings_yield`` (EPS / close) keeps negative values.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.features.base import FeatureInputs, FeaturePlugin, feature_plugins

FIELD_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


def _field(default: str, description: str = "A fundamentals field of the symbol") -> str:
    return Field(
        default,
        pattern=FIELD_PATTERN,
        description=f"{description} (GET /api/v1/market-data/{{symbol}}/fundamentals)",
    )


class FundamentalPlugin(FeaturePlugin):
    category = "fundamental"
    libraries = ("numpy",)

    #: True for a price ratio (the bars' close over a per-share figure).
    reads_close: ClassVar[bool] = False

    def bar_fields(self) -> tuple[str, ...]:
        """The bars' times only, and their close for a price ratio."""
        return ("close",) if self.reads_close else ()

    @property
    def lookback(self) -> int:
        return 0

    def _as_of(self, inputs: FeatureInputs, field: str) -> np.ndarray:
        return inputs.fundamentals[field].as_of(inputs.bars.timestamps)


def _finite(values: np.ndarray) -> np.ndarray:
    values[~np.isfinite(values)] = np.nan
    return values


class ValueParams(PluginParams):
    field: str = _field("eps")


@feature_plugins.register
class Value(FundamentalPlugin):
    key = "fundamental.value"
    description = "The latest figure of a fundamentals field known at each bar (its latest vintage then)."
    outputs = ("value",)
    Params = ValueParams

    def fundamental_fields(self) -> list[str]:
        return [self.params.field]  # type: ignore[attr-defined]

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        return {"value": self._as_of(inputs, self.params.field)}  # type: ignore[attr-defined]


def _price_ratio(close: np.ndarray, per_share: np.ndarray) -> np.ndarray:
    """close / a per-share figure; NaN where the figure is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(per_share > 0, close / per_share, np.nan)
    return _finite(ratio.astype("float64"))


class EpsParams(PluginParams):
    eps_field: str = _field("eps", "The earnings-per-share field")


class BookParams(PluginParams):
    book_field: str = _field("book_value_per_share", "The book-value-per-share field")


@feature_plugins.register
class PeRatio(FundamentalPlugin):
    key = "fundamental.pe_ratio"
    reads_close = True
    description = "close / EPS known at each bar; NaN where that EPS is <= 0 (a P/E of a loss is not meaningful)."
    outputs = ("pe_ratio",)
    Params = EpsParams

    def fundamental_fields(self) -> list[str]:
        return [self.params.eps_field]  # type: ignore[attr-defined]

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        return {"pe_ratio": _price_ratio(inputs.bars.close, self._as_of(inputs, self.params.eps_field))}  # type: ignore[attr-defined]


@feature_plugins.register
class PbRatio(FundamentalPlugin):
    key = "fundamental.pb_ratio"
    reads_close = True
    description = "close / book value per share known at each bar; NaN where that book value is <= 0."
    outputs = ("pb_ratio",)
    Params = BookParams

    def fundamental_fields(self) -> list[str]:
        return [self.params.book_field]  # type: ignore[attr-defined]

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        return {"pb_ratio": _price_ratio(inputs.bars.close, self._as_of(inputs, self.params.book_field))}  # type: ignore[attr-defined]


@feature_plugins.register
class EarningsYield(FundamentalPlugin):
    key = "fundamental.earnings_yield"
    reads_close = True
    description = "EPS known at each bar / close (the inverse of P/E, defined for losses too)."
    outputs = ("earnings_yield",)
    Params = EpsParams

    def fundamental_fields(self) -> list[str]:
        return [self.params.eps_field]  # type: ignore[attr-defined]

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        eps = self._as_of(inputs, self.params.eps_field)  # type: ignore[attr-defined]
        with np.errstate(divide="ignore", invalid="ignore"):
            value = eps / inputs.bars.close
        return {"earnings_yield": _finite(np.asarray(value, dtype="float64"))}


@feature_plugins.register
class EarningsSurprise(FundamentalPlugin):
    key = "fundamental.earnings_surprise"
    description = "The latest earnings surprise (field earnings_surprise) known at each bar."
    outputs = ("earnings_surprise",)

    def fundamental_fields(self) -> list[str]:
        return ["earnings_surprise"]

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        return {"earnings_surprise": self._as_of(inputs, "earnings_surprise")}
