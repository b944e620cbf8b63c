"""Pooled scale (issue 13): 500 SYNTHETIC symbols x 20 years x 50 features (about 2.5 M rows)
assembled and trained (ml.lightgbm) in one process, with the peak memory after each stage.

1. ``start_context(Settings(data_dir=<tmp>, load_sample_data=False))`` (embedded SQLite + file
   object store); ingest N SYNTHETIC symbols x 5,040 daily bars (``ingest_bars``, as
   panel_build); a universe of them (``create_universe``, every member from 1999-01-01 on);
   F distinct feature definitions (close/OHLCV technical and statistical plugins at varied
   periods; every one has a single output column, so columns = F);
2. cold assembly: ``assemble_panel_training_data`` in this process (every (symbol, feature)
   piece generated, each feature's panel assembled, the columns joined, targets per symbol);
3. warm assembly: the same call again (every panel a cache hit);
4. ``train_model`` with ``DatasetSpec(universe, feature_ids, 1999-01-01..2019-01-01,
   target_horizon=5)``, model ``ml.lightgbm``, the request's default CV (rolling, 5 splits).

After each stage: wall time, and peak RSS = ``ru_maxrss`` of this process (RUSAGE_SELF) and
of its reaped children (RUSAGE_CHILDREN), both high-water marks. ``--profile`` adds a cProfile
of one more warm assembly (where its time goes at this size).

    python -m bench.pooled_scale                 # 500 symbols x 50 features
    python -m bench.pooled_scale --symbols 50    # to extrapolate from
    python -m bench.pooled_scale --quick         # 20 symbols x 10 features

Measured 2026-12-02, 2 shared cores (load ~2), 500 x 50: 2,392,500 rows x 50 columns; cold
assembly 423 s, warm 113 s, train_model 345 s (it assembles again, warm, inside), peak RSS
4.9 GiB (self; children 0.1 GiB). At 50 symbols: cold 37 s, warm 7.4 s, train 35 s, 0.76 GiB.
Where the warm assembly goes (--profile): ``plan_panel`` -> ``plan_dataset`` per (symbol,
feature) piece, 25,000 calls, each reading the symbol's bars again and fingerprinting them
(``bars.fingerprint``) plus two ORM gets: ~95 of 142 s profiled; and ``pooled._targets``, which
is O(symbols x rows) (``symbols == symbol`` over the whole 2.4 M-row level, once per symbol):
16.7 s at 500 symbols vs ~0.3 s at 50.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.common import machine_info, machine_line, synthetic_series, table, write_results

NAME = "pooled_scale"
START = datetime(1999, 1, 1, tzinfo=timezone.utc)
END = datetime(2019, 1, 1, tzinfo=timezone.utc)
HORIZON, SEED = 5, 0
KEY = "ml.lightgbm"

#: 50 distinct single-column definitions (plugin_key, parameters); --quick takes QUICK_PICK of them.
FEATURES: list[tuple[str, dict[str, Any]]] = (
    [("technical.rsi", {"period": p}) for p in (7, 14, 21, 28, 42)]
    + [("technical.roc", {"period": p}) for p in (5, 10, 20, 60, 120, 250)]
    + [("technical.sma", {"period": p}) for p in (10, 20, 50, 100, 150, 200)]
    + [("technical.ema", {"period": p}) for p in (10, 20, 50)]
    + [("technical.atr", {"period": p}) for p in (7, 14, 28)]
    + [("technical.adx", {"period": p}) for p in (14, 28)]
    + [("technical.cci", {"period": p}) for p in (14, 20)]
    + [("technical.mfi", {"period": 14})]
    + [("technical.willr", {"period": p}) for p in (14, 28)]
    + [("technical.obv", {})]
    + [("statistical.returns", {"period": p}) for p in (1, 5, 20)]
    + [("statistical.log_returns", {"period": p}) for p in (1, 10)]
    + [("statistical.realized_volatility", {"window": w}) for w in (10, 20, 60)]
    + [("statistical.z_score", {"window": w}) for w in (10, 20, 60)]
    + [("statistical.mean_reversion", {"window": w}) for w in (10, 50)]
    + [("statistical.momentum", {"window": w}) for w in (60, 120, 250)]
    + [("statistical.skew", {"window": 60})]
    + [("statistical.kurtosis", {"window": 60})]
    + [("statistical.autocorr", {"window": 60})]
)
assert len(FEATURES) == 50 and len({(k, tuple(sorted(p.items()))) for k, p in FEATURES}) == 50
QUICK_PICK = [0, 7, 13, 20, 23, 29, 32, 37, 43, 47]


def _peak_mib() -> dict[str, float]:
    self_ = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self_mib": self_, "children_mib": children, "sum_mib": self_ + children}


def run(n_symbols: int, n_features: int, profile: bool) -> dict[str, Any]:
    from alphaforge.bootstrap import start_context
    from alphaforge.features.definitions import create_feature
    from alphaforge.ingestion.service import ingest_bars
    from alphaforge.marketdata.bars import Timeframe
    from alphaforge.schemas.features import FeatureCreate
    from alphaforge.schemas.models import DatasetSpec, ModelCreate, TrainRequest
    from alphaforge.schemas.universes import UniverseCreate
    from alphaforge.settings import Settings
    from alphaforge.training import trainer
    from alphaforge.training.definitions import create_model
    from alphaforge.training.pooled import assemble_panel_training_data
    from alphaforge.universes.definitions import create_universe

    features = [FEATURES[i] for i in QUICK_PICK[:n_features]] if n_features <= len(QUICK_PICK) else FEATURES[:n_features]
    stages: list[dict[str, Any]] = []

    def stage(name: str, seconds: float, **extra: Any) -> None:
        entry = {"stage": name, "wall_s": seconds, "peak_rss": _peak_mib(), **extra}
        stages.append(entry)
        print(f"[{NAME}] {name}: {seconds:.1f} s; peak RSS self {entry['peak_rss']['self_mib']:.0f} MiB, "
              f"children {entry['peak_rss']['children_mib']:.0f} MiB"
              + "".join(f"; {k} {v}" for k, v in extra.items()), flush=True)

    stage("imports", 0.0)
    tmp = Path(tempfile.mkdtemp(prefix="alphaforge-bench-scale-"))
    result: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        ctx = start_context(Settings(data_dir=tmp, load_sample_data=False))
        stage("context start", time.perf_counter() - t0)

        symbols = []
        ingest_s = 0.0
        for i in range(n_symbols):  # synthetic frames made one at a time (not timed)
            s = synthetic_series(i)
            frame = s.records()
            t0 = time.perf_counter()
            r = ingest_bars(ctx, s.symbol, Timeframe.DAY, frame)
            ingest_s += time.perf_counter() - t0
            assert r.n_bars == len(s.close), (s.symbol, r.n_bars)
            symbols.append(s.symbol)
        n_bars = len(s.close)
        stage("ingest", ingest_s, symbols=n_symbols, bars_per_symbol=n_bars)

        t0 = time.perf_counter()
        universe = create_universe(ctx, UniverseCreate(
            name=f"SCALE{n_symbols}", members=[{"symbol": x, "from": START.isoformat(), "to": None} for x in symbols]))
        feature_ids = [
            create_feature(ctx, FeatureCreate(name=f"scale {k} {p}", type=k.split(".")[0], plugin_key=k, parameters=p)).id
            for k, p in features
        ]
        model_id = create_model(ctx, ModelCreate(name="scale lightgbm", model_type=KEY, family="machine_learning")).id
        stage("definitions", time.perf_counter() - t0, features=len(feature_ids))

        request = TrainRequest(
            dataset=DatasetSpec(universe=universe.name, feature_ids=feature_ids, start_date=START, end_date=END,
                                target_horizon=HORIZON),
            seed=SEED,
        )
        t0 = time.perf_counter()
        data = assemble_panel_training_data(ctx, request.dataset)
        rows, columns = int(data.X.shape[0]), int(data.X.shape[1])
        shape = {"rows": rows, "columns": columns, "dropped_rows": int(data.dropped_rows),
                 "X_mib": round(data.X.nbytes / 2**20, 1)}
        stage("assembly cold (in-process)", time.perf_counter() - t0, **shape)
        del data

        t0 = time.perf_counter()
        data = assemble_panel_training_data(ctx, request.dataset)
        stage("assembly warm", time.perf_counter() - t0, rows=int(data.X.shape[0]), columns=int(data.X.shape[1]))
        del data

        if profile:
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            assemble_panel_training_data(ctx, request.dataset)
            prof.disable()
            wall = time.perf_counter() - t0
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(30)
            buf2 = io.StringIO()
            pstats.Stats(prof, stream=buf2).sort_stats("tottime").print_stats(20)
            result["profile_warm_assembly"] = {"wall_s_profiled": wall, "cumulative_top": buf.getvalue(),
                                               "tottime_top": buf2.getvalue()}
            stage("assembly warm, profiled (extra)", wall)

        t0 = time.perf_counter()
        trained = trainer.train_model(ctx, model_id, request)
        summary = trained.cv_metrics["summary"]
        stage("train_model (lightgbm, default CV)", time.perf_counter() - t0,
              cs_rank_icir=summary.get("cs_rank_icir"), folds=len(trained.cv_metrics["folds"]))
        ctx.close()
        result.update({
            "config": {"n_symbols": n_symbols, "n_features": len(features), "bars_per_symbol": n_bars,
                       "features": [{"plugin_key": k, "parameters": p} for k, p in features],
                       "range": [START.isoformat(), END.isoformat()], "target_horizon": HORIZON, "model": KEY,
                       "cv": request.cv.model_dump(), "seed": SEED,
                       "data": "SYNTHETIC geometric random walk, seeded (bench.common.synthetic_series)",
                       "storage": "embedded: SQLite + file object store in a fresh temp dir"},
            "shape": shape, "stages": stages, "cv_summary": summary,
            "cs_rank_icir": summary.get("cs_rank_icir"),
            "peak_rss_mib": _peak_mib(),
            "machine": machine_info(),
        })
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(result: dict[str, Any]) -> str:
    cfg, shape = result["config"], result["shape"]
    rows = [[s["stage"], s["wall_s"], s["peak_rss"]["self_mib"], s["peak_rss"]["children_mib"]] for s in result["stages"]]
    out = [
        f"{NAME}: {cfg['n_symbols']} SYNTHETIC symbols x {cfg['bars_per_symbol']} bars x {cfg['n_features']} features "
        f"-> {shape['rows']:,} rows x {shape['columns']} columns (X {shape['X_mib']} MiB; {shape['dropped_rows']:,} "
        f"incomplete rows dropped)",
        table(rows, ["stage", "wall s", "peak RSS self MiB", "peak RSS children MiB"]),
        f"cs_rank_icir (CV summary): {result['cs_rank_icir']}",
    ]
    if "profile_warm_assembly" in result:
        p = result["profile_warm_assembly"]
        out += [f"--- cProfile, warm assembly ({p['wall_s_profiled']:.1f} s profiled), cumulative ---",
                p["cumulative_top"], "--- tottime ---", p["tottime_top"]]
    return "\n".join(out)


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    cfg, shape = result["config"], result["shape"]
    by = {s["stage"]: s for s in result["stages"]}
    size = f"{cfg['n_symbols']} sym x {cfg['n_features']} feat, {shape['rows']:,} rows"
    rows = [[NAME, f"{name} ({size})", f"{by[name]['wall_s']:.1f} s", "-", None]
            for name in ("assembly cold (in-process)", "assembly warm", "train_model (lightgbm, default CV)")]
    peak = result["peak_rss_mib"]
    rows.append([NAME, "peak RSS (self + children)", f"{peak['sum_mib']:.0f} MiB", "< 24 GiB", peak["sum_mib"] < 24 * 1024])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pooled_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 symbols x 10 features")
    parser.add_argument("--symbols", type=int, help="synthetic symbols (default 500; --quick 20)")
    parser.add_argument("--features", type=int, help="feature definitions (default 50; --quick 10)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one more warm assembly")
    args = parser.parse_args(argv)
    n_symbols = args.symbols or (20 if args.quick else 500)
    n_features = args.features or (10 if args.quick else 50)
    print(f"[{NAME}] machine: {machine_line(machine_info())}", flush=True)
    result = run(n_symbols, n_features, args.profile)
    full = n_symbols == 500 and n_features == 50
    path = write_results(NAME if full or args.quick else f"{NAME}_{n_symbols}x{n_features}", result, quick=args.quick)
    print(report(result))
    print(table([[b, m, v, t, "-" if ok is None else ("yes" if ok else "NO")] for b, m, v, t, ok in summary_rows(result)],
                ["benchmark", "metric", "value", "target", "met"]))
    print(f"[{NAME}] results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
