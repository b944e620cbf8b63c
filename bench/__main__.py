"""Run every benchmark, each in its own subprocess, then print one summary table.

    python -m bench                 # full size (about 3-4 minutes on 2 quiet cores, plus about 8 for train_overhead, 1 for pooled_overhead,
                                    # about 8 for tuning, about 3 for upload_memory, about 2.5 for object_store_stall,
                                    # about 11 for service_bounds, about 15 for pooled_scale, 17 with --profile,
                                    # under 1 for overfitting,
                                    # about 2 for panel_vs_qlib and 3 for alpha158_vs_qlib: skipped without pyqlib)
    python -m bench --quick         # smoke run
    python -m bench --profile       # adds the in-process profiles (generate_latency, panel_build, pooled_scale)
    python -m bench --only plugin_overhead panel_build
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import (
    alpha158_vs_qlib,
    generate_latency,
    news_sentiment,
    object_store_stall,
    overfitting,
    panel_build,
    panel_vs_qlib,
    plugin_overhead,
    pooled_overhead,
    pooled_scale,
    service_bounds,
    train_overhead,
    tuning,
    upload_memory,
)
from bench.common import RESULTS_DIR, machine_info, machine_line, results_path, table

BENCHMARKS = {
    "plugin_overhead": plugin_overhead,
    "generate_latency": generate_latency,
    "panel_build": panel_build,
    "panel_vs_qlib": panel_vs_qlib,
    "alpha158_vs_qlib": alpha158_vs_qlib,
    "train_overhead": train_overhead,
    "pooled_overhead": pooled_overhead,
    "pooled_scale": pooled_scale,
    "tuning": tuning,
    "news_sentiment": news_sentiment,
    "object_store_stall": object_store_stall,
    "upload_memory": upload_memory,
    "service_bounds": service_bounds,
    "overfitting": overfitting,
}
PROFILABLE = {"generate_latency", "panel_build", "pooled_scale"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--profile", action="store_true", help="pass --profile where a benchmark has it")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    root = Path(__file__).resolve().parent.parent

    print(f"machine: {machine_line(machine_info())}", flush=True)
    if os.getloadavg()[0] > 0.5:
        print(f"WARNING: load average {os.getloadavg()[0]:.2f}: other work is running; timings will be "
              "slower and noisier than on a quiet machine (each result records the load at start and end)",
              flush=True)
    walls, failed = {}, []
    for name in names:
        cmd = [sys.executable, "-m", f"bench.{name}"]
        if args.quick:
            cmd.append("--quick")
        if args.profile and name in PROFILABLE:
            cmd.append("--profile")
        print(f"\n=== {name}: {' '.join(cmd[1:])} ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, cwd=root).returncode
        walls[name] = time.perf_counter() - t0
        if rc != 0:
            failed.append(name)
            print(f"=== {name} FAILED (exit {rc}) ===", flush=True)

    rows = []
    for name in names:
        path = results_path(name, args.quick)
        if name in failed or not path.exists():
            rows.append([name, "(failed)", "-", "-", False])
            continue
        result = json.loads(path.read_text())
        rows += BENCHMARKS[name].summary_rows(result)
        rows.append([name, "benchmark wall time", f"{walls[name]:.0f} s", "-", None])
    shown = [[b, m, v, t, "-" if ok is None else ("yes" if ok else "NO")] for b, m, v, t, ok in rows]
    print("\n=== summary" + (" (QUICK: not the reference sizes)" if args.quick else "") + " ===")
    print(table(shown, ["benchmark", "metric", "value", "target", "met"]))
    print(f"results: {RESULTS_DIR}/<benchmark>{'.quick' if args.quick else ''}.json")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
