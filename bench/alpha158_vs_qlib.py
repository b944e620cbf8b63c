"""Alpha158 vs Qlib (issue 14): the same 100 SYNTHETIC symbols x 20 years as
``bench.panel_vs_qlib``, Qlib's Alpha158 factor set computed by Qlib's ``Alpha158`` data
handler and by ONE alphaforge ``automated.expression`` definition holding the 157 formulas
of ``alphaforge.expressions.alpha158`` (Qlib's 158 less VWAP0), through the panel API.

Targets: alphaforge **cold** <= 0.5 x Qlib cold, alphaforge **warm** (the panel a hit)
<= 0.05 x Qlib cold.

Data and machinery are ``bench.panel_vs_qlib``'s (imported, not copied): 100 symbols x
5,040 daily OHLCV bars (``bench.common.synthetic_series``, a seeded random walk, the same
numbers for both sides), 1999-01-01 .. 2018-04-26; Qlib's binary layout written by
``write_qlib_layout`` (not timed; float32, as Qlib stores it; no ``vwap`` field); each side
in a fresh subprocess per run (``run_worker``); the alphaforge app set up by ``af_session``.

Qlib side: ``qlib.init(provider_uri=..., region=REG_US, kernels=1, expression_cache=None,
dataset_cache=None)`` (kernels=1 as in panel_vs_qlib; ``--qlib-kernels`` changes it: on 2
cores, 2 joblib workers were slower than 1 in a probe, 14.9 s vs 12.1 s), then the timed
call: the construction of ``qlib.contrib.data.handler.Alpha158(instruments="all",
start_time="1999-01-01", end_time="2018-12-31", infer_processors=[], learn_processors=[])``
(Qlib's *cold*: no disk cache, empty in-memory cache). With no processors the handler only
computes: its loader evaluates the 158 feature expressions and the label
``Ref($close, -2)/Ref($close, -1) - 1`` (LABEL0) over every instrument and joins them into
one frame; nothing is normalised, filled or dropped. VWAP0 (``$vwap/$close``) reads a field
the layout does not have: Qlib answers an empty series, so the column is all NaN (cheap);
it is not compared.

alphaforge side, through the HTTP API as a user gets it: a fresh subprocess and data dir
per run, ``TestClient(create_app(settings))`` on the embedded default (SQLite + file object
store, 2 task worker processes), bars uploaded as CSV, a universe of the symbols, one
``automated.expression`` definition ``{"expressions": ALPHA158}`` (157 named formulas), one
warm-up generate of another definition (starts the task workers; none of that timed), then
timed:

- **cold**: ``POST /api/v1/features/{id}/panels`` for the universe and [1999-01-01,
  2019-01-01): the answer must say ``cached: false`` with every piece computed (the task
  workers evaluate each batch of symbols in one vectorised pass, store one dataset per
  symbol, then the panel);
- **warm**: the same request again; the answer must say ``cached: true``.

Figures are medians over ``--runs`` (default 3); Qlib and alphaforge runs alternate. Peak
memory: Qlib's process ``ru_maxrss``; alphaforge's process tree (the API process, the task
workers and their fork server) sampled every 0.1 s with psutil during the two panel
requests (RSS; pages shared between processes are counted in each).

Shape of the results: Qlib returns one in-memory frame (datetime, instrument) x 159 float32
columns (158 features + LABEL0); alphaforge stores 100 per-symbol datasets and one panel
(Parquet + rows) of 157 float64 columns, i.e. persists and versions what Qlib recomputes.

Deliberate differences (``alphaforge.expressions.alpha158``'s docstring):

- VWAP0 is left out (no ``vwap`` field in our bars): 157 features, not 158.
- Full windows only: Qlib's rolling operators use ``min_periods=1`` (partial windows from
  the first bar); ours are NaN until the window is full. Hence the value check skips each
  symbol's first ``WARMUP_SKIP`` (250) bars; Qlib's values inside them are counted only.
- A comparison with NaN is NaN, not false: CNTP/CNTN/CNTD differ on NaN inputs only.
- RSQR and CORR (and CORD, a ``Corr`` too) are NaN on an exactly constant window; Qlib
  blanks windows whose rolling std is within an absolute 2e-5 of 0.
- Windows count each symbol's own bars (no NaN rows from a market calendar): the synthetic
  symbols have no gaps, so this does not show here.
- BETA, RESI, RSQR in closed form over each window, not Qlib's running sums (rounding only).

Value check (first run): on ``SAMPLE_SYMBOLS`` (3) symbols, every one of the 157 columns of
the stored panel (``GET .../panels/{panel_id}/data?format=parquet``) against Qlib's
handler frame, after the 250-bar warm-up, where both are finite. A column agrees when
``|af - qlib| <= RTOL * |af| + ATOL_SCALE * median(|af|)`` (RTOL = ATOL_SCALE = 1e-4, the
float32 rule of panel_vs_qlib: Qlib's inputs and element-wise arithmetic are float32, ~6e-8
relative, amplified by cancellations such as ``close - open``) and no value is finite on one
side only. Reported per column: max relative (and absolute) difference. The columns with a
deliberate difference (CNTP/CNTN/CNTD, RSQR, CORR, CORD) are compared and reported
separately and never fail the run; any other column that does not agree fails it (exit 1).

Install the Qlib side as for panel_vs_qlib (benchmark-only)::

    pip install --no-deps pyqlib==0.9.7
    pip install --group qlib-bench      # pip >= 25.1; or the package list in panel_vs_qlib

Without Qlib the benchmark prints these commands and exits 0 ("skipped").

    python -m bench.alpha158_vs_qlib                # 100 symbols, 3 runs (a few minutes)
    python -m bench.alpha158_vs_qlib --quick        # 10 symbols, 1 run
    python -m bench.alpha158_vs_qlib --symbols 20 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.expressions.alpha158 import ALPHA158
from bench.common import machine_info, machine_line, start_calibration, synthetic_symbol, table, write_results
from bench.panel_vs_qlib import (
    AF_END,
    AF_START,
    INSTALL_HINT,
    QLIB_END,
    QLIB_START,
    _med,
    af_env,
    af_session,
    compare_columns,
    expression_definition,
    panel_sample,
    qlib_version,
    run_worker,
    save_panel_samples,
    sci,
    time_panels,
    write_qlib_layout,
)

NAME = "alpha158_vs_qlib"
COLD_TARGET = 0.5
WARM_TARGET = 0.05
WARMUP_SKIP = 250
SAMPLE_SYMBOLS = 3
RTOL = 1e-4
ATOL_SCALE = 1e-4
COLUMNS: list[str] = list(ALPHA158)
#: Columns with a deliberate difference in definition (alpha158.py's docstring): compared
#: and reported, never a failure.
DEFINITIONAL: dict[str, str] = {
    "CNTP": "a comparison with NaN is NaN (Qlib: false)",
    "CNTN": "a comparison with NaN is NaN (Qlib: false)",
    "CNTD": "a comparison with NaN is NaN (Qlib: false)",
    "RSQR": "NaN on an exactly constant window (Qlib: rolling std within 2e-5 of 0)",
    "CORR": "NaN on an exactly constant window (Qlib: rolling std within 2e-5 of 0)",
    "CORD": "NaN on an exactly constant window (Qlib: rolling std within 2e-5 of 0)",
}
#: Qlib's handler columns that alphaforge does not have.
QLIB_ONLY = {"VWAP0": "needs a vwap field (our bars have none; Qlib's is all NaN here)",
             "LABEL0": "Qlib's label Ref($close, -2)/Ref($close, -1) - 1, not a feature"}
MEMORY_SAMPLE_S = 0.1


def log(message: str) -> None:
    print(f"[{NAME}] {message}", flush=True)


def family(column: str) -> str:
    return column.rstrip("0123456789")


def definitional(column: str) -> str | None:
    return DEFINITIONAL.get(family(column))


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- Qlib side ----------------------------------------------------------------------------


def qlib_worker(provider_uri: Path, out_dir: Path, sample: list[str], kernels: int) -> None:
    """In a fresh process: init Qlib (caches off), time the Alpha158 handler's construction."""
    import logging

    t0 = time.perf_counter()
    import qlib
    from qlib.constant import REG_US
    from qlib.contrib.data.handler import Alpha158

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    qlib.init(provider_uri=str(provider_uri), region=REG_US, kernels=kernels, expression_cache=None,
              dataset_cache=None, logging_level=logging.WARNING)
    init_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    handler = Alpha158(instruments="all", start_time=QLIB_START, end_time=QLIB_END, infer_processors=[],
                       learn_processors=[])
    cold_s = time.perf_counter() - t0
    maxrss_handler = _maxrss_mib()

    frame = handler.fetch()  # col_set "__all": (datetime, instrument) x names
    out = {"qlib_version": qlib.__version__, "import_s": import_s, "init_s": init_s, "cold_s": cold_s,
           "kernels": kernels, "shape": list(frame.shape), "columns": [str(c) for c in frame.columns],
           "dtypes": sorted({str(t) for t in frame.dtypes}), "maxrss_after_handler_mib": maxrss_handler}
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise RuntimeError(f"Qlib's Alpha158 handler lacks {missing}")
    if sample:
        picked = frame.loc[frame.index.get_level_values("instrument").isin(sample), COLUMNS].reset_index()
        np.savez(out_dir / "qlib_sample.npz", instrument=np.asarray(picked["instrument"].tolist(), dtype="U32"),
                 datetime=picked["datetime"].to_numpy().astype("datetime64[ns]").astype(np.int64),
                 **{c: picked[c].to_numpy(dtype=np.float64) for c in COLUMNS})
    (out_dir / "qlib.json").write_text(json.dumps(out))


def _run_qlib(python: str, provider_uri: Path, sample: list[str], keep: Path | None, kernels: int) -> dict[str, Any]:
    def command(tmp: str) -> list[str]:
        return [python, "-m", f"bench.{NAME}", "--qlib-worker", tmp, "--provider-uri", str(provider_uri),
                "--qlib-kernels", str(kernels)] + (["--sample", ",".join(sample)] if sample else [])

    return run_worker(command, "alpha158-vs-qlib-q-", "qlib.json", keep if sample else None, ["qlib_sample.npz"])


# -- alphaforge side ----------------------------------------------------------------------


class TreeMemory:
    """Peak RSS of this process and its descendants, sampled every ``MEMORY_SAMPLE_S`` in a
    thread while running (psutil)."""

    def __init__(self) -> None:
        self.peak_self = self.peak_child = self.peak_tree = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil

        me = psutil.Process()
        while True:
            try:
                own = me.memory_info().rss
                children = []
                for child in me.children(recursive=True):
                    try:
                        children.append(child.memory_info().rss)
                    except psutil.Error:
                        pass
                self.peak_self = max(self.peak_self, own / 2**20)
                self.peak_child = max(self.peak_child, max(children, default=0) / 2**20)
                self.peak_tree = max(self.peak_tree, (own + sum(children)) / 2**20)
            except psutil.Error:
                pass
            if self._stop.wait(MEMORY_SAMPLE_S):
                return

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def as_dict(self) -> dict[str, float]:
        return {"api_process_mib": self.peak_self, "largest_child_mib": self.peak_child,
                "tree_sum_mib": self.peak_tree}


def af_worker(out_dir: Path, n_symbols: int, sample: list[str]) -> None:
    """In a fresh process: ingest, define the one expression feature, warm up (panel_vs_qlib's
    ``af_session``), then time its panel cold and warm."""
    result: dict[str, Any] = {}
    definition = expression_definition("Alpha158 (157 formulas)", ALPHA158)
    with af_session(n_symbols, [definition], result) as (client, ids):
        named = [("alpha158", ids[0])]
        with TreeMemory() as memory:
            cold_s, _, cold_answers = time_panels(client, named, n_symbols, expect_cached=False)
            warm_s, _, _ = time_panels(client, named, n_symbols, expect_cached=True)
        panel = cold_answers[0]["panel"]
        result.update(cold_s=cold_s, warm_s=warm_s, rows=panel["row_count"], peak_rss=memory.as_dict(),
                      maxrss_api_process_mib=_maxrss_mib(),
                      panel_columns=panel.get("columns"), pieces=len(cold_answers[0]["pieces"]))
        if sample:  # the stored panel's values for the value check (not timed)
            frame = panel_sample(client, ids[0], panel["id"], sample, "alpha158")
            save_panel_samples(out_dir / "af_sample.npz", [(frame, {c: c for c in COLUMNS})], "alpha158")
    (out_dir / "af.json").write_text(json.dumps(result))


def _run_af(n_symbols: int, sample: list[str], keep: Path | None) -> dict[str, Any]:
    def command(tmp: str) -> list[str]:
        return [sys.executable, "-m", f"bench.{NAME}", "--af-worker", tmp, "--symbols", str(n_symbols)] + (
            ["--sample", ",".join(sample)] if sample else [])

    return run_worker(command, "alpha158-vs-qlib-a-", "af.json", keep if sample else None, ["af_sample.npz"],
                      env=af_env())


# -- value check --------------------------------------------------------------------------


def compare(samples: Path) -> dict[str, Any]:
    """Every column of alphaforge's panel vs Qlib's handler frame on the sampled symbols after
    the warm-up; a column that should agree must be within float32 precision with the same
    finite values; the definitional ones are reported apart."""
    check = compare_columns(samples / "af_sample.npz", samples / "qlib_sample.npz", COLUMNS, WARMUP_SKIP, RTOL,
                            ATOL_SCALE)
    for column, v in check["features"].items():
        v["definitional"] = definitional(column)
        v["agrees"] = bool(v["ok"] and v["finite_on_one_side_after_warmup"] == 0)
    must = {c: v for c, v in check["features"].items() if v["definitional"] is None}
    check["failing"] = [c for c, v in must.items() if not v["agrees"]]
    check["definitional_differing"] = [c for c, v in check["features"].items()
                                       if v["definitional"] is not None and not v["agrees"]]
    check["ok"] = not check["failing"]
    return check


# -- the benchmark ------------------------------------------------------------------------


def run(n_symbols: int, runs: int, qlib_python: str, kernels: int) -> dict[str, Any]:
    sample = [synthetic_symbol(i) for i in range(min(SAMPLE_SYMBOLS, n_symbols))]
    work = Path(tempfile.mkdtemp(prefix="alpha158-vs-qlib-"))
    try:
        layout = write_qlib_layout(work / "qlib_data", n_symbols)
        log(f"Qlib layout written ({layout['calendar_days']} days x {n_symbols} symbols, "
            f"{layout['write_s']:.1f} s, not timed)")
        q_runs, af_runs = [], []
        for i in range(runs):
            keep = work if i == 0 else None
            s = sample if i == 0 else []
            q = _run_qlib(qlib_python, work / "qlib_data", s, keep, kernels)
            log(f"run {i + 1}/{runs}: Qlib Alpha158 handler cold {q['cold_s']:.2f} s (kernels={kernels}; peak RSS "
                f"{q['maxrss_after_handler_mib']:.0f} MiB) load {os.getloadavg()[0]:.2f}")
            a = _run_af(n_symbols, s, keep)
            log(f"run {i + 1}/{runs}: alphaforge Alpha158 panel cold {a['cold_s']:.2f} s, warm {a['warm_s']:.3f} s "
                f"(ingest {a['ingest_s']:.1f} s, warm-up generate {a['warmup_generate_s']:.2f} s; peak RSS API "
                f"{a['peak_rss']['api_process_mib']:.0f} MiB, largest worker {a['peak_rss']['largest_child_mib']:.0f} "
                f"MiB) load {os.getloadavg()[0]:.2f}")
            q_runs.append(q)
            af_runs.append(a)
            if i == 0:
                check = compare(work)
                log("value check: " + ("OK" if check["ok"] else "FAILED: " + ", ".join(check["failing"])))
                if not check["ok"]:
                    break  # the features are not the same: timing them side by side means nothing
    finally:
        shutil.rmtree(work, ignore_errors=True)

    q_cold = _med([q["cold_s"] for q in q_runs])
    af_cold = _med([a["cold_s"] for a in af_runs])
    af_warm = _med([a["warm_s"] for a in af_runs])
    cold_ratio = af_cold["median"] / q_cold["median"]
    warm_ratio = af_warm["median"] / q_cold["median"]
    return {
        "config": {
            "n_symbols": n_symbols,
            "bars_per_symbol": layout["calendar_days"],
            "columns": len(COLUMNS),
            "expressions": ALPHA158,
            "range_alphaforge": [AF_START, AF_END],
            "range_qlib": [QLIB_START, QLIB_END],
            "data": "SYNTHETIC geometric random walk, seeded (bench.common.synthetic_series), daily OHLCV",
            "qlib": f"fresh subprocess per run; qlib.init(region=REG_US, kernels={kernels}, expression_cache=None, "
                    "dataset_cache=None); timed: Alpha158(instruments='all', full range, infer_processors=[], "
                    "learn_processors=[]) construction (158 feature exprs + LABEL0, no processing); layout written "
                    "by bench.panel_vs_qlib.write_qlib_layout (not timed)",
            "alphaforge": "fresh subprocess + data dir per run; TestClient(create_app(Settings(embedded, "
                          "load_sample_data=False))); CSV uploads, universe, 1 automated.expression definition "
                          "with the 157 Alpha158 formulas, 1 warm-up generate (not timed); cold = POST "
                          "/features/{id}/panels (all pieces computed), warm = the same again (a hit)",
            "runs": len(q_runs),
            "runs_requested": runs,
            "qlib_python": qlib_python,
            "qlib_kernels": kernels,
            "statistic": "median over runs (Qlib and alphaforge runs alternate)",
            "timer": "time.perf_counter",
            "memory": "Qlib: ru_maxrss after the handler; alphaforge: RSS of the API process and its descendants "
                      f"sampled every {MEMORY_SAMPLE_S} s during the two panel requests (psutil)",
        },
        "qlib_version": q_runs[0]["qlib_version"],
        "qlib_layout": layout,
        "qlib_cold_s": q_cold,
        "qlib_init_s": _med([q["init_s"] for q in q_runs]),
        "qlib_import_s": _med([q["import_s"] for q in q_runs]),
        "qlib_frame_shape": q_runs[0]["shape"],
        "qlib_frame_dtypes": q_runs[0]["dtypes"],
        "qlib_peak_rss_mib": _med([q["maxrss_after_handler_mib"] for q in q_runs]),
        "af_cold_s": af_cold,
        "af_warm_s": af_warm,
        "af_ingest_s": _med([a["ingest_s"] for a in af_runs]),
        "af_warmup_generate_s": _med([a["warmup_generate_s"] for a in af_runs]),
        "af_rows": af_runs[0]["rows"],
        "af_peak_rss_api_mib": _med([a["peak_rss"]["api_process_mib"] for a in af_runs]),
        "af_peak_rss_largest_child_mib": _med([a["peak_rss"]["largest_child_mib"] for a in af_runs]),
        "af_peak_rss_tree_sum_mib": _med([a["peak_rss"]["tree_sum_mib"] for a in af_runs]),
        "cold_ratio": cold_ratio,
        "warm_ratio": warm_ratio,
        "cold_target": COLD_TARGET,
        "warm_target": WARM_TARGET,
        "cold_met": cold_ratio <= COLD_TARGET,
        "warm_met": warm_ratio <= WARM_TARGET,
        "value_check": check,
        "deliberate_differences": {"definitional_families": DEFINITIONAL, "qlib_only_columns": QLIB_ONLY,
                                   "all_columns": ["full windows only (warm-up skipped in the check)",
                                                   "windows count each symbol's own bars (no gaps here)"]},
        "runs_raw": {"qlib": q_runs, "alphaforge": af_runs},
    }


def _scaled(v: dict[str, Any]) -> float | None:
    """The largest difference relative to the column's median |value| (the scale of the rule)."""
    if v["max_abs_diff"] is None or not v["median_abs_value"]:
        return None
    return v["max_abs_diff"] / v["median_abs_value"]


def report(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return f"{NAME}: skipped -- {result['skipped']}"
    cfg = result["config"]

    def runs(x: dict[str, Any]) -> str:
        return " / ".join(f"{v:.3f}" if v < 1 else f"{v:.2f}" for v in x["per_run"])

    rows = [
        [f"Qlib Alpha158 handler, cold (fresh process, caches off, kernels={cfg['qlib_kernels']})",
         result["qlib_cold_s"]["median"], runs(result["qlib_cold_s"]), 1.0, "-"],
        ["alphaforge Alpha158 panel (1 expression definition), cold", result["af_cold_s"]["median"],
         runs(result["af_cold_s"]), result["cold_ratio"], f"<= {COLD_TARGET}: {'met' if result['cold_met'] else 'NOT met'}"],
        ["alphaforge Alpha158 panel, warm (a hit)", result["af_warm_s"]["median"], runs(result["af_warm_s"]),
         result["warm_ratio"], f"<= {WARM_TARGET}: {'met' if result['warm_met'] else 'NOT met'}"],
    ]
    check = result["value_check"]

    def check_row(column: str, v: dict[str, Any]) -> list[Any]:
        if v["definitional"] is not None:
            verdict = "agrees (definitional)" if v["agrees"] else "differs (definitional)"
        else:
            verdict = "yes" if v["agrees"] else "NO"
        return [column, v["compared"], sci(v["max_rel_diff"]), sci(v["max_abs_diff"]), v["median_abs_value"],
                sci(_scaled(v)), v["finite_on_one_side_after_warmup"], v["qlib_only_values_in_warmup"], verdict]

    header = ["column", "values", "max rel diff", "max abs diff", "median |af|", "max abs / median |af|",
              "finite one side", "Qlib-only in warm-up", "agrees"]
    must = [check_row(c, v) for c, v in check["features"].items() if v["definitional"] is None]
    deliberate = [check_row(c, v) for c, v in check["features"].items() if v["definitional"] is not None]
    scaled = {c: _scaled(v) for c, v in check["features"].items() if v["definitional"] is None}
    worst = max((c for c in scaled if scaled[c] is not None), key=lambda c: scaled[c], default=None)
    return "\n".join([
        f"{NAME}: {cfg['n_symbols']} SYNTHETIC symbols x {cfg['bars_per_symbol']} daily bars x {cfg['columns']} "
        f"Alpha158 features; Qlib {result['qlib_version']} Alpha158 handler vs alphaforge's panel API (embedded, "
        f"TestClient); median of {cfg['runs']} runs",
        table(rows, ["what", "median s", "per run s", "/ Qlib cold", "target"]),
        f"cold: alphaforge / Qlib = {result['cold_ratio']:.3f} (target <= {COLD_TARGET}: "
        f"{'met' if result['cold_met'] else 'NOT met'}); warm: alphaforge / Qlib cold = {result['warm_ratio']:.4f} "
        f"(target <= {WARM_TARGET}: {'met' if result['warm_met'] else 'NOT met'})",
        f"peak memory: Qlib process {result['qlib_peak_rss_mib']['median']:.0f} MiB (ru_maxrss); alphaforge API "
        f"process {result['af_peak_rss_api_mib']['median']:.0f} MiB, largest task worker "
        f"{result['af_peak_rss_largest_child_mib']['median']:.0f} MiB, whole tree "
        f"{result['af_peak_rss_tree_sum_mib']['median']:.0f} MiB (RSS sampled every {MEMORY_SAMPLE_S} s; shared "
        "pages counted per process)",
        f"not timed: Qlib layout write {result['qlib_layout']['write_s']:.1f} s, import {result['qlib_import_s']['median']:.2f} s, "
        f"qlib.init {result['qlib_init_s']['median']:.2f} s; alphaforge CSV upload of {cfg['n_symbols']} symbols "
        f"{result['af_ingest_s']['median']:.1f} s, warm-up generate {result['af_warmup_generate_s']['median']:.2f} s; "
        f"Qlib frame {result['qlib_frame_shape']} {','.join(result['qlib_frame_dtypes'])} (158 features + LABEL0), "
        f"alphaforge panel {result['af_rows']} rows x {cfg['columns']} float64",
        "",
        f"value check (first run; symbols {', '.join(check['symbols'])}; after {check['warmup_skipped_bars']} bars; "
        f"agree: |diff| <= {check['rtol']:g} |af| + {check['atol_scale']:g} median|af| and no value finite on one side "
        f"only): {'OK' if check['ok'] else 'FAILED: ' + ', '.join(check['failing'])}; "
        f"{len(must)} columns that should agree; the largest difference relative to the column's median |value|: "
        f"{sci(scaled[worst]) if worst else '-'} ({worst}) (max rel diff is large only where a value is near 0, "
        "e.g. KLOW when low is about min(open, close): there the absolute difference is float32 rounding)",
        table(must, header),
        "",
        "columns with a deliberate difference in definition (compared, never a failure):",
        table(deliberate, header),
        *[f"  {fam}*: {why}" for fam, why in DEFINITIONAL.items()],
        "not compared (Qlib only): " + "; ".join(f"{c}: {why}" for c, why in QLIB_ONLY.items()),
        "every column: full windows only (Qlib: min_periods=1; the check skips the warm-up) and windows over each "
        "symbol's own bars (no gaps in this data)",
    ])


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    if "skipped" in result:
        return [[NAME, "skipped (pyqlib not installed)", "-", "-", None]]
    n = result["config"]["runs"]
    check = result["value_check"]
    return [
        [NAME, f"Qlib Alpha158 handler, cold (median of {n})", f"{result['qlib_cold_s']['median']:.2f} s", "-", None],
        [NAME, "alphaforge Alpha158 panel cold / Qlib cold", f"{result['cold_ratio']:.2f} "
         f"({result['af_cold_s']['median']:.1f} s)", f"<= {COLD_TARGET}", result["cold_met"]],
        [NAME, "alphaforge Alpha158 panel warm / Qlib cold", f"{result['warm_ratio']:.4f} "
         f"({result['af_warm_s']['median']:.3f} s)", f"<= {WARM_TARGET}", result["warm_met"]],
        [NAME, "same values (157 columns vs Qlib)", "OK" if check["ok"] else f"FAILED ({len(check['failing'])})", "OK",
         check["ok"]],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{NAME}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 symbols, 1 run")
    parser.add_argument("--symbols", type=int, help="synthetic symbols (default 100; --quick 10)")
    parser.add_argument("--runs", type=int, help="runs of each side (default 3; --quick 1)")
    parser.add_argument("--qlib-python", default=os.environ.get("QLIB_PYTHON") or sys.executable,
                        help="interpreter with pyqlib for the Qlib side (default: $QLIB_PYTHON, else this one)")
    parser.add_argument("--qlib-kernels", type=int, default=1, help="Qlib's kernels (default 1, as panel_vs_qlib)")
    parser.add_argument("--qlib-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--af-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--provider-uri", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sample", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n_symbols = args.symbols or (10 if args.quick else 100)
    sample = [s for s in args.sample.split(",") if s]
    if args.qlib_worker:
        qlib_worker(args.provider_uri, args.qlib_worker, sample, args.qlib_kernels)
        return 0
    if args.af_worker:
        af_worker(args.af_worker, n_symbols, sample)
        return 0

    log(f"machine: {machine_line(machine_info())}")
    version_, why = qlib_version(args.qlib_python)
    if version_ is None:
        message = f"pyqlib not importable ({why})"
        log(f"skipped: {message}\n{INSTALL_HINT}")
        path = write_results(NAME, {"skipped": message, "install": INSTALL_HINT}, quick=args.quick)
        log(f"results: {path}")
        return 0
    log(f"Qlib {version_} under {args.qlib_python}")
    cal = start_calibration()
    log(f"calibration: pure-Python 1M-iteration loop {cal['python_loop_1m_ms']:.1f} ms, "
        f"numpy sort of 1M floats {cal['numpy_sort_1m_ms']:.1f} ms")
    runs = args.runs or (1 if args.quick else 3)
    result = run(n_symbols, runs, args.qlib_python, args.qlib_kernels)
    path = write_results(NAME, result, quick=args.quick)
    print(report(result))
    log(f"results: {path}")
    if not result["value_check"]["ok"]:
        log("FAILED: columns that should agree with Qlib's differ beyond float32 precision: "
            + ", ".join(result["value_check"]["failing"]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
