"""Signal evaluation and overfitting statistics (issue 15): how long they take at full size.

Data, all SYNTHETIC (seeded):

1. evaluation: 20 symbols x 20 years (``common.synthetic_universe(20)``, 5,040 business
   days each: 100,800 rows). Forward returns over h bars from the closes,
   close[t+h] / close[t] - 1 (NaN for the last h bars); the prediction is a weak planted
   signal, 0.05 x the z-scored 5-bar forward return + N(0, 1) noise (IC about 0.05).
   Timed: ``evaluate_signals`` with horizon 5, 5 quantiles, 5 bps per unit of turnover and
   IC decay at horizons 1, 2, 5, 10 and 20 — equal and prediction weighting — and the
   one-symbol sign strategy (horizon 1) on the first symbol.
2. PBO: ``probability_of_backtest_overfitting`` of 200 trials x 5,040 periods (fat-tailed noise,
   Student t with 4 degrees of freedom, 1 % scale) with 16 blocks: C(16, 8) = 12,870
   combinations. For scale, the same CSCV as a plain loop over combinations (numpy
   mean / std per block set) is timed on the first ``--loop-combinations`` combinations and
   extrapolated to all of them (labelled so).
3. DSR: ``deflate_best_trial`` on the same matrix; skfolio's first import (in a fresh
   interpreter) is timed separately, since the first call pays it.

Each figure is the median of ``--repeats`` runs (the GC collected before and off during each).
Before timing, the bench waits up to ``--max-wait`` s for the 1-minute load average to fall
below 0.7 (and records whether it did).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from bench.common import (
    BARS_20Y,
    machine_info,
    machine_line,
    start_calibration,
    synthetic_universe,
    table,
    time_once,
    wait_for_quiet,
    write_results,
)

NAME = "overfitting"
N_SYMBOLS = 20
HORIZON = 5
IC_HORIZONS = (1, 2, 5, 10, 20)
COST_BPS = 5.0
N_TRIALS = 200
N_BLOCKS = 16
#: "well under a few seconds" (issue 15) for PBO over 200 trials x 16 blocks.
TARGET_PBO_S = 2.0
SEED = 15


def log(message: str) -> None:
    print(f"[{NAME}] {message}", flush=True)


def prediction_panel(n_bars: int) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    """The long frame (timestamp, symbol, prediction) and forward returns per horizon."""
    rng = np.random.default_rng(SEED)
    frames, forward = [], {h: [] for h in IC_HORIZONS}
    for series in synthetic_universe(N_SYMBOLS, n_bars):
        close = pd.Series(series.close)
        for h in IC_HORIZONS:
            forward[h].append((close.shift(-h) / close - 1.0).to_numpy())
        target = forward[HORIZON][-1]
        z = (target - np.nanmean(target)) / np.nanstd(target)
        frames.append(pd.DataFrame({
            "timestamp": pd.DatetimeIndex(series.timestamps, tz="UTC"),
            "symbol": series.symbol,
            "prediction": 0.05 * np.nan_to_num(z) + rng.normal(size=n_bars),
        }))
    return pd.concat(frames, ignore_index=True), {h: np.concatenate(v) for h, v in forward.items()}


def noise_trials(n_periods: int, n_trials: int) -> np.ndarray:
    return np.random.default_rng(SEED).standard_t(4, size=(n_periods, n_trials)) * 0.01


def loop_pbo(matrix: np.ndarray, n_blocks: int, limit: int) -> int:
    """CSCV the plain way on the first ``limit`` combinations (the comparison, not the product)."""
    blocks = np.array_split(np.arange(len(matrix)), n_blocks)
    overfit = 0
    for chosen in itertools.islice(itertools.combinations(range(n_blocks), n_blocks // 2), limit):
        train = np.concatenate([blocks[b] for b in chosen])
        test = np.concatenate([blocks[b] for b in range(n_blocks) if b not in chosen])
        r_is = matrix[train].mean(axis=0) / matrix[train].std(axis=0, ddof=1)
        r_oos = matrix[test].mean(axis=0) / matrix[test].std(axis=0, ddof=1)
        chosen_oos = r_oos[int(np.argmax(r_is))]
        rank = (r_oos < chosen_oos).sum() + ((r_oos == chosen_oos).sum() + 1) / 2
        overfit += rank / (matrix.shape[1] + 1) <= 0.5
    return overfit


def skfolio_import_s() -> float:
    code = "import time; t = time.perf_counter(); import skfolio.measures; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def median_of(repeats: int, fn: Any) -> tuple[float, list[float]]:
    samples = [time_once(fn) for _ in range(repeats)]
    return statistics.median(samples), samples


def run(n_bars: int, repeats: int, loop_combinations: int, max_wait: float) -> dict[str, Any]:
    from math import comb

    from alphaforge.evaluation.overfitting import deflate_best_trial, probability_of_backtest_overfitting
    from alphaforge.evaluation.signals import evaluate_signals

    t0 = time.perf_counter()
    frame, forward = prediction_panel(n_bars)
    log(f"panel: {len(frame):,} rows ({N_SYMBOLS} symbols x {n_bars} bars) built in {time.perf_counter() - t0:.2f} s")
    matrix = noise_trials(n_bars, N_TRIALS)
    quiet = wait_for_quiet(NAME, 0.7, max_wait) if max_wait > 0 else {}
    start_calibration()

    def evaluate(weighting: str) -> Any:
        return evaluate_signals(frame["prediction"], forward[HORIZON], timestamps=frame["timestamp"],
                                symbols=frame["symbol"], horizon=HORIZON, weighting=weighting, cost_bps=COST_BPS,
                                ic_forward_returns=forward)

    first = frame["symbol"] == frame["symbol"].iloc[0]

    def evaluate_one_symbol() -> Any:
        return evaluate_signals(frame.loc[first, "prediction"], forward[1][first.to_numpy()],
                                timestamps=frame.loc[first, "timestamp"], horizon=1, cost_bps=COST_BPS)

    out: dict[str, Any] = {"n_bars": n_bars, "n_symbols": N_SYMBOLS, "rows": len(frame), "horizon": HORIZON,
                           "n_trials": N_TRIALS, "n_blocks": N_BLOCKS, "n_combinations": comb(N_BLOCKS, N_BLOCKS // 2),
                           "repeats": repeats, "quiet": quiet, "median_s": {}, "samples_s": {}, "figures": {}}

    def record(key: str, fn: Any) -> Any:
        result = fn()  # warm-up (imports, first allocation), and the figures
        out["median_s"][key], out["samples_s"][key] = median_of(repeats, fn)
        log(f"{key}: median {out['median_s'][key]:.3f} s")
        return result

    for weighting in ("equal", "prediction"):
        report = record(f"evaluate_{weighting}", lambda w=weighting: evaluate(w))
        out["figures"][f"evaluate_{weighting}"] = report.summary()
    out["figures"]["evaluate_one_symbol"] = record("evaluate_one_symbol", evaluate_one_symbol).summary()

    pbo = record("pbo", lambda: probability_of_backtest_overfitting(matrix, n_blocks=N_BLOCKS))
    out["figures"]["pbo"] = {"pbo": pbo.pbo, "n_overfit": pbo.n_overfit,
                             "probability_of_oos_loss": pbo.probability_of_oos_loss}
    limit = min(loop_combinations, pbo.n_combinations)
    overfit_in_loop = loop_pbo(matrix, N_BLOCKS, limit)
    if overfit_in_loop != int((pbo.logits[:limit] <= 0).sum()):
        raise AssertionError(f"plain loop counts {overfit_in_loop} overfit combinations of the first {limit}, "
                             f"the vectorised PBO {int((pbo.logits[:limit] <= 0).sum())}")
    loop_s, _ = median_of(max(1, repeats // 2), lambda: loop_pbo(matrix, N_BLOCKS, limit))
    out["median_s"]["pbo_loop_extrapolated"] = loop_s * pbo.n_combinations / limit
    out["loop_combinations_timed"] = limit

    out["skfolio_first_import_s"] = skfolio_import_s()
    best = record("deflate_best_trial", lambda: deflate_best_trial(matrix))
    out["figures"]["deflate_best_trial"] = {k: getattr(best, k) for k in best.__dataclass_fields__}
    out["meets_target"] = out["median_s"]["pbo"] <= TARGET_PBO_S
    out["target_pbo_s"] = TARGET_PBO_S
    return out


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    m = result["median_s"]
    shape = f"{result['n_symbols']} symbols x {result['n_bars']:,} bars"
    return [
        [NAME, f"evaluate_signals, equal, {shape}, h={result['horizon']}, IC at 5 horizons", f"{m['evaluate_equal']:.3f} s",
         "-", None],
        [NAME, "evaluate_signals, prediction weighting", f"{m['evaluate_prediction']:.3f} s", "-", None],
        [NAME, f"evaluate_signals, one symbol, {result['n_bars']:,} bars", f"{m['evaluate_one_symbol']:.3f} s", "-", None],
        [NAME, f"PBO, {result['n_trials']} trials x {result['n_bars']:,} periods, S={result['n_blocks']} "
               f"({result['n_combinations']:,} combinations)", f"{m['pbo']:.3f} s", f"<= {result['target_pbo_s']} s",
         result["meets_target"]],
        [NAME, "PBO as a plain loop (extrapolated)", f"{m['pbo_loop_extrapolated']:.1f} s", "-", None],
        [NAME, "deflate_best_trial (skfolio imported)", f"{m['deflate_best_trial'] * 1e3:.1f} ms", "-", None],
        [NAME, "skfolio first import", f"{result['skfolio_first_import_s']:.2f} s", "-", None],
    ]


def figures_table(result: dict[str, Any]) -> str:
    f = result["figures"]
    rows = []
    for key in ("evaluate_equal", "evaluate_prediction", "evaluate_one_symbol"):
        s = f[key]
        rows.append([key, s["n_periods"], s["sharpe"], s["annual_return"], s["max_drawdown"], s["mean_turnover"],
                     ", ".join(f"{h}:{v:.3f}" for h, v in s["ic_decay"].items() if v is not None)])
    return table(rows, ["strategy", "periods", "Sharpe (net)", "CAGR", "max DD", "turnover", "IC decay (h: rank IC)"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overfitting", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 years, 2 repeats, no load wait")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 7)")
    parser.add_argument("--loop-combinations", type=int, default=200,
                        help="combinations the plain-loop comparison times (default 200)")
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for a quiet machine")
    args = parser.parse_args(argv)
    print(f"[{NAME}] machine: {machine_line(machine_info())}", flush=True)
    result = run(n_bars=1260 if args.quick else BARS_20Y, repeats=args.repeats or (2 if args.quick else 7),
                 loop_combinations=50 if args.quick else args.loop_combinations,
                 max_wait=0.0 if args.quick else args.max_wait)
    path = write_results(NAME, result, quick=args.quick)
    print(table(summary_rows(result), ["benchmark", "metric", "value", "target", "met"]))
    print(figures_table(result))
    p, d = result["figures"]["pbo"], result["figures"]["deflate_best_trial"]
    print(f"[{NAME}] noise trials: PBO {p['pbo']:.4f} ({p['n_overfit']:,}/{result['n_combinations']:,}), "
          f"best trial per-period Sharpe {d['sharpe']:.4f}, PSR {d['psr']:.4f}, DSR {d['dsr']:.4f}")
    print(f"[{NAME}] results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
