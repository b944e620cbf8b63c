"""Pooled training overhead: ``train_model`` on a panel vs a plain lightgbm loop on the same folds.

Data: the bundled SP20 closes (skfolio's 20 US stocks), 2005-01-01 to 2022-12-29, embedded
default storage in a fresh temp data dir, 6 close-only feature definitions (RSI 14, ROC 10,
ROC 20, returns 1, realized volatility 20, z-score 20), target: 5-bar forward return,
CV: the request default (rolling, 5 splits, test_size 0.15) split by date.

The panel caches are warmed first (one ``assemble_panel_training_data``) and one untimed
training runs (imports, MLflow store). Then each repeat times, order alternating:

  platform  ``trainer.train_model`` with ``dataset.universe = "SP20"``: definition and
            membership checks, assembly from the warm panels (targets per symbol), folds by
            date, per fold fit / predict / pooled + per-date cross-sectional metrics, final
            fit, artifact stored, MLflow run, model row
  plain     the same X, y (assembled once, outside the timing) and the same folds
            (``trainer.panel_folds_for``), ``lightgbm.LGBMRegressor`` with the plugin's exact
            parameters, fit / predict / mse per fold, then the final fit

ratio = median(platform) / median(plain); target <= 1.15 (issue 13). The per-fold mse of
both sides is checked equal, so both do the same fitting work.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import machine_info, machine_line, table, time_once, wait_for_quiet, write_results
from bench.train_overhead import plain_factory, plain_loop

NAME = "pooled_overhead"
TARGET_RATIO = 1.15
KEY = "ml.lightgbm"
START, END, HORIZON, SEED = "2005-01-01", "2022-12-29", 5, 0
FEATURES: list[tuple[str, dict[str, Any]]] = [
    ("technical.rsi", {"period": 14}),
    ("technical.roc", {"period": 10}),
    ("technical.roc", {"period": 20}),
    ("statistical.returns", {"period": 1}),
    ("statistical.realized_volatility", {"window": 20}),
    ("statistical.z_score", {"window": 20}),
]


def run(repeats: int, wait: bool) -> dict[str, Any]:
    from alphaforge.bootstrap import start_context
    from alphaforge.features.definitions import create_feature
    from alphaforge.schemas.features import FeatureCreate
    from alphaforge.schemas.models import DatasetSpec, ModelCreate, TrainRequest
    from alphaforge.settings import Settings
    from alphaforge.training import trainer
    from alphaforge.training.definitions import create_model
    from alphaforge.training.pooled import assemble_panel_training_data

    tmp = Path(tempfile.mkdtemp(prefix="alphaforge-bench-pooled-"))
    try:
        ctx = start_context(Settings(data_dir=tmp))
        feature_ids = [
            create_feature(ctx, FeatureCreate(name=f"bench {k} {p}", type=k.split(".")[0], plugin_key=k, parameters=p)).id
            for k, p in FEATURES
        ]
        request = TrainRequest(
            dataset=DatasetSpec(feature_ids=feature_ids, universe="SP20", start_date=START, end_date=END,
                                target_horizon=HORIZON),
            seed=SEED,
        )
        cold_s = time_once(lambda: assemble_panel_training_data(ctx, request.dataset))
        data = assemble_panel_training_data(ctx, request.dataset)
        warm_s = time_once(lambda: assemble_panel_training_data(ctx, request.dataset))
        folds = trainer.panel_folds_for(request.cv, data)
        model_id = create_model(ctx, ModelCreate(name="bench pooled", model_type=KEY, family="machine_learning")).id
        print(f"[{NAME}] panel: {data.X.shape[0]} rows x {data.X.shape[1]} columns, {len(set(data.symbols))} symbols; "
              f"assembly cold {cold_s:.2f} s, warm {warm_s:.2f} s; folds (train/test rows): "
              + ", ".join(f"{len(f.train)}/{len(f.test)}" for f in folds), flush=True)

        result = trainer.train_model(ctx, model_id, request)  # warm-up: imports, MLflow store
        definition = trainer.check_train_request(ctx, model_id, request)
        make = plain_factory(KEY, definition.plugin.params.model_dump(), SEED)
        check: dict[str, Any] = {}
        plain_loop(make, data.X, data.y, folds, check)
        platform_mse = [f["mse"] for f in result.cv_metrics["folds"]]
        worst = max(abs(a - b) / abs(b) for a, b in zip(check["fold_mse"], platform_mse))
        if len(platform_mse) != len(check["fold_mse"]) or worst > 1e-9:
            raise AssertionError(f"plain-loop fold mse {check['fold_mse']} != platform {platform_mse}")

        quiet = wait_for_quiet(NAME, 0.7, 600.0) if wait else {}
        samples: dict[str, list[float]] = {"platform": [], "plain": []}
        for i in range(repeats):
            order = ("platform", "plain") if i % 2 == 0 else ("plain", "platform")
            for side in order:
                if side == "platform":
                    samples[side].append(time_once(lambda: trainer.train_model(ctx, model_id, request)))
                else:
                    samples[side].append(time_once(lambda: plain_loop(make, data.X, data.y, folds, {})))
        median = {k: statistics.median(v) for k, v in samples.items()}
        ratio = median["platform"] / median["plain"]
        return {
            "machine": machine_info(), "rows": int(data.X.shape[0]), "columns": int(data.X.shape[1]),
            "assembly_s": {"cold": cold_s, "warm": warm_s}, "samples_s": samples, "median_s": median,
            "ratio_platform_to_plain": ratio, "target": TARGET_RATIO, "meets_target": ratio <= TARGET_RATIO,
            "fold_mse_max_rel_diff": worst, "quiet": quiet, "cs_rank_icir": result.cv_metrics["summary"].get("cs_rank_icir"),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    return [
        [NAME, f"platform/plain, pooled {KEY}", f"{result['ratio_platform_to_plain']:.3f}", f"<= {TARGET_RATIO}",
         result["meets_target"]],
        [NAME, "train_model median (SP20 panel)", f"{result['median_s']['platform']:.2f} s", "-", None],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pooled_overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 repeats, no load wait")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 5)")
    args = parser.parse_args(argv)
    print(f"[{NAME}] machine: {machine_line(machine_info())}", flush=True)
    result = run(repeats=args.repeats or (2 if args.quick else 5), wait=not args.quick)
    path = write_results(NAME, result, quick=args.quick)
    print(table(summary_rows(result), ["benchmark", "metric", "value", "target", "met"]))
    print(f"[{NAME}] samples (s): " + "; ".join(f"{k} " + ", ".join(f"{v:.2f}" for v in vs)
                                               for k, vs in result["samples_s"].items()))
    print(f"[{NAME}] results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
