"""Plugin-layer overhead: TA-Lib called directly vs through the feature-plugin contract.

For every technical plugin (all 13; RSI(14), MACD(12,26,9), ATR(14) and BBANDS(20) are the
headline ones), over N SYNTHETIC symbols of 20 years of daily bars, each repeat times:

  (a) direct        ``talib.X(arrays..., **kwargs)`` written out by hand, for every symbol
  (b) plugin        ``plugin.compute(FeatureInputs(bars=bars))``; the plugin instance is
                    created once per indicator and the ``Bars`` once per symbol, both
                    outside the timed loop (the ``FeatureInputs`` wrapper is built inside it,
                    as the engine does)
  (c) +instance     as (b), with ``cls.from_parameters(params)`` per symbol (parameter
                    validation + instance creation)
  (d) +from_frame   as (b), with ``Bars.from_frame(frame)`` per symbol
  (e) compute_frame the engine's ``generation.compute_frame`` per symbol (from_frame +
                    compute + the output DataFrame), for reference

Figures are the median over the repeats of the total for all symbols; ratios are to (a).
The cyclic GC is collected before each indicator and switched off through its timed repeats
(it is off for direct and plugin alike; ``--gc`` leaves it on).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import talib

from alphaforge.plugins.features import Bars, FeatureInputs, feature_plugins
from alphaforge.features.generation import compute_frame
from bench.common import (
    BARS_20Y,
    SyntheticSeries,
    gc_paused,
    machine_info,
    machine_line,
    start_calibration,
    synthetic_universe,
    table,
    time_once,
    write_results,
)

NAME = "plugin_overhead"
TARGET_RATIO = 1.2
HEADLINE = ("technical.rsi", "technical.macd", "technical.atr", "technical.bbands")

Direct = Callable[[SyntheticSeries], Any]

#: plugin key -> (parameters given to the plugin, the same computation called on TA-Lib by hand)
CASES: dict[str, tuple[dict[str, Any], Direct]] = {
    "technical.rsi": ({"period": 14}, lambda s: talib.RSI(s.close, timeperiod=14)),
    "technical.macd": (
        {"fast_period": 12, "slow_period": 26, "signal_period": 9},
        lambda s: talib.MACD(s.close, fastperiod=12, slowperiod=26, signalperiod=9),
    ),
    "technical.atr": ({"period": 14}, lambda s: talib.ATR(s.high, s.low, s.close, timeperiod=14)),
    "technical.bbands": (
        {"period": 20},
        lambda s: talib.BBANDS(s.close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0),
    ),
    "technical.sma": ({"period": 20}, lambda s: talib.SMA(s.close, timeperiod=20)),
    "technical.ema": ({"period": 20}, lambda s: talib.EMA(s.close, timeperiod=20)),
    "technical.stoch": (
        {"fastk_period": 14, "slowk_period": 3, "slowd_period": 3},
        lambda s: talib.STOCH(
            s.high, s.low, s.close, fastk_period=14, slowk_period=3, slowk_matype=0, slowd_period=3, slowd_matype=0
        ),
    ),
    "technical.adx": ({"period": 14}, lambda s: talib.ADX(s.high, s.low, s.close, timeperiod=14)),
    "technical.obv": ({}, lambda s: talib.OBV(s.close, s.volume)),
    "technical.roc": ({"period": 10}, lambda s: talib.ROC(s.close, timeperiod=10)),
    "technical.willr": ({"period": 14}, lambda s: talib.WILLR(s.high, s.low, s.close, timeperiod=14)),
    "technical.cci": ({"period": 14}, lambda s: talib.CCI(s.high, s.low, s.close, timeperiod=14)),
    "technical.mfi": ({"period": 14}, lambda s: talib.MFI(s.high, s.low, s.close, s.volume, timeperiod=14)),
}

VARIANTS = ("direct", "plugin", "plugin_new_instance", "plugin_from_frame", "engine_compute_frame")


def _as_tuple(result: Any) -> tuple[np.ndarray, ...]:
    if isinstance(result, dict):
        return tuple(result.values())
    if isinstance(result, (tuple, list)):
        return tuple(result)
    return (result,)


def _check_same_values(key: str, direct: Direct, plugin: Any, series: SyntheticSeries, bars: Bars) -> None:
    expected = _as_tuple(direct(series))
    got = _as_tuple(plugin.compute(FeatureInputs(bars=bars)))
    if len(expected) != len(got):
        raise AssertionError(f"{key}: {len(got)} outputs through the plugin, {len(expected)} direct")
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(g, e, err_msg=f"{key}: plugin and direct TA-Lib differ")


def run(n_symbols: int = 500, repeats: int = 7, n_bars: int = BARS_20Y, gc_off: bool = True) -> dict[str, Any]:
    technical = sorted(cls.key for cls in feature_plugins if cls.category == "technical")
    if sorted(CASES) != technical:
        raise SystemExit(f"bench cases {sorted(CASES)} do not match the registered technical plugins {technical}")

    print(f"[{NAME}] building {n_symbols} SYNTHETIC symbols x {n_bars} daily bars ...", flush=True)
    universe = synthetic_universe(n_symbols, n_bars)
    bars_list = [
        Bars(timestamps=s.timestamps, open=s.open, high=s.high, low=s.low, close=s.close, volume=s.volume)
        for s in universe
    ]
    frames = [s.frame() for s in universe]

    # Bars.from_frame alone (indicator-independent), for reference.
    from_frame_alone = []
    with gc_paused(gc_off):
        for _ in range(repeats):
            from_frame_alone.append(time_once(lambda: [Bars.from_frame(f) for f in frames], gc_off=False))

    per_indicator: dict[str, dict[str, Any]] = {}
    for key in technical:
        params, direct = CASES[key]
        cls = feature_plugins.get(key)
        plugin = cls.from_parameters(params)
        _check_same_values(key, direct, plugin, universe[0], bars_list[0])

        def v_direct() -> None:
            for s in universe:
                direct(s)

        def v_plugin() -> None:
            for b in bars_list:
                plugin.compute(FeatureInputs(bars=b))

        def v_new_instance() -> None:
            for b in bars_list:
                cls.from_parameters(params).compute(FeatureInputs(bars=b))

        def v_from_frame() -> None:
            for f in frames:
                plugin.compute(FeatureInputs(bars=Bars.from_frame(f)))

        def v_compute_frame() -> None:
            for f in frames:
                compute_frame(plugin, f, len(f))

        fns = dict(zip(VARIANTS, (v_direct, v_plugin, v_new_instance, v_from_frame, v_compute_frame)))
        samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
        # One collection per indicator, then the cyclic GC stays off through its warm-up and
        # repeats (collecting before every sample would cost more than the samples).
        with gc_paused(gc_off):
            for fn in fns.values():  # warm-up pass, not timed
                fn()
            for rep in range(repeats):
                # Alternate the order so slow drift (thermal, neighbours) hits both sides alike.
                order = VARIANTS if rep % 2 == 0 else VARIANTS[::-1]
                for v in order:
                    samples[v].append(time_once(fns[v], gc_off=False))
        med = {v: statistics.median(samples[v]) * 1e3 for v in VARIANTS}
        paired = statistics.median(p / d for p, d in zip(samples["plugin"], samples["direct"]))
        row = {
            "parameters": params,
            "median_total_ms": med,
            "samples_ms": {v: [round(x * 1e3, 4) for x in samples[v]] for v in VARIANTS},
            "ratio_plugin_to_direct": med["plugin"] / med["direct"],
            "ratio_plugin_to_direct_paired_median": paired,
            # Best-of ratio: least sensitive to other work on the machine (not the headline).
            "ratio_plugin_to_direct_min": min(samples["plugin"]) / min(samples["direct"]),
            "ratio_new_instance_to_direct": med["plugin_new_instance"] / med["direct"],
            "ratio_from_frame_to_direct": med["plugin_from_frame"] / med["direct"],
            "ratio_compute_frame_to_direct": med["engine_compute_frame"] / med["direct"],
            "overhead_us_per_call": (med["plugin"] - med["direct"]) * 1e3 / n_symbols,
            "direct_us_per_call": med["direct"] * 1e3 / n_symbols,
            "meets_target": med["plugin"] / med["direct"] <= TARGET_RATIO,
        }
        per_indicator[key] = row
        print(
            f"[{NAME}] {key:<18} direct {med['direct']:8.2f} ms  plugin {med['plugin']:8.2f} ms  "
            f"ratio {row['ratio_plugin_to_direct']:.3f} (paired {paired:.3f}, best-of {row['ratio_plugin_to_direct_min']:.3f})",
            flush=True,
        )

    def overall(keys: tuple[str, ...] | list[str]) -> dict[str, float]:
        tot = {v: sum(per_indicator[k]["median_total_ms"][v] for k in keys) for v in VARIANTS}
        return {
            "total_ms": tot,
            "ratio_plugin_to_direct": tot["plugin"] / tot["direct"],
            "ratio_new_instance_to_direct": tot["plugin_new_instance"] / tot["direct"],
            "ratio_from_frame_to_direct": tot["plugin_from_frame"] / tot["direct"],
            "ratio_compute_frame_to_direct": tot["engine_compute_frame"] / tot["direct"],
        }

    return {
        "config": {
            "n_symbols": n_symbols,
            "n_bars_per_symbol": n_bars,
            "repeats": repeats,
            "statistic": "median over repeats of the total over all symbols",
            "warmup_passes": 1,
            "gc_disabled_during_timing": gc_off,
            "gc_policy": "gc.collect() before each indicator, cyclic GC off through its warm-up and repeats",
            "timer": "time.perf_counter",
            "data": "SYNTHETIC geometric random walk, seeded (bench.common.synthetic_series)",
            "target_ratio_plugin_to_direct": TARGET_RATIO,
        },
        "bars_from_frame_alone_ms": {
            "median_total_ms": statistics.median(from_frame_alone) * 1e3,
            "us_per_symbol": statistics.median(from_frame_alone) * 1e6 / n_symbols,
        },
        "indicators": per_indicator,
        "overall_headline": overall(HEADLINE),
        "overall_all_technical": overall(technical),
    }


def report(result: dict[str, Any]) -> str:
    cfg = result["config"]
    n = cfg["n_symbols"]
    rows = []
    for key, r in result["indicators"].items():
        m = r["median_total_ms"]
        rows.append(
            [
                key.removeprefix("technical.") + (" *" if key in HEADLINE else ""),
                m["direct"],
                m["plugin"],
                r["ratio_plugin_to_direct"],
                r["ratio_plugin_to_direct_paired_median"],
                r["ratio_plugin_to_direct_min"],
                r["overhead_us_per_call"],
                m["plugin_new_instance"],
                r["ratio_new_instance_to_direct"],
                m["plugin_from_frame"],
                r["ratio_from_frame_to_direct"],
                m["engine_compute_frame"],
                r["ratio_compute_frame_to_direct"],
            ]
        )
    for label, o in (("headline (*)", result["overall_headline"]), ("all 13", result["overall_all_technical"])):
        t = o["total_ms"]
        rows.append(
            [
                label,
                t["direct"],
                t["plugin"],
                o["ratio_plugin_to_direct"],
                "",
                "",
                (t["plugin"] - t["direct"]) * 1e3 / n / (4 if label.startswith("head") else len(result["indicators"])),
                t["plugin_new_instance"],
                o["ratio_new_instance_to_direct"],
                t["plugin_from_frame"],
                o["ratio_from_frame_to_direct"],
                t["engine_compute_frame"],
                o["ratio_compute_frame_to_direct"],
            ]
        )
    header = [
        "indicator", "(a) direct ms", "(b) plugin ms", "b/a", "paired", "best-of", "ovh us/call",
        "(c) +inst ms", "c/a", "(d) +from_frame ms", "d/a", "(e) compute_frame ms", "e/a",
    ]
    head = (
        f"plugin_overhead: {n} SYNTHETIC symbols x {cfg['n_bars_per_symbol']} bars; median of "
        f"{cfg['repeats']} repeats (+1 warm-up); GC off while timing: {cfg['gc_disabled_during_timing']}\n"
        f"b/a = median(b) / median(a); paired = median over repeats of b/a within a repeat; "
        f"best-of = min(b) / min(a); ovh = (b - a) per call\n"
        f"Bars.from_frame alone: {result['bars_from_frame_alone_ms']['median_total_ms']:.2f} ms for {n} symbols "
        f"({result['bars_from_frame_alone_ms']['us_per_symbol']:.1f} us each)\n"
    )
    ok = result["overall_all_technical"]["ratio_plugin_to_direct"] <= TARGET_RATIO
    worst = max(result["indicators"].items(), key=lambda kv: kv[1]["ratio_plugin_to_direct"])
    tail = (
        f"\ntarget b/a <= {TARGET_RATIO}: overall {'MET' if ok else 'NOT MET'} "
        f"({result['overall_all_technical']['ratio_plugin_to_direct']:.3f}); worst single indicator "
        f"{worst[0]} {worst[1]['ratio_plugin_to_direct']:.3f}; per indicator met: "
        f"{sum(r['meets_target'] for r in result['indicators'].values())}/{len(result['indicators'])}"
    )
    return head + table(rows, header) + tail


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    h, a = result["overall_headline"], result["overall_all_technical"]
    worst = max(result["indicators"].items(), key=lambda kv: kv[1]["ratio_plugin_to_direct"])
    return [
        [NAME, "plugin/direct, 4 headline", f"{h['ratio_plugin_to_direct']:.3f}", f"<= {TARGET_RATIO}",
         h["ratio_plugin_to_direct"] <= TARGET_RATIO],
        [NAME, "plugin/direct, all 13", f"{a['ratio_plugin_to_direct']:.3f}", f"<= {TARGET_RATIO}",
         a["ratio_plugin_to_direct"] <= TARGET_RATIO],
        [NAME, f"worst: {worst[0]}", f"{worst[1]['ratio_plugin_to_direct']:.3f}", f"<= {TARGET_RATIO}",
         worst[1]["ratio_plugin_to_direct"] <= TARGET_RATIO],
        [NAME, "+instance per symbol / direct, all", f"{a['ratio_new_instance_to_direct']:.3f}", "-", None],
        [NAME, "+Bars.from_frame / direct, all", f"{a['ratio_from_frame_to_direct']:.3f}", "-", None],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plugin_overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50 symbols, 3 repeats")
    parser.add_argument("--symbols", type=int, help="number of synthetic symbols (default 500)")
    parser.add_argument("--repeats", type=int, help="timed repeats per variant (default 7)")
    parser.add_argument("--gc", action="store_true", help="leave the cyclic GC on while timing")
    args = parser.parse_args(argv)
    n_symbols = args.symbols or (50 if args.quick else 500)
    repeats = args.repeats or (3 if args.quick else 7)
    print(f"[{NAME}] machine: {machine_line(machine_info())}", flush=True)
    cal = start_calibration()
    print(f"[{NAME}] calibration: pure-Python 1M-iteration loop {cal['python_loop_1m_ms']:.1f} ms, "
          f"numpy sort of 1M floats {cal['numpy_sort_1m_ms']:.1f} ms", flush=True)
    result = run(n_symbols=n_symbols, repeats=repeats, gc_off=not args.gc)
    path = write_results(NAME, result, quick=args.quick)
    print(report(result))
    print(f"[{NAME}] results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
