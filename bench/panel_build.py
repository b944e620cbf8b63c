"""Panel build: 100 SYNTHETIC symbols x 10 indicators = 1,000 datasets through the engine.

In a fresh subprocess (so its peak RSS is this benchmark's alone):

1. ``start_context(Settings(data_dir=<tmp>, load_sample_data=False))`` (embedded SQLite +
   file object store);
2. ingest N SYNTHETIC symbols x 20 years of daily bars with ``ingest_bars`` (timed
   separately; making the synthetic frames is not timed);
3. define 10 features: RSI(14), MACD(12,26,9), ATR(14), BBANDS(20), SMA(50), EMA(20),
   STOCH(14,3,3), ADX(14), ROC(10), statistical.realized_volatility(20);
4. cold build: ``generate_dataset`` for every (symbol, feature), symbol by symbol, range
   1999-01-01..2019-01-01 (each checked ``cached == False``);
5. warm rebuild: the same calls again (each checked ``cached == True``);
6. tracemalloc peak, measured apart (tracing slows allocation-heavy code, so it is not on
   during 4 and 5): a cold build of 10 symbols x 10 *new* definitions with tracemalloc on.

The whole is repeated in 3 independent runs (a fresh subprocess and data directory each;
tracemalloc and --profile only in the first); figures are medians over the runs.

Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` in the subprocess (a high-water
mark, read after each phase), cross-checked by the parent's ``RUSAGE_CHILDREN``.
``--profile`` adds a cProfile of a cold build of 10 symbols x 10 new definitions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS_DIR,
    machine_info,
    machine_line,
    start_calibration,
    summarize_ms,
    synthetic_series,
    table,
    write_results,
)

NAME = "panel_build"
START = datetime(1999, 1, 1, tzinfo=timezone.utc)
END = datetime(2019, 1, 1, tzinfo=timezone.utc)

#: (plugin_key, parameters): the 10 panel indicators.
INDICATORS: list[tuple[str, dict[str, Any]]] = [
    ("technical.rsi", {"period": 14}),
    ("technical.macd", {"fast_period": 12, "slow_period": 26, "signal_period": 9}),
    ("technical.atr", {"period": 14}),
    ("technical.bbands", {"period": 20}),
    ("technical.sma", {"period": 50}),
    ("technical.ema", {"period": 20}),
    ("technical.stoch", {"fastk_period": 14, "slowk_period": 3, "slowd_period": 3}),
    ("technical.adx", {"period": 14}),
    ("technical.roc", {"period": 10}),
    ("statistical.realized_volatility", {"window": 20}),
]


def _maxrss_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def _rss_now_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _dir_stats(path: Path) -> dict[str, Any]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def worker(n_symbols: int, out_path: Path, tracemalloc_symbols: int, profile: bool) -> None:
    """Runs in the fresh subprocess; writes its figures to ``out_path`` as JSON."""
    from alphaforge.bootstrap import start_context
    from alphaforge.marketdata.bars import Timeframe
    from alphaforge.schemas.features import FeatureCreate, FeatureGenerateRequest
    from alphaforge.features.definitions import create_feature
    from alphaforge.features.generation import generate_dataset
    from alphaforge.ingestion.service import ingest_bars
    from alphaforge.settings import Settings

    memory: dict[str, dict[str, float | None]] = {}

    def mark(phase: str) -> None:
        memory[phase] = {"maxrss_mib": _maxrss_mib(), "rss_now_mib": _rss_now_mib()}

    mark("after_imports")
    tmp = Path(tempfile.mkdtemp(prefix="alphaforge-bench-panel-"))
    result: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        ctx = start_context(Settings(data_dir=tmp, load_sample_data=False))
        result["context_start_s"] = time.perf_counter() - t0
        mark("after_context_start")

        # Synthetic data (not timed), then ingestion (timed).
        t0 = time.perf_counter()
        series = [synthetic_series(i) for i in range(n_symbols)]
        records = [(s.symbol, s.records()) for s in series]
        result["synthetic_data_s"] = time.perf_counter() - t0
        n_bars = len(series[0].close)
        del series
        ingest_s = []
        for symbol, frame in records:
            t0 = time.perf_counter()
            r = ingest_bars(ctx, symbol, Timeframe.DAY, frame)
            ingest_s.append(time.perf_counter() - t0)
            assert r.n_bars == n_bars, (symbol, r.n_bars)
        del records
        result["ingest"] = {"total_s": sum(ingest_s), "per_symbol": summarize_ms(ingest_s), "bars_per_symbol": n_bars}
        mark("after_ingest")
        print(f"[{NAME}] ingested {n_symbols} symbols x {n_bars} bars in {sum(ingest_s):.2f} s", flush=True)

        def define(tag: str) -> list[tuple[Any, str]]:
            return [
                (create_feature(ctx, FeatureCreate(name=f"{tag} {k}", type=k.split(".")[0], plugin_key=k, parameters=p)).id, k)
                for k, p in INDICATORS
            ]

        features = define("panel")
        symbols = [f"SYN{i:04d}" for i in range(n_symbols)]
        request = {s: FeatureGenerateRequest(symbol=s, start_date=START, end_date=END) for s in symbols}

        def build(feats: list[tuple[Any, str]], syms: list[str], expect_cached: bool) -> tuple[float, list[float], dict[str, list[float]], int]:
            per_call, by_plugin, rows = [], defaultdict(list), 0
            t_start = time.perf_counter()
            for s in syms:
                for fid, key in feats:
                    t0 = time.perf_counter()
                    res = generate_dataset(ctx, fid, request[s])
                    dt = time.perf_counter() - t0
                    if res.cached != expect_cached:
                        raise RuntimeError(f"{key} {s}: cached={res.cached}, expected {expect_cached}")
                    per_call.append(dt)
                    by_plugin[key].append(dt)
                    rows += res.dataset.row_count
            return time.perf_counter() - t_start, per_call, by_plugin, rows

        total, per_call, by_plugin, rows = build(features, symbols, expect_cached=False)
        mark("after_cold_build")
        result["cold"] = {
            "datasets": len(per_call),
            "rows_total": rows,
            "total_s": total,
            "ms_per_dataset": total * 1e3 / len(per_call),
            "per_dataset": summarize_ms(per_call),
            "by_plugin": {k: summarize_ms(v) for k, v in by_plugin.items()},
        }
        print(f"[{NAME}] cold build: {len(per_call)} datasets in {total:.2f} s", flush=True)
        result["storage_after_cold"] = {
            "objects": _dir_stats(tmp / "objects"),
            "feature_objects": _dir_stats(tmp / "objects" / "features"),
            "sqlite_bytes": sum(p.stat().st_size for p in tmp.glob("alphaforge.db*")),
        }

        total, per_call, by_plugin, _ = build(features, symbols, expect_cached=True)
        mark("after_warm_build")
        result["warm"] = {
            "datasets": len(per_call),
            "total_s": total,
            "ms_per_dataset": total * 1e3 / len(per_call),
            "per_dataset": summarize_ms(per_call),
            "by_plugin": {k: summarize_ms(v) for k, v in by_plugin.items()},
        }
        print(f"[{NAME}] warm rebuild: {len(per_call)} datasets in {total:.2f} s", flush=True)

        # tracemalloc, apart (it roughly doubles the time per dataset): new definitions so
        # the build is cold again. Only in the first run.
        if tracemalloc_symbols:
            sub = symbols[:tracemalloc_symbols]
            feats_tm = define("tracemalloc")
            tracemalloc.start()
            baseline, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            total_tm, per_tm, _, _ = build(feats_tm, sub, expect_cached=False)
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            result["tracemalloc"] = {
                "datasets": len(per_tm),
                "what": f"cold build of {len(sub)} symbols x {len(feats_tm)} new definitions with tracemalloc on",
                "baseline_mib": baseline / 2**20,
                "peak_mib": peak / 2**20,
                "peak_above_baseline_mib": (peak - baseline) / 2**20,
                "retained_after_mib": (current - baseline) / 2**20,
                "ms_per_dataset_traced": total_tm * 1e3 / len(per_tm),
            }
            mark("after_tracemalloc")

        if profile:
            feats_p = define("profile")
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            n_prof = len(build(feats_p, symbols[:10], expect_cached=False)[1])
            prof.disable()
            wall = time.perf_counter() - t0
            prof.dump_stats(str(RESULTS_DIR / f"{NAME}_cold.prof"))
            buffer = io.StringIO()
            pstats.Stats(prof, stream=buffer).sort_stats("cumulative").print_stats(40)
            buffer2 = io.StringIO()
            pstats.Stats(prof, stream=buffer2).sort_stats("tottime").print_stats(25)
            result["profile_cold"] = {
                "datasets": n_prof,
                "ms_per_dataset_profiled": wall * 1e3 / n_prof,
                "cumulative_top": buffer.getvalue(),
                "tottime_top": buffer2.getvalue(),
            }
            # Ingestion of 10 more symbols (indices past the panel's), profiled.
            extra = [synthetic_series(n_symbols + j) for j in range(10)]
            extra_records = [(x.symbol, x.records()) for x in extra]
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            for symbol, frame in extra_records:
                ingest_bars(ctx, symbol, Timeframe.DAY, frame)
            prof.disable()
            wall = time.perf_counter() - t0
            buffer = io.StringIO()
            pstats.Stats(prof, stream=buffer).sort_stats("cumulative").print_stats(30)
            result["profile_ingest"] = {
                "symbols": len(extra_records),
                "ms_per_symbol_profiled": wall * 1e3 / len(extra_records),
                "cumulative_top": buffer.getvalue(),
            }
        ctx.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["memory"] = memory
    # The benchmark's peak: ingest + cold build + warm rebuild (before the tracemalloc and
    # profile extras); the process's final high-water mark is kept too.
    result["peak_rss_mib"] = memory["after_warm_build"]["maxrss_mib"]
    result["peak_rss_mib_end_of_process"] = _maxrss_mib()
    out_path.write_text(json.dumps(result, indent=2))


def _run_worker(n_symbols: int, tracemalloc_symbols: int, profile: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "worker.json"
        cmd = [sys.executable, "-m", "bench.panel_build", "--worker", str(out), "--symbols", str(n_symbols),
               "--tracemalloc-symbols", str(tracemalloc_symbols)] + (["--profile"] if profile else [])
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parent.parent)
        result = json.loads(out.read_text())
        result["subprocess_wall_s"] = time.perf_counter() - t0
        return result


def run(n_symbols: int = 100, tracemalloc_symbols: int = 10, profile: bool = False, runs: int = 3) -> dict[str, Any]:
    """``runs`` independent panel builds, each in a fresh subprocess on a fresh data directory;
    figures are medians over the runs (each run's figure is listed too)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    per_run = []
    for i in range(runs):
        print(f"[{NAME}] run {i + 1}/{runs} (fresh subprocess)", flush=True)
        # tracemalloc and the profile only in the first run: they are extras, not timings.
        per_run.append(_run_worker(n_symbols, tracemalloc_symbols if i == 0 else 0, profile and i == 0))
    children_maxrss = _maxrss_mib(resource.RUSAGE_CHILDREN)

    def med(get: Any) -> dict[str, Any]:
        values = [get(r) for r in per_run]
        return {"median": statistics.median(values), "per_run": values}

    def phase(name: str) -> dict[str, Any]:
        first = per_run[0][name]
        return {
            "datasets": first["datasets"],
            "total_s": med(lambda r: r[name]["total_s"]),
            "ms_per_dataset": med(lambda r: r[name]["ms_per_dataset"]),
            "per_dataset_p50_ms": med(lambda r: r[name]["per_dataset"]["p50_ms"]),
            "per_dataset_p95_ms": med(lambda r: r[name]["per_dataset"]["p95_ms"]),
            "by_plugin_p50_ms": {k: med(lambda r, k=k: r[name]["by_plugin"][k]["p50_ms"]) for k in first["by_plugin"]},
        }

    first = per_run[0]
    result: dict[str, Any] = {
        "config": {
            "n_symbols": n_symbols,
            "n_features": len(INDICATORS),
            "indicators": [{"plugin_key": k, "parameters": p} for k, p in INDICATORS],
            "range": [START.isoformat(), END.isoformat()],
            "data": "SYNTHETIC geometric random walk, seeded (bench.common.synthetic_series), 5040 daily bars each",
            "storage": "embedded: SQLite + file object store in a fresh temp dir per run",
            "runs": runs,
            "statistic": "median over runs; each run = ingest, 1 cold build, 1 warm rebuild, in a fresh subprocess "
                         "(per-dataset p50/p95 are over the run's 1,000 calls)",
            "timer": "time.perf_counter",
        },
        "ingest": {
            "symbols": n_symbols,
            "bars_per_symbol": first["ingest"]["bars_per_symbol"],
            "total_s": med(lambda r: r["ingest"]["total_s"]),
            "per_symbol_p50_ms": med(lambda r: r["ingest"]["per_symbol"]["p50_ms"]),
            "per_symbol_p95_ms": med(lambda r: r["ingest"]["per_symbol"]["p95_ms"]),
        },
        "cold": phase("cold"),
        "warm": phase("warm"),
        "peak_rss_mib": med(lambda r: r["peak_rss_mib"]),
        "peak_rss_mib_max_over_runs": max(r["peak_rss_mib"] for r in per_run),
        "children_maxrss_mib": children_maxrss,
        "memory_first_run": first["memory"],
        "storage_after_cold": first["storage_after_cold"],
        "tracemalloc": first.get("tracemalloc"),
        "runs_raw": per_run,
    }
    for extra in ("profile_cold", "profile_ingest"):
        if extra in first:
            result[extra] = first[extra]
    return result


def report(result: dict[str, Any]) -> str:
    c, w, i, cfg = result["cold"], result["warm"], result["ingest"], result["config"]
    tm = result["tracemalloc"]

    def runs(x: dict[str, Any], fmt: str = "{:.1f}") -> str:
        return " / ".join(fmt.format(v) for v in x["per_run"])

    rows = [
        ["ingest (ingest_bars)", i["symbols"], i["total_s"]["median"], runs(i["total_s"]),
         i["per_symbol_p50_ms"]["median"], i["per_symbol_p95_ms"]["median"]],
        ["cold build", c["datasets"], c["total_s"]["median"], runs(c["total_s"]),
         c["per_dataset_p50_ms"]["median"], c["per_dataset_p95_ms"]["median"]],
        ["warm rebuild (all hits)", w["datasets"], w["total_s"]["median"], runs(w["total_s"]),
         w["per_dataset_p50_ms"]["median"], w["per_dataset_p95_ms"]["median"]],
    ]
    mem = result["memory_first_run"]
    out = [
        f"panel_build: {cfg['n_symbols']} SYNTHETIC symbols x {cfg['n_features']} features = {c['datasets']} "
        f"datasets, {i['bars_per_symbol']} bars each; median of {cfg['runs']} runs (fresh subprocess each)",
        table(rows, ["phase", "n", "total s", "total s per run", "p50 ms/item", "p95 ms/item"]),
        f"cold: {c['ms_per_dataset']['median']:.1f} ms per dataset on average; warm: "
        f"{w['ms_per_dataset']['median']:.1f} ms (ingestion excluded from both)",
        f"peak RSS (ru_maxrss in the fresh subprocess, through the warm rebuild): median "
        f"{result['peak_rss_mib']['median']:.0f} MiB, per run {runs(result['peak_rss_mib'], '{:.0f}')} "
        f"(parent RUSAGE_CHILDREN, max over runs incl. extras: {result['children_maxrss_mib']:.0f} MiB)",
        "RSS high-water by phase, first run (MiB): " + ", ".join(f"{k} {v['maxrss_mib']:.0f}" for k, v in mem.items()),
        f"stored after a cold build: {result['storage_after_cold']['feature_objects']['files']} feature objects, "
        f"{result['storage_after_cold']['feature_objects']['bytes'] / 2**20:.1f} MiB; SQLite "
        f"{result['storage_after_cold']['sqlite_bytes'] / 2**20:.1f} MiB",
    ]
    if tm:
        out.append(
            f"tracemalloc ({tm['what']}, first run only): peak {tm['peak_mib']:.2f} MiB of allocations made during "
            f"that build (memory allocated before, e.g. the bar cache, is not counted), {tm['retained_after_mib']:.2f} "
            f"MiB still held after it; {tm['ms_per_dataset_traced']:.1f} ms/dataset while traced, hence measured apart"
        )
    out += [
        "",
        "per plugin, p50 ms per dataset (median over runs; cold / warm):",
        table([[k, v["median"], w["by_plugin_p50_ms"][k]["median"]] for k, v in c["by_plugin_p50_ms"].items()],
              ["plugin", "cold p50 ms", "warm p50 ms"]),
    ]
    if "profile_cold" in result:
        p = result["profile_cold"]
        out += ["", f"--- cProfile, cold build of {p['datasets']} datasets "
                f"({p['ms_per_dataset_profiled']:.1f} ms/dataset under the profiler), cumulative ---",
                p["cumulative_top"], "--- tottime ---", p["tottime_top"]]
    if "profile_ingest" in result:
        p = result["profile_ingest"]
        out += ["", f"--- cProfile, ingest_bars of {p['symbols']} more symbols "
                f"({p['ms_per_symbol_profiled']:.1f} ms/symbol under the profiler), cumulative ---", p["cumulative_top"]]
    return "\n".join(out)


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    c, w, i, n = result["cold"], result["warm"], result["ingest"], result["config"]["runs"]
    return [
        [NAME, f"ingest {i['symbols']} symbols (median of {n})", f"{i['total_s']['median']:.1f} s", "-", None],
        [NAME, f"cold build {c['datasets']} datasets (median of {n})",
         f"{c['total_s']['median']:.1f} s ({c['ms_per_dataset']['median']:.1f} ms each)", "-", None],
        [NAME, f"warm rebuild {w['datasets']} datasets (median of {n})",
         f"{w['total_s']['median']:.1f} s ({w['ms_per_dataset']['median']:.1f} ms each)", "-", None],
        [NAME, "peak RSS", f"{result['peak_rss_mib']['median']:.0f} MiB", "-", None],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.panel_build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 symbols (100 datasets)")
    parser.add_argument("--symbols", type=int, help="number of synthetic symbols (default 100)")
    parser.add_argument("--tracemalloc-symbols", type=int, default=None, help="symbols in the tracemalloc build (default 10)")
    parser.add_argument("--profile", action="store_true", help="also cProfile a cold build of 10 symbols x 10 features")
    parser.add_argument("--runs", type=int, help="independent panel builds (default 3; --quick 1)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n_symbols = args.symbols or (10 if args.quick else 100)
    tm_symbols = min(10, n_symbols) if args.tracemalloc_symbols is None else args.tracemalloc_symbols
    if args.worker:
        worker(n_symbols, args.worker, tm_symbols, args.profile)
        return 0
    print(f"[{NAME}] machine: {machine_line(machine_info())}", flush=True)
    cal = start_calibration()
    print(f"[{NAME}] calibration: pure-Python 1M-iteration loop {cal['python_loop_1m_ms']:.1f} ms, "
          f"numpy sort of 1M floats {cal['numpy_sort_1m_ms']:.1f} ms", flush=True)
    runs = args.runs or (1 if args.quick else 3)
    result = run(n_symbols=n_symbols, tracemalloc_symbols=tm_symbols, profile=args.profile, runs=runs)
    path = write_results(NAME, result, quick=args.quick)
    print(report(result))
    print(f"[{NAME}] results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
