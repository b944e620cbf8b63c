"""How much of a selected strategy's performance is selection: deflated Sharpe and PBO.

**Units.** Every Sharpe ratio here is *per period* and not annualised: mean / std (ddof=1)
of the per-period returns, risk-free rate 0. The formulas need it that way (T is the number
of periods the Sharpe was measured over); to annualise a Sharpe multiply by sqrt(periods per
year) *outside* them. Skew and kurtosis are the biased sample moments, kurtosis *not* excess
(3 for a normal), as in Bailey & López de Prado.

**Probabilistic Sharpe ratio** (Bailey & López de Prado 2012): the probability that the true
Sharpe exceeds a benchmark SR*, given the observed SR, skew g3, kurtosis g4 and length T:

    PSR(SR*) = Phi[ (SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2) ]

**Deflated Sharpe ratio** (Bailey & López de Prado 2014): the PSR of the selected (best) trial
against the Sharpe that the best of N skill-less trials is expected to reach,

    SR0 = sqrt(V) [ (1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)) ],

V the variance of the N trials' (per-period) Sharpe ratios, gamma Euler-Mascheroni's constant:
DSR = PSR(SR0). Both come from skfolio (``skfolio.measures.probabilistic_sharpe_ratio``,
``expected_max_sharpe_ratio``), imported on first use (skfolio pulls scikit-learn: ~1.4 s).
N should count *independent* trials: correlated trials (a dense grid) overstate it, which makes
the DSR conservative. NaN when undefined (T < 3, zero variance, a non-positive denominator).

**Probability of backtest overfitting** (Bailey, Borwein, López de Prado & Zhu 2015,
combinatorially symmetric cross-validation), written from the paper (no package has a reliable
one): a T x N matrix M of the trials' per-period returns (rows = periods, columns = trials) is
cut into S contiguous blocks of rows (S even; sizes as ``numpy.array_split``: when S does not
divide T the first T mod S blocks have one row more). For each of the C(S, S/2) ways to pick
S/2 blocks as the in-sample set J (the other half, J-bar, out of sample):

1. the metric of every trial on J (R) and on J-bar (R-bar) — Sharpe of the rows concatenated;
2. n* = argmax R (the first on a tie), the trial a researcher would have picked in sample;
3. its out-of-sample relative rank w = rank(R-bar[n*]) / (N + 1), ranks 1..N ascending with
   ties sharing their average rank, and the logit lambda = ln(w / (1 - w)).

PBO = #{lambda <= 0} / C(S, S/2): how often the in-sample winner is at or below the median out
of sample. Near 0: selection found something that persists; near 0.5 or above: the winner is
a draw from noise (or worse). A block set on which a trial's metric is undefined (zero
variance) ranks that trial last there. Vectorised: the metric on any union of blocks follows
from per-block sums, so all combinations are a few matrix products (C(16, 8) = 12,870
combinations of 200 trials over 5,040 periods: about 0.1 s on one core; ``bench/overfitting.py``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Combinations evaluated per vectorised chunk (bounds memory: chunk x trials floats x a few).
_CHUNK = 4096


def _returns_vector(returns: Any) -> np.ndarray:
    array = np.asarray(returns, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"returns must be one series of per-period returns (1-D), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"returns contains {int((~np.isfinite(array)).sum())} non-finite value(s)")
    return array


def sharpe_ratios(trial_returns: Any) -> np.ndarray:
    """Per-period Sharpe ratio (mean / std, ddof=1) of each column of a T x N matrix (or of a
    1-D series: a 1-element array); NaN for a column with zero variance."""
    array = np.asarray(trial_returns, dtype=float)
    array = array[:, None] if array.ndim == 1 else array
    std = array.std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(std > 0, array.mean(axis=0) / np.where(std > 0, std, 1.0), np.nan)


def probabilistic_sharpe_ratio(returns: Any, benchmark_sharpe: float = 0.0) -> float:
    """PSR: probability that the true per-period Sharpe of ``returns`` exceeds
    ``benchmark_sharpe`` (per period, not annualised)."""
    from skfolio.measures import probabilistic_sharpe_ratio as skfolio_psr

    return float(skfolio_psr(_returns_vector(returns), benchmark_sharpe_ratio=float(benchmark_sharpe)))


def expected_max_sharpe(n_trials: float, trial_sharpe_variance: float) -> float:
    """SR0: the per-period Sharpe the best of ``n_trials`` independent skill-less trials is
    expected to reach, given the variance of the trials' per-period Sharpe ratios."""
    from skfolio.measures import expected_max_sharpe_ratio

    if not (math.isfinite(trial_sharpe_variance) and trial_sharpe_variance >= 0):
        raise ValueError(f"trial_sharpe_variance must be a finite number >= 0, got {trial_sharpe_variance!r}")
    return float(expected_max_sharpe_ratio(n_trials=n_trials, trial_sharpe_ratio_std=math.sqrt(trial_sharpe_variance)))


def deflated_sharpe_ratio(returns: Any, *, n_trials: float, trial_sharpe_variance: float) -> float:
    """DSR of the selected trial's per-period ``returns``: its PSR against
    :func:`expected_max_sharpe` of ``n_trials`` trials whose per-period Sharpe ratios have
    variance ``trial_sharpe_variance``."""
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(n_trials, trial_sharpe_variance))


@dataclass(frozen=True)
class DeflatedSharpe:
    """The best trial of a set, deflated. Sharpe ratios per period (multiply by
    sqrt(periods per year) to annualise); ``kurtosis`` is not excess."""

    best: int
    sharpe: float
    skew: float
    kurtosis: float
    n_observations: int
    n_trials: int
    trial_sharpe_variance: float
    expected_max_sharpe: float
    psr: float
    dsr: float


def deflate_best_trial(trial_returns: Any) -> DeflatedSharpe:
    """Pick the trial (column of a T x N matrix of per-period returns) with the highest
    Sharpe and deflate it: N = the number of columns, V = the sample variance (ddof=1) of
    their Sharpe ratios (skfolio's ``deflated_sharpe_ratio`` convention)."""
    matrix = _trial_matrix(trial_returns, minimum_trials=1)
    sharpes = sharpe_ratios(matrix)
    if np.isnan(sharpes).all():
        raise ValueError("every trial has zero variance: no Sharpe ratio to select on")
    best = int(np.nanargmax(sharpes))
    finite = sharpes[np.isfinite(sharpes)]
    variance = float(finite.var(ddof=1)) if len(finite) > 1 else 0.0
    selected = matrix[:, best]
    centred = selected - selected.mean()
    m2 = float(np.mean(centred**2))
    sr0 = expected_max_sharpe(len(finite), variance)
    return DeflatedSharpe(
        best=best,
        sharpe=float(sharpes[best]),
        skew=float(np.mean(centred**3) / m2**1.5),
        kurtosis=float(np.mean(centred**4) / m2**2),
        n_observations=int(len(selected)),
        n_trials=int(len(finite)),
        trial_sharpe_variance=variance,
        expected_max_sharpe=sr0,
        psr=probabilistic_sharpe_ratio(selected, 0.0),
        dsr=probabilistic_sharpe_ratio(selected, sr0),
    )


# -- PBO ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PBOResult:
    """CSCV's outcome. Arrays have one entry per combination, in ``itertools.combinations``
    order of the in-sample block indices (``combinations``: C x S/2)."""

    pbo: float
    logits: np.ndarray
    n_combinations: int
    n_overfit: int  # combinations with logit <= 0
    n_blocks: int
    block_sizes: np.ndarray
    combinations: np.ndarray
    selected: np.ndarray  # in-sample best trial of each combination
    is_performance: np.ndarray  # its metric in sample
    oos_performance: np.ndarray  # its metric out of sample
    oos_relative_rank: np.ndarray  # w in (0, 1)

    @property
    def probability_of_oos_loss(self) -> float:
        """Share of combinations whose in-sample winner has a negative metric out of sample."""
        return float(np.mean(self.oos_performance < 0))


def _trial_matrix(trial_returns: Any, minimum_trials: int) -> np.ndarray:
    matrix = np.asarray(trial_returns, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"trial_returns must be a 2-D matrix, rows = periods and columns = trials; got shape "
                         f"{matrix.shape}")
    if matrix.shape[1] < minimum_trials:
        raise ValueError(f"trial_returns has {matrix.shape[1]} column(s) (trials); at least {minimum_trials} needed "
                         f"(rows = periods, columns = trials)")
    if matrix.shape[0] < 3:
        raise ValueError(f"trial_returns has {matrix.shape[0]} row(s) (periods); at least 3 needed")
    if not np.isfinite(matrix).all():
        raise ValueError(f"trial_returns contains {int((~np.isfinite(matrix)).sum())} non-finite value(s)")
    return matrix


def block_combinations(n_blocks: int) -> np.ndarray:
    """All C(S, S/2) in-sample block sets, ``itertools.combinations`` order, as a C x S/2 array."""
    return np.array(list(itertools.combinations(range(n_blocks), n_blocks // 2)), dtype=np.int64)


def _average_rank_of(values: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """Rank (1..N, ascending, ties averaged) of values[c, selected[c]] within row c."""
    chosen = values[np.arange(len(values)), selected][:, None]
    below = (values < chosen).sum(axis=1)
    equal = (values == chosen).sum(axis=1)
    return below + (equal + 1) / 2.0


def _sufficient_metric(metric: str, count: np.ndarray, sums: np.ndarray, squares: np.ndarray,
                       shift: np.ndarray) -> np.ndarray:
    """Metric from centred sums: count (C,), sums and squares (C x N) of x = r - shift.
    Overwrites ``sums`` and ``squares`` (in-place arithmetic: this is the hot loop)."""
    count = count[:, None].astype(float)
    if metric == "mean":
        mean = np.divide(sums, count, out=sums)
        return np.add(mean, shift, out=mean)
    spread = np.multiply(sums, sums)
    spread /= count  # sum(x)^2 / m
    np.subtract(squares, spread, out=spread)  # (m - 1) * variance
    mean = np.divide(sums, count, out=sums)
    # zero variance (up to the rounding of the subtraction): the Sharpe is undefined
    undefined = spread <= 1e-12 * squares
    spread /= count - 1.0
    np.sqrt(spread, out=spread)
    np.add(mean, shift, out=mean)
    spread[undefined] = 1.0
    np.divide(mean, spread, out=mean)
    mean[undefined] = np.nan
    return mean


def probability_of_backtest_overfitting(
    trial_returns: Any,
    *,
    n_blocks: int = 16,
    metric: str | Callable[[np.ndarray], np.ndarray] = "sharpe",
) -> PBOResult:
    """PBO of selecting the best of N trials by CSCV (see the module docstring).

    ``trial_returns``: T x N per-period returns, rows = periods (in time order), columns =
    trials. ``n_blocks`` (S): even, <= T. ``metric``: ``"sharpe"`` (per-period Sharpe of the
    concatenated rows, ddof=1), ``"mean"``, or a callable mapping an (m x N) slice of rows
    to N scores (evaluated combination by combination: slower)."""
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, (int, np.integer)):
        raise ValueError(f"n_blocks must be an even integer, got {n_blocks!r}")
    n_blocks = int(n_blocks)
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"n_blocks must be an even integer >= 2 (CSCV splits the blocks into two halves), "
                         f"got {n_blocks}")
    matrix = np.asarray(trial_returns, dtype=float)
    if matrix.ndim == 2 and matrix.shape[0] < n_blocks:
        raise ValueError(f"trial_returns has {matrix.shape[0]} rows (periods) but n_blocks={n_blocks} needs at "
                         f"least one period per block (T >= S); rows are periods, columns are trials "
                         f"(shape {matrix.shape}: transposed?)")
    matrix = _trial_matrix(matrix, minimum_trials=2)
    if not (callable(metric) or metric in ("sharpe", "mean")):
        raise ValueError(f"metric must be 'sharpe', 'mean' or a callable, got {metric!r}")
    n_periods, n_trials = matrix.shape
    bounds = np.array([len(b) for b in np.array_split(np.arange(n_periods), n_blocks)])
    starts = np.concatenate(([0], np.cumsum(bounds)))
    combos = block_combinations(n_blocks)
    in_sample = np.zeros((len(combos), n_blocks), dtype=bool)
    in_sample[np.arange(len(combos))[:, None], combos] = True

    if callable(metric):
        is_perf = np.empty((len(combos), n_trials))
        oos_perf = np.empty((len(combos), n_trials))
        block_of_row = np.repeat(np.arange(n_blocks), bounds)
        for c, chosen in enumerate(in_sample):
            rows = chosen[block_of_row]
            is_perf[c] = np.asarray(metric(matrix[rows]), dtype=float)
            oos_perf[c] = np.asarray(metric(matrix[~rows]), dtype=float)
        chunks = [(0, len(combos), is_perf, oos_perf)]
    else:
        shift = matrix.mean(axis=0)
        centred = matrix - shift
        block_sums = np.add.reduceat(centred, starts[:-1], axis=0)  # S x N
        block_squares = np.add.reduceat(centred**2, starts[:-1], axis=0)
        total_sums, total_squares = block_sums.sum(axis=0), block_squares.sum(axis=0)
        chunks = []
        for lo in range(0, len(combos), _CHUNK):
            weights = in_sample[lo:lo + _CHUNK].astype(float)
            count = weights @ bounds
            sums, squares = weights @ block_sums, weights @ block_squares
            oos_perf = _sufficient_metric(metric, n_periods - count, total_sums - sums, total_squares - squares, shift)
            is_perf = _sufficient_metric(metric, count, sums, squares, shift)
            chunks.append((lo, lo + len(weights), is_perf, oos_perf))

    selected = np.empty(len(combos), dtype=np.int64)
    is_best = np.empty(len(combos))
    oos_best = np.empty(len(combos))
    rank = np.empty(len(combos))
    for lo, hi, is_perf, oos_perf in chunks:
        is_perf = np.where(np.isnan(is_perf), -np.inf, is_perf)
        oos_perf = np.where(np.isnan(oos_perf), -np.inf, oos_perf)
        pick = np.argmax(is_perf, axis=1)
        selected[lo:hi] = pick
        is_best[lo:hi] = is_perf[np.arange(hi - lo), pick]
        oos_best[lo:hi] = oos_perf[np.arange(hi - lo), pick]
        rank[lo:hi] = _average_rank_of(oos_perf, pick)
    relative = rank / (n_trials + 1.0)
    logits = np.log(relative / (1.0 - relative))
    n_overfit = int((logits <= 0).sum())
    return PBOResult(
        pbo=n_overfit / len(combos),
        logits=logits,
        n_combinations=len(combos),
        n_overfit=n_overfit,
        n_blocks=n_blocks,
        block_sizes=bounds,
        combinations=combos,
        selected=selected,
        is_performance=is_best,
        oos_performance=oos_best,
        oos_relative_rank=relative,
    )
