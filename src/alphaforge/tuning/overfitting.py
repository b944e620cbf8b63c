"""Overfitting statistics of a tuning study's or an AutoML run's winner (issue 15): the glue
between stored out-of-fold forecasts and ``alphaforge.evaluation.overfitting``.

**Returns.** Each trial's (or leaderboard row's) test-fold forecasts are traded as the request's
``signal`` says (``alphaforge.evaluation.signals``, as ``POST /evaluations`` does): one symbol is a
sign strategy, a panel a quantile long-short portfolio, rebalanced every ``target_horizon`` bars,
net of ``cost_bps`` per unit of turnover. One period = one rebalance; its ``net`` return is what
enters every statistic. ``net_sharpe`` is annualised with 252 / horizon periods a year.

**Trials.** N counts the trials evaluated whose forecasts have a defined (non-zero variance)
per-period net Sharpe ratio: a study's complete trials; for AutoML, every complete trial of every
tuned candidate's study plus one per untuned candidate. Pruned and failed trials have no
forecasts and are not counted. V is the sample variance (ddof 1) of those N per-period Sharpe
ratios (0 for one trial).

**Winner.** A study's best trial by its metric; AutoML's rank-1 row. Its per-period Sharpe,
skew and (non-excess) kurtosis; PSR against 0; SR0 = expected max Sharpe of N skill-less trials
with variance V; DSR = PSR against SR0.

**PBO.** CSCV (``n_blocks`` blocks, selection by per-period Sharpe) over the T x N matrix whose
columns are the trials (tuning) or the leaderboard rows (AutoML) with forecasts, rows their
rebalance dates common to every column (inner join). Null, with ``pbo_note``, for fewer than
2 columns or fewer periods than blocks.
"""

from __future__ import annotations

import io
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.context import Context
from alphaforge.errors import NotFound
from alphaforge.evaluation import overfitting as stats
from alphaforge.schemas.tuning import SignalConfig
from alphaforge.training import evaluations, out_of_fold

BARS_PER_YEAR = 252


def periods_per_year(horizon: int) -> float:
    return BARS_PER_YEAR / horizon


def net_returns(frame: pd.DataFrame, horizon: int, signal: SignalConfig) -> pd.Series | None:
    """Per-rebalance-date net returns of a forecast frame (timestamp, symbol, prediction,
    forward_return columns); None when it cannot be traded (no forward returns, no rows, ...)."""
    if "forward_return" not in frame.columns or frame.empty:
        return None
    try:
        report = evaluations.trade(frame, horizon, n_quantiles=signal.n_quantiles, weighting=signal.weighting,
                                   cost_bps=signal.cost_bps, bars_per_year=BARS_PER_YEAR, with_ic=False)
    except ValueError:
        return None
    return report.periods["net"] if report.n_periods else None


def sharpe_per_period(returns: pd.Series | None) -> float | None:
    """mean / std (ddof 1); None when undefined (fewer than 2 periods, zero variance)."""
    if returns is None or len(returns) < 2:
        return None
    value = float(stats.sharpe_ratios(returns.to_numpy())[0])
    return value if math.isfinite(value) else None


def annualised(sharpe: float | None, horizon: int) -> float | None:
    return None if sharpe is None else sharpe * math.sqrt(periods_per_year(horizon))


def net_sharpe(frame: pd.DataFrame, horizon: int, signal: SignalConfig) -> float | None:
    """The annualised net Sharpe ratio of a forecast frame traded as ``signal`` says."""
    return annualised(sharpe_per_period(net_returns(frame, horizon, signal)), horizon)


def read_returns(ctx: Context, uri: str | None, horizon: int, signal: SignalConfig) -> pd.Series | None:
    """The net returns of the forecasts stored at ``uri`` (None when there are none or they are gone)."""
    if not uri:
        return None
    try:
        data = out_of_fold.parquet_at(ctx, uri)
    except NotFound:
        return None
    return net_returns(pd.read_parquet(io.BytesIO(data)).reset_index(), horizon, signal)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def population(sharpes: Sequence[float | None]) -> tuple[int, float]:
    """N and V of a set of per-period Sharpe ratios (undefined ones left out)."""
    finite = np.array([s for s in sharpes if s is not None and math.isfinite(s)], dtype=float)
    return len(finite), float(finite.var(ddof=1)) if len(finite) > 1 else 0.0


def deflated_sharpe(returns: pd.Series | None, n_trials: int, variance: float) -> float | None:
    """DSR of one series given N and V; None when undefined."""
    if returns is None or n_trials < 1 or sharpe_per_period(returns) is None:
        return None
    try:
        return _finite(stats.deflated_sharpe_ratio(returns.to_numpy(), n_trials=n_trials, trial_sharpe_variance=variance))
    except ValueError:
        return None


def summarize(
    returns: Mapping[Hashable, pd.Series | None], winner: Hashable | None, *, horizon: int, n_blocks: int,
    sharpes: Sequence[float | None] | None = None,
) -> dict[str, Any]:
    """The Overfitting fields (less best_trial / best_plugin_key): ``returns`` per trial (or row),
    ``winner`` a key of it; ``sharpes`` the per-period Sharpe ratios of every trial evaluated
    (default: those of ``returns``)."""
    if sharpes is None:
        sharpes = [sharpe_per_period(r) for r in returns.values()]
    n_trials, variance = population(sharpes)
    out: dict[str, Any] = {
        "n_trials": n_trials, "trial_sharpe_variance": variance if n_trials else None, "n_blocks": n_blocks,
        "best_net_sharpe": None, "best_sharpe_per_period": None, "skew": None, "kurtosis": None,
        "expected_max_sharpe": None, "probabilistic_sharpe": None, "deflated_sharpe": None, "pbo": None,
        "pbo_note": None, "note": None,
    }
    chosen = returns.get(winner) if winner is not None else None
    sr = sharpe_per_period(chosen)
    if chosen is None:
        out["note"] = "the winner has no forecasts that can be traded (no forward returns)"
    elif sr is None or len(chosen) < 3:
        out["note"] = f"the winner's net Sharpe ratio is undefined over its {len(chosen)} period(s) (zero variance or too few)"
    else:
        r = chosen.to_numpy(dtype=float)
        centred = r - r.mean()
        m2 = float(np.mean(centred**2))
        sr0 = stats.expected_max_sharpe(n_trials, variance)
        out.update(
            best_net_sharpe=annualised(sr, horizon), best_sharpe_per_period=sr,
            skew=_finite(np.mean(centred**3) / m2**1.5), kurtosis=_finite(np.mean(centred**4) / m2**2),
            expected_max_sharpe=_finite(sr0),
            probabilistic_sharpe=_finite(stats.probabilistic_sharpe_ratio(r, 0.0)),
            deflated_sharpe=_finite(stats.probabilistic_sharpe_ratio(r, sr0)),
        )
    matrix = trial_matrix(returns)
    out["n_periods"] = len(matrix)
    if matrix.shape[1] < 2:
        out["pbo_note"] = f"PBO needs at least 2 trials with forecasts; there are {matrix.shape[1]}"
    elif len(matrix) < n_blocks:
        out["pbo_note"] = (f"PBO needs at least one period per block: {len(matrix)} common rebalance dates, fewer than "
                           f"n_blocks={n_blocks} (lower signal.n_blocks or evaluate more periods)")
    else:
        try:
            out["pbo"] = stats.probability_of_backtest_overfitting(matrix.to_numpy(), n_blocks=n_blocks).pbo
        except ValueError as exc:
            out["pbo_note"] = f"PBO is undefined: {exc}"
    return out


def trial_matrix(returns: Mapping[Hashable, pd.Series | None]) -> pd.DataFrame:
    """T x N: one column per trial with returns, rows their common rebalance dates in time order."""
    present = {k: r for k, r in returns.items() if r is not None}
    if not present:
        return pd.DataFrame()
    return pd.concat(present, axis=1, join="inner").sort_index()


def mlflow_metrics(block: Mapping[str, Any]) -> dict[str, float | int | None]:
    """The block's figures as MLflow metrics ``overfitting.<name>`` (None is not logged)."""
    names = ("n_trials", "trial_sharpe_variance", "best_net_sharpe", "best_sharpe_per_period", "skew", "kurtosis",
             "expected_max_sharpe", "probabilistic_sharpe", "deflated_sharpe", "pbo", "n_blocks", "n_periods")
    return {f"overfitting.{n}": block.get(n) for n in names}
