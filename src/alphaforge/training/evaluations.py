"""Signal evaluation of stored forecasts: what trading a model's (or a trial's) out-of-fold
predictions would have earned, net of costs (``alphaforge.evaluation.signals`` does the
arithmetic; this reads the forecasts and says what was evaluated).

The forecasts' ``forward_return`` is what holding the symbol from each forecast's date for
``horizon`` bars earned; one symbol is a sign strategy, several a quantile long-short
portfolio rebalanced every ``horizon`` dates."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.context import Context
from alphaforge.errors import InvalidInput
from alphaforge.marketdata.bars import Timeframe
from alphaforge.evaluation.signals import SignalReport, evaluate_signal_frame
from alphaforge.schemas.evaluations import EvaluationRequest
from alphaforge.training import definitions, out_of_fold, prediction


def check_evaluation_request(ctx: Context, request: EvaluationRequest) -> None:
    """The refusals that need no computing: 404 for an unknown or untrained model or a lost
    object, 422 for a URI that is none or a predict request the model refuses."""
    if request.predict is not None:
        assert request.model_id is not None
        prediction.check_predict_request(ctx, request.model_id, request.predict)
    elif request.model_id is not None:
        model = definitions.get_model(ctx, request.model_id)
        out_of_fold.check_stored(ctx, out_of_fold.model_key(ctx, request.model_id, model.out_of_fold_uri))
    else:
        assert request.out_of_fold_uri is not None
        out_of_fold.check_stored(ctx, out_of_fold.uri_key(ctx, request.out_of_fold_uri))


def _stored(ctx: Context, request: EvaluationRequest) -> tuple[bytes, int, dict[str, Any]]:
    """Stored forecasts' bytes, the horizon and a description of the source."""
    if request.model_id is not None:
        model = definitions.get_model(ctx, request.model_id)
        data = out_of_fold.parquet(ctx, request.model_id, model.out_of_fold_uri)
        horizon = request.horizon or _target_horizon(model)
        return data, horizon, {"model_id": str(model.id), "model_version": model.version}
    assert request.out_of_fold_uri is not None and request.horizon is not None
    return out_of_fold.parquet_at(ctx, request.out_of_fold_uri), request.horizon, {"out_of_fold_uri": request.out_of_fold_uri}


def _predicted(ctx: Context, request: EvaluationRequest) -> tuple[pd.DataFrame, int, dict[str, Any]]:
    """The model's forecasts over the range (as ``POST /models/{id}/predict`` gives them) and
    each one's realised forward return over ``horizon`` bars of its symbol (the bars after the
    range count: a forecast near its end is scored by what followed; none yet: dropped)."""
    assert request.model_id is not None and request.predict is not None
    model = definitions.get_model(ctx, request.model_id)
    horizon = request.horizon or _target_horizon(model)
    result = prediction.predict(ctx, request.model_id, request.predict)
    symbols = result.symbols or [result.symbol or ""] * len(result.timestamps)
    frame = pd.DataFrame({
        "timestamp": pd.DatetimeIndex(result.timestamps), "symbol": symbols, "prediction": result.predictions,
    })
    frame["forward_return"] = forward_returns(ctx, frame, request.predict.timeframe, [horizon])[horizon]
    source = {"model_id": str(model.id), "model_version": model.version,
              "predict": request.predict.model_dump(mode="json", exclude_none=True)}
    return frame, horizon, source


#: The last day a nanosecond timestamp holds: every bar after a forecast counts.
_LAST_DAY = datetime(2262, 4, 11, tzinfo=timezone.utc)


def forward_returns(
    ctx: Context, frame: pd.DataFrame, timeframe: Timeframe, horizons: list[int]
) -> dict[int, np.ndarray]:
    """Per horizon h, each row's (timestamp, symbol) forward return close[t + h] / close[t] - 1
    over its symbol's bars, aligned with ``frame``'s rows (NaN where the bars end first)."""
    out = {h: np.full(len(frame), np.nan) for h in horizons}
    for symbol, rows in frame.groupby("symbol", sort=False):
        stamps = pd.DatetimeIndex(rows["timestamp"])
        close = ctx.bars.get_bars(str(symbol), timeframe, stamps.min().to_pydatetime(), _LAST_DAY)["close"]
        at = np.flatnonzero(frame["symbol"].to_numpy() == symbol)
        for h in horizons:
            out[h][at] = (close.shift(-h) / close - 1).reindex(stamps).to_numpy()
    return out


def _timeframe(ctx: Context, request: EvaluationRequest) -> Timeframe:
    """The bars the forecasts were made on: the predict request's, the model's training's, else daily."""
    if request.predict is not None:
        return request.predict.timeframe
    if request.model_id is not None:
        model = definitions.get_model(ctx, request.model_id)
        return Timeframe(((model.lineage or {}).get("dataset") or {}).get("timeframe") or Timeframe.DAY.value)
    return Timeframe.DAY


def _target_horizon(model: Any) -> int:
    return int(((model.lineage or {}).get("dataset") or {}).get("target_horizon") or 1)


def trade(
    frame: pd.DataFrame, horizon: int, *, n_quantiles: int, weighting: str, cost_bps: float, bars_per_year: int = 252,
    with_ic: bool = True, ic_columns: dict[int, str] | None = None,
) -> SignalReport:
    """Stored forecasts (timestamp, symbol, prediction, forward_return) as a strategy: one
    symbol trades its sign, several a quantile long-short portfolio (``ValueError`` when they
    cannot be traded). The one way evaluations and leaderboards turn forecasts into returns;
    ``with_ic`` False skips the IC (a leaderboard reads the returns only); ``ic_columns``:
    horizon -> a forward-return column of ``frame`` for the IC decay (default: the horizon's)."""
    return evaluate_signal_frame(
        frame, symbol="symbol" if frame["symbol"].nunique() > 1 else None, horizon=horizon, n_quantiles=n_quantiles,
        weighting=weighting, cost_bps=cost_bps, bars_per_year=bars_per_year, ic_columns=ic_columns if with_ic else {},
    )


def evaluate(ctx: Context, request: EvaluationRequest) -> dict[str, Any]:
    """The report as the API answers it (summary, and one row per rebalance date)."""
    if request.predict is not None:
        frame, horizon, source = _predicted(ctx, request)
    else:
        data, horizon, source = _stored(ctx, request)
        frame = pd.read_parquet(io.BytesIO(data)).reset_index()
    if "forward_return" not in frame.columns:
        raise InvalidInput("these forecasts were stored without forward returns; train the model again to evaluate them")
    symbols = frame["symbol"].nunique()
    ic_columns = None
    if request.ic_horizons:
        decay = forward_returns(ctx, frame, _timeframe(ctx, request), sorted(set(request.ic_horizons)))
        ic_columns = {h: f"forward_return_{h}" for h in decay}
        frame = frame.assign(**{ic_columns[h]: values for h, values in decay.items()})
    try:
        report = trade(frame, horizon, n_quantiles=request.n_quantiles, weighting=request.weighting,
                       cost_bps=request.cost_bps, bars_per_year=request.bars_per_year, ic_columns=ic_columns)
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
