"""A prediction set evaluated as money: the strategy it implies, net of costs, and its statistics.

Input, one row per (timestamp, symbol): the prediction made at ``t`` and the realised forward
return of holding the symbol from ``t`` for ``horizon`` bars (computed by the caller, e.g. the
training target). Rows whose prediction or forward return is NaN are dropped first (the last
``horizon`` bars have no forward return); infinite values are refused (``ValueError``).

**Rebalancing.** The calendar is the sorted set of timestamps left; the strategy rebalances
on every ``horizon``-th of them, starting with the first (``calendar[::horizon]``), so holding
periods do not overlap and each period's return is the realised forward return of its
rebalance date. (If a whole date is missing inside the range, the grid follows the dates
present: give a full calendar.)

**Positions.**

- One symbol: a sign strategy, position ``sign(prediction)`` (+1, -1, or 0 when the prediction
  is exactly 0), one unit of capital.
- Several symbols: a dollar-neutral long-short portfolio of gross exposure 1 (sum of |w| = 1:
  one unit of capital, half long, half short). Each rebalance date, the symbols present are
  put in ``n_quantiles`` quantiles by prediction, exactly as ``pandas.qcut`` /
  alphalens do on distinct values (tied predictions share the lower quantile: the bucket of
  their lowest rank), 1 = lowest. The top quantile is held long, the bottom one short:

  ``weighting="equal"``       each leg equal-weighted, +0.5 / n_top and -0.5 / n_bottom, so
                              the period return is (mean top - mean bottom) / 2;
  ``weighting="prediction"``  alphalens' factor weighting (``factor_weights(demeaned=True)``)
                              on the two legs' symbols: w = (p - mean p) / sum |p - mean p|,
                              the mean over both legs. Dollar neutral by construction; with
                              strongly skewed predictions a top-quantile symbol below the legs'
                              mean gets a small short weight (never with symmetric predictions).

  A date with fewer than 2 symbols, or on which either leg is empty (every prediction equal),
  holds no position.

**Turnover and costs.** turnover_t = sum over symbols of |w_t - w_{t-1}|, against the previous
period's *target* weights, not the weights drifted by that period's returns: simple,
reproducible, and short of the true trading only by the drift (second order over a holding
period). The first period trades in from cash (turnover = gross exposure, 1); the final
liquidation is not charged. net_t = gross_t - cost_bps / 1e4 * turnover_t.

**Statistics** (numpy, per-period net returns r_1..r_n, P = ``bars_per_year / horizon``
periods per year; each ``None`` when undefined, never NaN):

- equity_t = prod_{i<=t} (1 + r_i), starting from 1 (compounded, like empyrical);
- annual return = equity_n ** (P / n) - 1 (CAGR; -1 when the equity reaches 0);
- annual volatility = std(r, ddof=1) * sqrt(P);
- Sharpe = mean(r) / std(r, ddof=1) * sqrt(P) (risk-free rate 0);
- Sortino = mean(r) * P / (sqrt(mean(min(r, 0) ** 2)) * sqrt(P)) (target 0, over all periods);
- max drawdown = min_t equity_t / max_{s<=t} equity_s - 1, the peak including the start value 1
  (a negative number; empyrical's omits the start and misses a first-period loss);
- hit rate = share of periods with a position whose net return is > 0;
- mean turnover over the periods.

These are empyrical's definitions (empyrical-reloaded is not a dependency: the tests check
against it). **IC decay:** the mean per-date Spearman IC of the prediction against the forward
return of each horizon the caller passes (``ic_forward_returns``: horizon -> returns aligned
with the rows; by default only ``horizon``), over every date (not only rebalance dates), by
:func:`alphaforge.evaluation.cross_section.ic_by_date` (dates with fewer than 2 pairs or a
constant side skipped). With one symbol there is no cross-section: the time-series Spearman
correlation over all rows is reported instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from alphaforge.evaluation.cross_section import ic_by_date

Weighting = Literal["equal", "prediction"]
WEIGHTINGS = ("equal", "prediction")


@dataclass(frozen=True)
class SignalReport:
    """What :func:`evaluate_signals` found. Scalars are ``float``/``int`` or ``None``.

    ``periods``: one row per rebalance date (index: its timestamp) with ``gross``,
    ``turnover``, ``cost``, ``net`` and ``equity`` (cumulative net value, start 1).
    ``quantile_returns``: per rebalance date, the mean forward return of each quantile
    (columns 1..n_quantiles, NaN for an empty one); ``None`` for the sign strategy.
    ``weights``: the target weights per rebalance date (columns: symbols)."""

    mode: Literal["sign", "long_short"]
    horizon: int
    n_quantiles: int | None
    weighting: str | None
    cost_bps: float
    periods_per_year: float
    n_periods: int
    annual_return: float | None
    annual_volatility: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float | None
    hit_rate: float | None
    mean_turnover: float | None
    gross_annual_return: float | None
    gross_sharpe: float | None
    ic_decay: dict[int, float | None]
    periods: pd.DataFrame
    quantile_returns: pd.DataFrame | None
    weights: pd.DataFrame

    @property
    def equity(self) -> pd.Series:
        return self.periods["equity"]

    @property
    def quantile_mean_returns(self) -> pd.Series | None:
        """Mean over rebalance dates of each quantile's mean forward return."""
        return None if self.quantile_returns is None else self.quantile_returns.mean()

    def summary(self) -> dict[str, Any]:
        """The scalars, the IC decay and the quantile means, JSON-ready (no NaN)."""
        scalars = ("mode", "horizon", "n_quantiles", "weighting", "cost_bps", "periods_per_year", "n_periods",
                   "annual_return", "annual_volatility", "sharpe", "sortino", "max_drawdown", "hit_rate",
                   "mean_turnover", "gross_annual_return", "gross_sharpe")
        out: dict[str, Any] = {name: getattr(self, name) for name in scalars}
        out["ic_decay"] = {str(h): v for h, v in self.ic_decay.items()}
        means = self.quantile_mean_returns
        out["quantile_mean_returns"] = None if means is None else {str(q): _finite(v) for q, v in means.items()}
        return out


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _vector(name: str, values: Any, n: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=float).reshape(-1)
    if np.isinf(array).any():
        raise ValueError(f"{name} contains {int(np.isinf(array).sum())} infinite value(s)")
    if n is not None and len(array) != n:
        raise ValueError(f"{name} has {len(array)} entries but predictions has {n}: give one per row")
    return array


def _positive_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def period_statistics(net: np.ndarray, periods_per_year: float) -> dict[str, float | None]:
    """Annual return, annual volatility, Sharpe, Sortino and max drawdown of per-period
    returns (the module docstring has the formulas); ``None`` where undefined."""
    r = np.asarray(net, dtype=float)
    n = len(r)
    out: dict[str, float | None] = dict.fromkeys(
        ("annual_return", "annual_volatility", "sharpe", "sortino", "max_drawdown"))
    if n == 0:
        return out
    equity = np.cumprod(1.0 + r)
    final = float(equity[-1])
    out["annual_return"] = _finite(final ** (periods_per_year / n) - 1.0) if final > 0 else -1.0
    peak = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
    out["max_drawdown"] = _finite(np.min(equity / peak - 1.0))
    mean = float(r.mean())
    if n >= 2:
        std = float(r.std(ddof=1))
        out["annual_volatility"] = _finite(std * math.sqrt(periods_per_year))
        out["sharpe"] = _finite(mean / std * math.sqrt(periods_per_year)) if std > 0 else None
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    out["sortino"] = _finite(mean / downside * math.sqrt(periods_per_year)) if downside > 0 else None
    return out


def quantile_buckets(predictions: np.ndarray, n_quantiles: int) -> np.ndarray:
    """Quantile (1..n_quantiles) of each finite entry of a dates x symbols matrix, row by row;
    0 where the entry is NaN or its row has fewer than 2 finite entries.

    For k distinct values, ``pandas.qcut(values, n)`` puts the value of 0-based rank i in
    1 + #{edges j*(k-1)/n < i} = clip(ceil(i * n / (k - 1)), 1, n) (its edges are the
    linearly interpolated quantiles); tied values take the bucket of their lowest rank."""
    frame = pd.DataFrame(predictions)
    rank = frame.rank(axis=1, method="min").to_numpy() - 1.0  # 0-based, NaN stays NaN
    k = np.isfinite(predictions).sum(axis=1)[:, None]
    present = np.isfinite(rank) & (k >= 2)
    i = np.where(present, rank, 0).astype(np.int64)
    denominator = np.maximum(k - 1, 1)
    bucket = np.clip(-((-i * n_quantiles) // denominator), 1, n_quantiles)
    return np.where(present, bucket, 0)


def long_short_weights(predictions: np.ndarray, n_quantiles: int, weighting: str) -> tuple[np.ndarray, np.ndarray]:
    """Target weights (dates x symbols, 0 where no position) and the quantile buckets."""
    bucket = quantile_buckets(predictions, n_quantiles)
    top, bottom = bucket == n_quantiles, bucket == 1
    n_top, n_bottom = top.sum(axis=1, keepdims=True), bottom.sum(axis=1, keepdims=True)
    active = (n_top > 0) & (n_bottom > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if weighting == "equal":
            weights = np.where(top, 0.5 / n_top, 0.0) - np.where(bottom, 0.5 / n_bottom, 0.0)
        else:
            legs = top | bottom
            leg_values = np.where(legs, predictions, 0.0)
            mean = leg_values.sum(axis=1, keepdims=True) / np.maximum(legs.sum(axis=1, keepdims=True), 1)
            demeaned = np.where(legs, leg_values - mean, 0.0)
            gross = np.abs(demeaned).sum(axis=1, keepdims=True)
            weights = np.where(gross > 0, demeaned / np.where(gross > 0, gross, 1.0), 0.0)
    return np.where(active, weights, 0.0), bucket


def _ic_decay(ic_returns: Mapping[int, np.ndarray], predictions: np.ndarray, timestamps: pd.Index,
              one_symbol: bool) -> dict[int, float | None]:
    out: dict[int, float | None] = {}
    for h in sorted(ic_returns):
        returns = ic_returns[h]
        if one_symbol:
            pair = np.isfinite(returns) & np.isfinite(predictions)
            x, y = predictions[pair], returns[pair]
            ok = len(x) >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0
            out[h] = _finite(stats.spearmanr(x, y).statistic) if ok else None
        else:
            daily = ic_by_date(returns, predictions, timestamps=timestamps, rank=True)
            out[h] = _finite(daily.mean()) if len(daily) else None
    return out


def evaluate_signals(
    predictions: Any,
    forward_returns: Any,
    *,
    timestamps: Any,
    symbols: Any = None,
    horizon: int = 1,
    n_quantiles: int = 5,
    weighting: Weighting = "equal",
    cost_bps: float = 0.0,
    bars_per_year: float = 252,
    ic_forward_returns: Mapping[int, Any] | None = None,
) -> SignalReport:
    """Evaluate predictions as the strategy they imply (see the module docstring).

    ``predictions``, ``forward_returns``, ``timestamps`` and ``symbols`` (``None``: one
    symbol) are aligned, one entry per row, in any order; ``forward_returns`` is the return
    of holding the row's symbol from its timestamp for ``horizon`` bars.
    ``ic_forward_returns`` maps horizons (bars) to forward returns aligned with the rows, for
    the IC decay (e.g. ``{1: r1, 2: r2, 5: r5}``); by default ``{horizon: forward_returns}``."""
    p = _vector("predictions", predictions)
    n = len(p)
    r = _vector("forward_returns", forward_returns, n)
    dates = pd.Index(timestamps)
    if len(dates) != n:
        raise ValueError(f"timestamps has {len(dates)} entries but predictions has {n}: give one per row")
    if dates.hasnans:
        raise ValueError("timestamps has missing values; every row needs one")
    names = pd.Index(np.zeros(n, dtype=np.int64) if symbols is None else symbols)
    if len(names) != n:
        raise ValueError(f"symbols has {len(names)} entries but predictions has {n}: give one per row")
    horizon = _positive_int("horizon", horizon, 1)
    n_quantiles = _positive_int("n_quantiles", n_quantiles, 2)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if not (isinstance(cost_bps, (int, float)) and math.isfinite(cost_bps) and cost_bps >= 0):
        raise ValueError(f"cost_bps must be a finite number >= 0, got {cost_bps!r}")
    if not (isinstance(bars_per_year, (int, float)) and math.isfinite(bars_per_year) and bars_per_year > 0):
        raise ValueError(f"bars_per_year must be a finite number > 0, got {bars_per_year!r}")
    ic_inputs = {horizon: r} if ic_forward_returns is None else {
        _positive_int("ic_forward_returns horizon", h, 1): _vector(f"ic_forward_returns[{h}]", v, n)
        for h, v in ic_forward_returns.items()
    }

    keep = np.isfinite(p) & np.isfinite(r)
    date_codes, calendar = pd.factorize(dates[keep], sort=True)
    symbol_codes, universe = pd.factorize(names[keep], sort=True)
    cells = date_codes.astype(np.int64) * max(len(universe), 1) + symbol_codes
    if len(np.unique(cells)) != len(cells):
        raise ValueError("two rows share a (timestamp, symbol): give one prediction per symbol and date")
    one_symbol = len(universe) <= 1
    rebalance = np.arange(0, len(calendar), horizon)
    n_dates, n_symbols = len(calendar), len(universe)
    P = np.full((n_dates, n_symbols), np.nan)
    R = np.full((n_dates, n_symbols), np.nan)
    P[date_codes, symbol_codes] = p[keep]
    R[date_codes, symbol_codes] = r[keep]
    P, R = P[rebalance], R[rebalance]

    if one_symbol:
        weights = np.sign(np.nan_to_num(P))
        quantile_returns = None
    else:
        weights, bucket = long_short_weights(P, n_quantiles, weighting)
        sums = np.stack([np.where(bucket == q, R, 0.0).sum(axis=1) for q in range(1, n_quantiles + 1)], axis=1)
        counts = np.stack([(bucket == q).sum(axis=1) for q in range(1, n_quantiles + 1)], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            quantile_returns = pd.DataFrame(np.where(counts > 0, sums / counts, np.nan),
                                            index=calendar[rebalance], columns=range(1, n_quantiles + 1))
    gross = np.where(weights != 0, weights * np.nan_to_num(R), 0.0).sum(axis=1)
    turnover = np.abs(np.diff(weights, axis=0, prepend=np.zeros((1, n_symbols)))).sum(axis=1)
    cost = cost_bps / 1e4 * turnover
    net = gross - cost
    index = pd.Index(calendar[rebalance], name=dates.name or "timestamp")
    periods = pd.DataFrame({"gross": gross, "turnover": turnover, "cost": cost, "net": net,
                            "equity": np.cumprod(1.0 + net)}, index=index)
    periods_per_year = float(bars_per_year) / horizon
    net_stats = period_statistics(net, periods_per_year)
    gross_stats = period_statistics(gross, periods_per_year)
    holding = np.abs(weights).sum(axis=1) > 0
    columns = pd.Index(universe if symbols is not None else ["position"] * n_symbols, name="symbol")
    return SignalReport(
        mode="sign" if one_symbol else "long_short",
        horizon=horizon,
        n_quantiles=None if one_symbol else n_quantiles,
        weighting=None if one_symbol else weighting,
        cost_bps=float(cost_bps),
        periods_per_year=periods_per_year,
        n_periods=len(rebalance),
        **net_stats,
        hit_rate=_finite(np.mean(net[holding] > 0)) if holding.any() else None,
        mean_turnover=_finite(turnover.mean()) if len(turnover) else None,
        gross_annual_return=gross_stats["annual_return"],
        gross_sharpe=gross_stats["sharpe"],
        ic_decay=_ic_decay(ic_inputs, p, dates, one_symbol),
        periods=periods,
        quantile_returns=quantile_returns,
        weights=pd.DataFrame(weights, index=index, columns=columns),
    )


def evaluate_signal_frame(
    frame: pd.DataFrame,
    *,
    prediction: str = "prediction",
    forward_return: str = "forward_return",
    timestamp: str = "timestamp",
    symbol: str | None = "symbol",
    ic_columns: Mapping[int, str] | None = None,
    **options: Any,
) -> SignalReport:
    """:func:`evaluate_signals` on a long frame's columns (``symbol=None``: one symbol);
    ``ic_columns`` maps horizons to forward-return columns for the IC decay (e.g.
    ``{1: "fwd_1", 5: "fwd_5"}``); ``options`` are evaluate_signals' keywords."""
    missing = [c for c in (prediction, forward_return, timestamp, symbol, *(ic_columns or {}).values())
               if c is not None and c not in frame.columns]
    if missing:
        raise ValueError(f"frame has no column(s) {missing}; it has {list(frame.columns)}")
    return evaluate_signals(
        frame[prediction].to_numpy(),
        frame[forward_return].to_numpy(),
        timestamps=frame[timestamp].to_numpy(),
        symbols=None if symbol is None else frame[symbol].to_numpy(),
        ic_forward_returns=None if ic_columns is None else {h: frame[c].to_numpy() for h, c in ic_columns.items()},
        **options,
    )
