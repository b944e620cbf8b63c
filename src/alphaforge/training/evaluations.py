"""Signal evaluation of stored forecasts: what trading a model's (or a trial's) out-of-fold
predictions would have earned, net of costs (``alphaforge.evaluation.signals`` does the
arithmetic; this reads the forecasts and says what was evaluated).

The forecasts' ``forward_return`` is what holding the symbol from each forecast's date for
``horizon`` bars earned; one symbol is a sign strategy, several a quantile long-short
portfolio rebalanced every ``horizon`` dates."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd

from alphaforge.context import Context
from alphaforge.errors import InvalidInput
from alphaforge.evaluation.signals import SignalReport, evaluate_signal_frame
from alphaforge.schemas.evaluations import EvaluationRequest
from alphaforge.training import definitions, out_of_fold


def check_evaluation_request(ctx: Context, request: EvaluationRequest) -> tuple[bytes, int, dict[str, Any]]:
    """The forecasts' bytes, the horizon and a description of the source: 404 for an
    unknown or untrained model or a lost object, 422 for a URI that is none."""
    if request.model_id is not None:
        model = definitions.get_model(ctx, request.model_id)
        data = out_of_fold.parquet(ctx, request.model_id, model.out_of_fold_uri)
        horizon = request.horizon or int(((model.lineage or {}).get("dataset") or {}).get("target_horizon") or 1)
        return data, horizon, {"model_id": str(model.id), "model_version": model.version}
    assert request.out_of_fold_uri is not None and request.horizon is not None
    return out_of_fold.parquet_at(ctx, request.out_of_fold_uri), request.horizon, {"out_of_fold_uri": request.out_of_fold_uri}


def trade(
    frame: pd.DataFrame, horizon: int, *, n_quantiles: int, weighting: str, cost_bps: float, bars_per_year: int = 252,
    with_ic: bool = True,
) -> SignalReport:
    """Stored forecasts (timestamp, symbol, prediction, forward_return) as a strategy: one
    symbol trades its sign, several a quantile long-short portfolio (``ValueError`` when they
    cannot be traded). The one way evaluations and leaderboards turn forecasts into returns;
    ``with_ic`` False skips the IC (a leaderboard reads the returns only)."""
    return evaluate_signal_frame(
        frame, symbol="symbol" if frame["symbol"].nunique() > 1 else None, horizon=horizon, n_quantiles=n_quantiles,
        weighting=weighting, cost_bps=cost_bps, bars_per_year=bars_per_year, ic_columns=None if with_ic else {},
    )


def evaluate(ctx: Context, request: EvaluationRequest) -> dict[str, Any]:
    """The report as the API answers it (summary, and one row per rebalance date)."""
    data, horizon, source = check_evaluation_request(ctx, request)
    frame = pd.read_parquet(io.BytesIO(data)).reset_index()
    if "forward_return" not in frame.columns:
        raise InvalidInput("these forecasts were stored without forward returns; train the model again to evaluate them")
    symbols = frame["symbol"].nunique()
    try:
        report = trade(frame, horizon, n_quantiles=request.n_quantiles, weighting=request.weighting,
                       cost_bps=request.cost_bps, bars_per_year=request.bars_per_year)
    except ValueError as exc:
        raise InvalidInput(f"cannot evaluate these forecasts: {exc}") from None
    periods = report.periods.reset_index()
    stamp = periods.columns[0]
    return {
        "source": source | {"rows": len(frame), "symbols": symbols, "horizon": horizon},
        "summary": report.summary(),
        "periods": [
            {"timestamp": pd.Timestamp(row[stamp]).isoformat(), **{k: float(row[k]) for k in ("gross", "turnover", "cost", "net", "equity")}}
            for _, row in periods.iterrows()
        ],
    }
