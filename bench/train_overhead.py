"""Training overhead: the platform's ``train_model`` vs a plain loop fitting the same library.

Data: the bundled REAL daily GSPC bars (1999-2018, ``arch`` sample data), embedded default
storage (SQLite + file object store + SQLite MLflow) in a fresh temp data dir, and 10
feature definitions (RSI 14, MACD 12/26/9 (3 columns), ATR 14, BBANDS 20 (3 columns),
ROC 10, WILLR 14, returns 1, log returns 1, realized volatility 20, z-score 20): 10
definitions, 14 columns. Target: the 1-bar forward return. CV: the request default
(rolling, 5 splits, test_size 0.15, purge = horizon). Plugins: default parameters, seed 0.

The feature-dataset cache is warmed first (one ``assemble_training_data``), and each
plugin gets one untimed warm-up training (library import, MLflow store creation). Then,
for ml.lightgbm and ml.xgboost, each repeat times (order alternating between repeats):

  platform  ``trainer.train_model(ctx, model_id, TrainRequest(...))``, the service layer
            (no HTTP): definition load, assembly from the warm cache, folds, per-fold
            fit/predict/metrics, final fit, artifact to the object store, MLflow run,
            model-row update
  plain     the same X, y (``assemble_training_data`` once, outside the timing) and the
            same folds (``cv.make_folds``, same config), fitting ``lightgbm.LGBMRegressor``
            / ``xgboost.XGBRegressor`` directly with exactly the plugin's parameters and
            thread count, predicting each test fold, mse with numpy, then the final fit on
            all rows

ratio = median(platform) / median(plain); target <= 1.15. The per-fold mse of the plain
loop is checked against the platform's, so both sides do the same fitting work.

Breakdown: separate instrumented ``train_model`` runs (same repeats) in which the bench
wraps, without editing the product code, the service functions ``train_model`` calls
(``check_train_request``, ``assemble_training_data``, ``cv.make_folds``,
``cross_validate``, the plugin's ``fit``/``predict``/``to_bytes``, ``metrics.fold_metrics``,
``ctx.objects.put``, ``_lineage``, ``ctx.tracker.log_training``) and cuts the run into
contiguous segments (they add up to the run's wall time): definition, assembly, folds,
CV (fits, predicts, metrics, the rest), final fit, serialize+store, MLflow (params and
lineage built, ``log_training``), row update.

Train-time table: every registered model plugin trained through ``train_model`` on the same
dataset with default parameters: one timed first run (the libraries are imported
beforehand), then ``--table-repeats`` more unless the first run took over ``--slow-s``
seconds (then that one run is the figure); median wall time and the stored artifact size.

The cyclic GC is collected before, and off during, every timed sample. Before timing the
bench waits (polling every 15 s, up to ``--max-wait`` s) for the 1-minute load average to
drop below 0.7; the load seen at start and after the wait are in the results.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    LOADAVG_AT_START,
    machine_info,
    machine_line,
    start_calibration,
    table,
    time_once,
    wait_for_quiet,
    write_results,
)

NAME = "train_overhead"
TARGET_RATIO = 1.15
HEADLINE = ("ml.lightgbm", "ml.xgboost")
SYMBOL = "GSPC"
START = "1999-01-01"
END = "2019-01-01"
HORIZON = 1
SEED = 0
LOAD_THRESHOLD = 0.7

#: 10 feature definitions (plugin key, parameters): 14 columns (MACD and BBANDS give 3 each).
FEATURES: list[tuple[str, dict[str, Any]]] = [
    ("technical.rsi", {"period": 14}),
    ("technical.macd", {"fast_period": 12, "slow_period": 26, "signal_period": 9}),
    ("technical.atr", {"period": 14}),
    ("technical.bbands", {"period": 20}),
    ("technical.roc", {"period": 10}),
    ("technical.willr", {"period": 14}),
    ("statistical.returns", {"period": 1}),
    ("statistical.log_returns", {"period": 1}),
    ("statistical.realized_volatility", {"window": 20}),
    ("statistical.z_score", {"window": 20}),
]

#: Imported before the train-time table so no first run pays for a library import.
LIBRARY_MODULES = ("lightgbm", "xgboost", "catboost", "sklearn.ensemble", "sklearn.linear_model", "torch",
                   "statsmodels.tsa.arima.model", "arch", "scipy.stats", "mlflow")

SEGMENTS = (
    "definition", "assembly", "make_folds", "cv", "final_fit", "serialize_store", "mlflow", "row_update",
)
SUBSEGMENTS = (
    "cv_fits", "cv_predicts", "cv_metrics", "cv_rest", "serialize", "store_put", "sha256_and_rest",
    "params_lineage_build", "log_training",
)


# -- the plain loop -----------------------------------------------------------------------


def plain_factory(key: str, params: dict[str, Any], seed: int) -> Callable[[], Any]:
    """A fresh estimator configured exactly as the plugin's ``fit`` configures it."""
    from alphaforge.plugins.models.machine_learning import THREADS

    if key == "ml.lightgbm":
        import lightgbm

        return lambda: lightgbm.LGBMRegressor(
            **params, subsample_freq=1, objective="regression", deterministic=True, force_row_wise=True,
            n_jobs=THREADS, random_state=seed, verbosity=-1,
        )
    if key == "ml.xgboost":
        import xgboost

        return lambda: xgboost.XGBRegressor(
            **params, objective="reg:squarederror", tree_method="hist", n_jobs=THREADS, random_state=seed,
        )
    raise ValueError(f"no plain loop for {key}")


def plain_loop(make: Callable[[], Any], X: np.ndarray, y: np.ndarray, folds: list[Any], out: dict[str, Any]) -> None:
    """Per fold: fit, predict the test rows, mse (numpy); then the final fit on all rows."""
    mses, fit_s, predict_s = [], 0.0, 0.0
    for fold in folds:
        t0 = time.perf_counter()
        model = make()
        model.fit(X[fold.train], y[fold.train])
        t1 = time.perf_counter()
        predicted = model.predict(X[fold.test])
        mses.append(float(np.mean((predicted - y[fold.test]) ** 2)))
        predict_s += time.perf_counter() - t1
        fit_s += t1 - t0
    t0 = time.perf_counter()
    final = make()
    final.fit(X, y)
    out.update(fold_mse=mses, cv_fit_s=fit_s, cv_predict_mse_s=predict_s, final_fit_s=time.perf_counter() - t0)


# -- instrumentation of train_model (bench-side wrappers, product code untouched) ---------


@contextmanager
def instrumented(ctx: Any, plugin_cls: type) -> Iterator[list[tuple[str, float, float]]]:
    """Wrap what ``train_model`` calls; yields the list of (label, start, end) events."""
    from alphaforge.evaluation import cv
    from alphaforge.evaluation import metrics
    from alphaforge.training import trainer

    events: list[tuple[str, float, float]] = []
    targets: list[tuple[Any, str, str]] = [
        (trainer, "check_train_request", "definition"),
        (trainer, "assemble_training_data", "assembly"),
        (cv, "make_folds", "make_folds"),
        (trainer, "cross_validate", "cross_validate"),
        (trainer, "_lineage", "lineage"),
        (metrics, "fold_metrics", "fold_metrics"),
        (metrics, "naive_baseline", "naive_baseline"),
        (plugin_cls, "fit", "fit"),
        (plugin_cls, "predict", "predict"),
        (plugin_cls, "to_bytes", "to_bytes"),
        (ctx.objects, "put", "put"),
        (ctx.tracker, "log_training", "log_training"),
    ]
    restore: list[tuple[Any, str, Any, bool]] = []

    def wrap(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                events.append((label, t0, time.perf_counter()))

        return wrapper

    try:
        for obj, name, label in targets:
            own = name in vars(obj)
            original = vars(obj)[name] if own else getattr(obj, name)
            restore.append((obj, name, original, own))
            # a class gets a wrapped function (bound per instance); an instance, its bound method wrapped
            setattr(obj, name, wrap(label, original if isinstance(obj, type) else getattr(obj, name)))
        yield events
    finally:
        for obj, name, original, own in reversed(restore):
            if own:
                setattr(obj, name, original)
            else:
                delattr(obj, name)


def segments(events: list[tuple[str, float, float]], t_start: float, t_end: float) -> dict[str, float]:
    """Contiguous segments of one instrumented run (seconds); they sum to t_end - t_start."""

    def one(label: str, after: float = -1.0) -> tuple[float, float]:
        found = [(a, b) for lab, a, b in events if lab == label and a >= after]
        if not found:
            raise RuntimeError(f"instrumented run: no {label!r} call recorded")
        return found[0]

    def inside(label: str, lo: float, hi: float) -> float:
        return sum(b - a for lab, a, b in events if lab == label and a >= lo and b <= hi)

    _, end_def = one("definition")
    _, end_asm = one("assembly")
    _, end_folds = one("make_folds")
    cv0, cv1 = one("cross_validate")
    ff0, ff1 = one("fit", after=cv1)
    ser0, ser1 = one("to_bytes", after=ff1)
    put0, put1 = one("put", after=ser1)
    log0, log1 = one("log_training", after=put1)
    seg = {
        "definition": end_def - t_start,
        "assembly": end_asm - end_def,
        "make_folds": end_folds - end_asm,
        "cv": cv1 - end_folds,
        "final_fit": ff1 - cv1,
        "serialize_store": put1 - ff1,
        "mlflow": log1 - put1,
        "row_update": t_end - log1,
    }
    fits = inside("fit", cv0, cv1)
    predicts = inside("predict", cv0, cv1)
    mets = inside("fold_metrics", cv0, cv1) + inside("naive_baseline", cv0, cv1)
    seg.update(
        cv_fits=fits,
        cv_predicts=predicts,
        cv_metrics=mets,
        cv_rest=seg["cv"] - fits - predicts - mets,
        serialize=ser1 - ser0,
        store_put=put1 - put0,
        sha256_and_rest=seg["serialize_store"] - (ser1 - ser0) - (put1 - put0),
        params_lineage_build=log0 - put1,
        log_training=log1 - log0,
        final_fit_call=ff1 - ff0,
        total=t_end - t_start,
    )
    return seg


# -- the benchmark ------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values)


def run(repeats: int = 7, table_repeats: int = 3, slow_s: float = 20.0, plugins: list[str] | None = None,
        wait: bool = True, max_wait_s: float = 900.0, calibrate: bool = True) -> dict[str, Any]:
    from alphaforge.bootstrap import start_context
    from alphaforge.plugins.models import model_plugins
    from alphaforge.schemas.features import FeatureCreate
    from alphaforge.schemas.models import DatasetSpec, ModelCreate, TrainRequest
    from alphaforge.evaluation import cv
    from alphaforge.training import trainer
    from alphaforge.training.assembly import assemble_training_data
    from alphaforge.features.definitions import create_feature
    from alphaforge.training.definitions import create_model
    from alphaforge.settings import Settings

    table_keys = plugins if plugins is not None else list(model_plugins.keys())
    tmp = Path(tempfile.mkdtemp(prefix="alphaforge-bench-train-"))
    try:
        t0 = time.perf_counter()
        ctx = start_context(Settings(data_dir=tmp))
        print(f"[{NAME}] context (migrations + sample data) in {time.perf_counter() - t0:.1f} s, data dir {tmp}",
              flush=True)
        try:
            feature_ids = [
                create_feature(ctx, FeatureCreate(name=f"bench {k} {p}", type=k.split(".")[0], plugin_key=k,
                                                  parameters=p)).id
                for k, p in FEATURES
            ]
            request = TrainRequest(
                dataset=DatasetSpec(feature_ids=feature_ids, symbol=SYMBOL, start_date=START, end_date=END,
                                    target_horizon=HORIZON),
                seed=SEED,
            )
            t0 = time.perf_counter()
            data = assemble_training_data(ctx, request.dataset)  # warms the feature-dataset cache
            cold_assembly_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            assemble_training_data(ctx, request.dataset)
            warm_assembly_s = time.perf_counter() - t0
            X, y = data.X, data.y
            c = request.cv
            folds = cv.make_folds(len(y), method=c.method, n_splits=c.n_splits, test_size=c.test_size,
                                  min_train_size=c.min_train_size, horizon=HORIZON, purge=c.purge,
                                  embargo=c.embargo)
            print(f"[{NAME}] dataset: {SYMBOL} {START}..{END}: {X.shape[0]} rows x {X.shape[1]} columns from "
                  f"{len(FEATURES)} definitions ({data.dropped_rows} rows dropped: warm-up / no target); "
                  f"cache cold {cold_assembly_s * 1e3:.0f} ms, warm {warm_assembly_s * 1e3:.0f} ms; folds: "
                  + ", ".join(f"{len(f.train)}/{len(f.test)}" for f in folds) + " (train/test rows)", flush=True)

            for module in LIBRARY_MODULES:
                try:
                    __import__(module)
                except ImportError:
                    print(f"[{NAME}] (library {module} not importable)", flush=True)

            models: dict[str, uuid.UUID] = {}

            def model_id(key: str) -> uuid.UUID:
                if key not in models:
                    cls = model_plugins.get(key)
                    models[key] = create_model(
                        ctx, ModelCreate(name=f"bench {key}", model_type=key, family=cls.family, parameters={})
                    ).id
                return models[key]

            # Warm-up: one untimed training per headline plugin (also creates the MLflow store).
            plain_cfg: dict[str, Any] = {}
            for key in HEADLINE:
                result = trainer.train_model(ctx, model_id(key), request)
                definition = trainer.check_train_request(ctx, model_id(key), request)
                make = plain_factory(key, definition.plugin.params.model_dump(), SEED)
                check: dict[str, Any] = {}
                plain_loop(make, X, y, folds, check)
                platform_mse = [f["mse"] for f in result.cv_metrics["folds"]]
                worst = max(abs(a - b) / abs(b) for a, b in zip(check["fold_mse"], platform_mse))
                if len(platform_mse) != len(check["fold_mse"]) or worst > 1e-9:
                    raise AssertionError(f"{key}: plain-loop fold mse {check['fold_mse']} != platform {platform_mse}")
                plain_cfg[key] = {"make": make, "params": definition.plugin.params.model_dump(),
                                  "fold_mse_max_rel_diff": worst}
                print(f"[{NAME}] {key}: warm-up done; plain-loop fold mse matches the platform's "
                      f"(max rel diff {worst:.1e})", flush=True)

            load = wait_for_quiet(NAME, LOAD_THRESHOLD, max_wait_s) if wait else {"skipped": True,
                                                                             "loadavg_1_5_15": os.getloadavg()}
            if calibrate:
                cal = start_calibration()
                print(f"[{NAME}] calibration: pure-Python 1M loop {cal['python_loop_1m_ms']:.1f} ms, "
                      f"numpy sort 1M {cal['numpy_sort_1m_ms']:.1f} ms", flush=True)

            # -- headline: platform vs plain ------------------------------------------------
            headline: dict[str, Any] = {}
            for key in HEADLINE:
                mid = model_id(key)
                make = plain_cfg[key]["make"]
                samples: dict[str, list[float]] = {"platform": [], "plain": []}
                plain_parts: list[dict[str, Any]] = []

                def platform_once(mid: uuid.UUID = mid) -> None:
                    trainer.train_model(ctx, mid, request)

                def plain_once(make: Callable[[], Any] = make) -> None:
                    parts: dict[str, Any] = {}
                    plain_loop(make, X, y, folds, parts)
                    plain_parts.append(parts)

                fns = {"platform": platform_once, "plain": plain_once}
                for rep in range(repeats):
                    order = ("platform", "plain") if rep % 2 == 0 else ("plain", "platform")
                    for v in order:
                        samples[v].append(time_once(fns[v]))
                # Instrumented runs for the breakdown (separate from the timed ones).
                seg_samples: list[dict[str, float]] = []
                cls = model_plugins.get(key)
                for _ in range(repeats):
                    with instrumented(ctx, cls) as events:
                        box: dict[str, float] = {}

                        def one_run(box: dict[str, float] = box) -> None:
                            box["t0"] = time.perf_counter()
                            trainer.train_model(ctx, mid, request)
                            box["t1"] = time.perf_counter()

                        time_once(one_run)
                    seg_samples.append(segments(events, box["t0"], box["t1"]))
                med_platform, med_plain = _median(samples["platform"]), _median(samples["plain"])
                keys = [*SEGMENTS, *SUBSEGMENTS, "final_fit_call", "total"]
                breakdown = {k: _median([s[k] for s in seg_samples]) for k in keys}
                library_s = breakdown["cv_fits"] + breakdown["cv_predicts"] + breakdown["final_fit_call"]
                row = {
                    "parameters": plain_cfg[key]["params"],
                    "fold_mse_max_rel_diff_plain_vs_platform": plain_cfg[key]["fold_mse_max_rel_diff"],
                    "samples_s": {v: [round(x, 5) for x in s] for v, s in samples.items()},
                    "median_s": {"platform": med_platform, "plain": med_plain},
                    "ratio_platform_to_plain": med_platform / med_plain,
                    "ratio_paired_median": _median([p / q for p, q in zip(samples["platform"], samples["plain"])]),
                    "ratio_best_of": min(samples["platform"]) / min(samples["plain"]),
                    "overhead_s": med_platform - med_plain,
                    "meets_target": med_platform / med_plain <= TARGET_RATIO,
                    "plain_parts_median_s": {
                        k: _median([p[k] for p in plain_parts]) for k in ("cv_fit_s", "cv_predict_mse_s", "final_fit_s")
                    },
                    "breakdown_median_s": breakdown,
                    "breakdown_samples_s": [{k: round(v, 6) for k, v in s.items()} for s in seg_samples],
                    "instrumented_library_work_s": library_s,
                    "instrumented_overhead_s": breakdown["total"] - library_s,
                }
                headline[key] = row
                print(f"[{NAME}] {key}: platform {med_platform:.3f} s, plain {med_plain:.3f} s, ratio "
                      f"{row['ratio_platform_to_plain']:.3f} (paired {row['ratio_paired_median']:.3f}, best-of "
                      f"{row['ratio_best_of']:.3f})", flush=True)

            # -- train-time table -----------------------------------------------------------
            per_plugin: dict[str, Any] = {}
            for key in table_keys:
                cls = model_plugins.get(key)
                mid = model_id(key)
                runs: list[float] = []
                results: list[Any] = []

                def once(mid: uuid.UUID = mid) -> None:
                    results.append(trainer.train_model(ctx, mid, request))

                try:
                    first = time_once(once)
                except Exception as exc:  # noqa: BLE001 - reported in the table, the bench goes on
                    per_plugin[key] = {"family": cls.family, "error": f"{type(exc).__name__}: {exc}"[:500]}
                    print(f"[{NAME}] {key}: FAILED {per_plugin[key]['error']}", flush=True)
                    continue
                slow = first > slow_s
                if not slow:
                    for _ in range(table_repeats):
                        runs.append(time_once(once))
                else:
                    runs = [first]
                last = results[-1]
                artifact = ctx.objects.get(ctx.objects.key_of(last.artifact_uri))
                per_plugin[key] = {
                    "family": cls.family,
                    "first_run_s": first,
                    "timed_runs_s": [round(r, 4) for r in runs],
                    "n_timed": len(runs),
                    "first_run_is_the_figure": slow,
                    "median_s": _median(runs),
                    "min_s": min(runs),
                    "artifact_bytes": len(artifact),
                    "artifact_ext": last.artifact_uri.rsplit(".", 1)[-1],
                    "cv_mean_mse": last.cv_metrics["summary"].get("mean_mse"),
                    "cv_mean_ic": last.cv_metrics["summary"].get("mean_ic"),
                    "baseline_mean_mse": last.cv_metrics["baseline"].get("mean_mse"),
                    "n_train_rows": last.n_train_rows,
                }
                print(f"[{NAME}] {key}: median {per_plugin[key]['median_s']:.3f} s over {len(runs)} run(s) "
                      f"(first {first:.3f} s), artifact {len(artifact):,} bytes", flush=True)
        finally:
            ctx.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    return {
        "config": {
            "data": f"REAL bundled sample bars ({SYMBOL} daily, arch package), {START} .. {END} (end exclusive)",
            "storage": "embedded default: SQLite + file object store + SQLite MLflow in a fresh temp data dir",
            "layer": "service layer trainer.train_model (no HTTP)",
            "features": [{"plugin_key": k, "parameters": p} for k, p in FEATURES],
            "n_feature_definitions": len(FEATURES),
            "n_feature_columns": int(X.shape[1]),
            "feature_columns": data.columns,
            "n_rows": int(X.shape[0]),
            "dropped_rows": data.dropped_rows,
            "target_horizon": HORIZON,
            "cv": request.cv.model_dump(mode="json"),
            "folds_train_test_rows": [[int(len(f.train)), int(len(f.test))] for f in folds],
            "seed": SEED,
            "repeats": repeats,
            "table_repeats": table_repeats,
            "table_slow_threshold_s": slow_s,
            "statistic": "median over repeats of one training's wall time",
            "timer": "time.perf_counter; gc.collect() before and cyclic GC off during each sample",
            "order": "platform and plain alternate first between repeats",
            "warmup": "one untimed train_model per headline plugin; libraries imported before the table",
            "assembly_cache_cold_s": cold_assembly_s,
            "assembly_cache_warm_s": warm_assembly_s,
            "target_ratio_platform_to_plain": TARGET_RATIO,
        },
        "load_wait": load,
        "loadavg_1_5_15_process_start": LOADAVG_AT_START,
        "headline": headline,
        "per_plugin": per_plugin,
    }


# -- reporting ------------------------------------------------------------------------------


SEGMENT_LABELS = {
    "definition": "definition load + checks",
    "assembly": "assembly (warm feature cache)",
    "make_folds": "cv.make_folds",
    "cv": "cross-validation (5 folds)",
    "cv_fits": "  of which: fits",
    "cv_predicts": "  of which: predicts",
    "cv_metrics": "  of which: fold_metrics + baseline",
    "cv_rest": "  of which: rest (slicing, fold_spans, summarize)",
    "final_fit": "final fit",
    "serialize_store": "serialize + sha256 + store",
    "serialize": "  of which: to_bytes",
    "store_put": "  of which: objects.put",
    "mlflow": "MLflow",
    "params_lineage_build": "  of which: lineage + params built",
    "log_training": "  of which: tracker.log_training",
    "row_update": "model-row update",
    "total": "total (instrumented run)",
}


def report(result: dict[str, Any]) -> str:
    cfg = result["config"]
    out = [
        f"{NAME}: {SYMBOL} {START}..{END}, {cfg['n_rows']} rows x {cfg['n_feature_columns']} columns "
        f"({cfg['n_feature_definitions']} feature definitions); CV {cfg['cv']['method']}, "
        f"{cfg['cv']['n_splits']} splits, test_size {cfg['cv']['test_size']}; folds train/test rows "
        f"{cfg['folds_train_test_rows']}; median of {cfg['repeats']} repeats; load wait: {result['load_wait']}",
        "",
    ]
    rows = []
    for key, r in result["headline"].items():
        rows.append([key, r["median_s"]["platform"], r["median_s"]["plain"], r["ratio_platform_to_plain"],
                     r["ratio_paired_median"], r["ratio_best_of"], r["overhead_s"] * 1e3,
                     f"<= {TARGET_RATIO}", "yes" if r["meets_target"] else "NO"])
    out.append(table(rows, ["plugin", "platform s", "plain s", "ratio", "paired", "best-of", "overhead ms",
                            "target", "met"]))
    out.append("")
    keys = list(result["headline"])
    seg_rows = []
    for seg in ("definition", "assembly", "make_folds", "cv", "cv_fits", "cv_predicts", "cv_metrics", "cv_rest",
                "final_fit", "serialize_store", "serialize", "store_put", "mlflow", "params_lineage_build",
                "log_training", "row_update", "total"):
        row: list[Any] = [SEGMENT_LABELS[seg]]
        for key in keys:
            b = result["headline"][key]["breakdown_median_s"]
            row += [b[seg] * 1e3, f"{100 * b[seg] / b['total']:.1f}%"]
        seg_rows.append(row)
    for label, field in (("plain: fold fits", "cv_fit_s"), ("plain: predict + mse", "cv_predict_mse_s"),
                         ("plain: final fit", "final_fit_s")):
        row = [label]
        for key in keys:
            v = result["headline"][key]["plain_parts_median_s"][field]
            row += [v * 1e3, ""]
        seg_rows.append(row)
    header = ["platform breakdown (median ms)"]
    for key in keys:
        header += [f"{key} ms", "share"]
    out.append(table(seg_rows, header))
    out.append("")
    prow = []
    for key, r in result["per_plugin"].items():
        if "error" in r:
            prow.append([key, r["family"], 0, "-", "-", "-", "-", "-", r["error"][:60]])
            continue
        prow.append([key, r["family"], r["n_timed"], r["median_s"], r["min_s"], r["first_run_s"],
                     r["artifact_bytes"], r["artifact_ext"],
                     "1 run only (slow)" if r["first_run_is_the_figure"] else "first run excluded"])
    out.append(f"train time through train_model (default params, {cfg['n_rows']} rows x {cfg['n_feature_columns']} "
               f"columns, default CV):")
    out.append(table(prow, ["plugin", "family", "runs", "median s", "min s", "first s", "artifact bytes", "ext",
                            "note"]))
    verdict = ", ".join(
        f"{k} {r['ratio_platform_to_plain']:.3f} ({'MET' if r['meets_target'] else 'NOT MET'})"
        for k, r in result["headline"].items()
    )
    out.append(f"\ntarget platform/plain <= {TARGET_RATIO}: {verdict}")
    return "\n".join(out)


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for key, r in result["headline"].items():
        rows.append([NAME, f"platform/plain, {key}", f"{r['ratio_platform_to_plain']:.3f}", f"<= {TARGET_RATIO}",
                     r["meets_target"]])
        rows.append([NAME, f"train_model median, {key}", f"{r['median_s']['platform']:.2f} s", "-", None])
    slowest = max(((k, r) for k, r in result["per_plugin"].items() if "median_s" in r),
                  key=lambda kv: kv[1]["median_s"], default=None)
    if slowest:
        rows.append([NAME, f"slowest plugin: {slowest[0]}", f"{slowest[1]['median_s']:.1f} s", "-", None])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="2 repeats, 1 table repeat, only the two headline plugins in the table, no load wait")
    parser.add_argument("--repeats", type=int, help="timed repeats for the headline plugins (default 7)")
    parser.add_argument("--table-repeats", type=int, help="timed runs per plugin after its first (default 3)")
    parser.add_argument("--slow-s", type=float, default=20.0,
                        help="a plugin whose first run takes longer is timed once (default 20 s)")
    parser.add_argument("--plugins", nargs="+", help="plugins in the train-time table (default: all registered)")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for the load average to drop")
    parser.add_argument("--max-wait", type=float, default=900.0,
                        help=f"longest wait (s) for the 1-minute load average < {LOAD_THRESHOLD} (default 900)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 7)
    table_repeats = args.table_repeats or (1 if args.quick else 3)
    plugins = args.plugins or (list(HEADLINE) if args.quick else None)
    print(f"[{NAME}] machine: {machine_line(machine_info())}", flush=True)
    result = run(repeats=repeats, table_repeats=table_repeats, slow_s=args.slow_s, plugins=plugins,
                 wait=not (args.no_wait or args.quick), max_wait_s=args.max_wait)
    path = write_results(NAME, result, quick=args.quick)
    print(report(result))
    print(f"[{NAME}] results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
