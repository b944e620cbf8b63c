"""Request and response shapes of signal evaluation (``/api/v1/evaluations``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, Field, model_validator

from alphaforge.schemas.models import PredictRequest
from alphaforge.schemas.request import RequestModel


class EvaluationRequest(RequestModel):
    """A prediction set to evaluate as money: a model's out-of-fold predictions, or those a
    tuning trial or a leaderboard row points at (``out_of_fold_uri``)."""

    model_id: uuid.UUID | None = Field(
        None, description="evaluate this model's last training's out-of-fold predictions, or with `predict` its forecasts"
    )
    predict: PredictRequest | None = Field(
        None, description="with model_id: the model's forecasts over this range (a symbol, a universe or symbols), "
        "scored against the returns realised after each (read from the bars)",
    )
    out_of_fold_uri: str | None = Field(
        None, max_length=1000, description="or a tuning trial's or a leaderboard row's out_of_fold_uri"
    )
    horizon: int | None = Field(
        None, ge=1, le=1000,
        description="bars each forecast looks ahead (the holding period); default: the model's target_horizon "
        "(required with out_of_fold_uri)",
    )
    n_quantiles: int = Field(5, ge=2, le=20, description="a panel's quantiles: long the top, short the bottom")
    weighting: Literal["equal", "prediction"] = Field("equal", description="within each leg")
    cost_bps: float = Field(0.0, ge=0.0, le=10_000.0, description="cost in basis points per unit of turnover")
    bars_per_year: int = Field(252, ge=1, le=100_000, description="annualisation: periods per year = bars_per_year / horizon")
    ic_horizons: list[Annotated[int, Field(ge=1, le=250)]] = Field(
        default_factory=list, max_length=10,
        description="IC decay: the mean per-date rank IC of the forecasts against the forward return over each of "
        "these horizons (bars, read from each symbol's bars); empty: the horizon only",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.model_id is None) == (self.out_of_fold_uri is None):
            raise ValueError("give exactly one of model_id and out_of_fold_uri")
        if self.predict is not None and self.model_id is None:
            raise ValueError("predict needs model_id: the model whose forecasts to evaluate")
        if self.out_of_fold_uri is not None and self.horizon is None:
            raise ValueError("horizon is required with out_of_fold_uri (the bars each forecast looks ahead)")
        return self


class EvaluationPeriod(BaseModel):
    timestamp: str = Field(description="the rebalance date (ISO 8601, UTC)")
    gross: float
    turnover: float
    cost: float
    net: float
    equity: float = Field(description="cumulative net value, starting from 1")


class EvaluationResponse(BaseModel):
    source: dict[str, Any] = Field(description="what was evaluated: the model or URI, its rows and symbols")
    summary: dict[str, Any] = Field(
        description="mode (sign or long_short), annual_return, annual_volatility, sharpe, sortino, max_drawdown, "
        "hit_rate, mean_turnover, gross_annual_return, gross_sharpe, ic_decay, quantile_mean_returns, n_periods, ..."
    )
    periods: list[EvaluationPeriod] = Field(description="one per rebalance date: the equity curve and per-period returns")
