"""Generate latency over HTTP against the real server.

Starts ``alphaforge serve --port <free port>`` as a subprocess on a fresh temporary data
directory (``ALPHAFORGE_DATA_DIR``; the server loads the bundled GSPC/IXIC sample on
start), waits until ``GET /health`` answers, then with one ``httpx.Client`` (keep-alive):

* ``GET /health`` and ``GET /health/ready``: the HTTP floor (async route; sync route with
  one database round trip, like generate's threadpool hop);
* creates ~30 feature definitions (RSI, MACD, ATR, BBANDS, SMA, EMA with different
  periods; returns, z-score, realized volatility);
* for each definition and each range (GSPC 1999-01-01..2019-01-01, then 2018-01-01..
  2019-01-01): one ``POST /generate`` that computes (cold, checked ``cached: false``), then
  20 identical ones (hits, checked ``cached: true``).

Repeated over 3 independent server runs (fresh data directory each); reported: p50/p95 of
the pooled samples per range for cold and hit (and each run's p50), per plugin too. ``--profile`` adds an
in-process cProfile of the hit and cold paths (no HTTP) on an embedded context.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    RESULTS_DIR,
    Server,
    api_headers,
    machine_info,
    machine_line,
    start_calibration,
    summarize_ms,
    table,
    write_results,
)

NAME = "generate_latency"
TARGET_HIT_P50_MS = 20.0
SYMBOL = "GSPC"
RANGES = {
    "1999-2018 (20y)": ("1999-01-01", "2019-01-01"),
    "2018 (1y)": ("2018-01-01", "2019-01-01"),
}

#: (plugin_key, parameters): 30 definitions.
DEFINITIONS: list[tuple[str, dict[str, Any]]] = [
    *[("technical.rsi", {"period": p}) for p in (7, 14, 21, 28, 50)],
    ("technical.macd", {"fast_period": 12, "slow_period": 26, "signal_period": 9}),
    ("technical.macd", {"fast_period": 5, "slow_period": 35, "signal_period": 5}),
    ("technical.macd", {"fast_period": 8, "slow_period": 17, "signal_period": 9}),
    *[("technical.atr", {"period": p}) for p in (7, 14, 21)],
    *[("technical.bbands", {"period": p}) for p in (10, 20, 50)],
    *[("technical.sma", {"period": p}) for p in (10, 20, 50, 100, 200)],
    *[("technical.ema", {"period": p}) for p in (20, 50)],
    *[("statistical.returns", {"period": p}) for p in (1, 5, 21)],
    *[("statistical.z_score", {"window": w}) for w in (20, 60, 120)],
    *[("statistical.realized_volatility", {"window": w}) for w in (10, 21, 63)],
]


def _timed(client: httpx.Client, method: str, url: str, **kwargs: Any) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    response = client.request(method, url, **kwargs)
    return time.perf_counter() - t0, response


def _check(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 400:
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    return response.json()


def run_once(definitions: list[tuple[str, dict[str, Any]]], hits: int, health_n: int) -> dict[str, Any]:
    """One server, fresh data directory: raw samples in seconds."""
    data_dir = Path(tempfile.mkdtemp(prefix="alphaforge-bench-"))
    raw: dict[str, Any] = {"ranges": {}}
    try:
        with Server(data_dir) as server, httpx.Client(
            base_url=server.base_url, timeout=120.0, trust_env=False, headers=api_headers()
        ) as client:
            print(f"[{NAME}] server on {server.base_url} answered after {server.startup_s:.1f} s", flush=True)
            raw["startup_s"] = server.startup_s
            for _ in range(20):  # warm the connection and the routes
                client.get("/health")
                client.get("/health/ready")
            raw["health"] = [_timed(client, "GET", "/health")[0] for _ in range(health_n)]
            raw["health_ready"] = [_timed(client, "GET", "/health/ready")[0] for _ in range(health_n)]

            created, raw["create"] = [], []
            for i, (key, params) in enumerate(definitions):
                body = {"name": f"bench {i} {key}", "type": key.split(".", 1)[0], "plugin_key": key, "parameters": params}
                dt, response = _timed(client, "POST", "/api/v1/features", json=body)
                raw["create"].append(dt)
                created.append((_check(response, f"create {key}")["id"], key, params))

            for label, (start, end) in RANGES.items():
                body = {"symbol": SYMBOL, "start_date": start, "end_date": end}
                r: dict[str, Any] = {"cold": [], "hit": [], "rows": [], "bytes": [],
                                     "by_plugin": defaultdict(lambda: {"cold": [], "hit": []})}
                for fid, key, params in created:
                    url = f"/api/v1/features/{fid}/generate"
                    dt, response = _timed(client, "POST", url, json=body)
                    payload = _check(response, f"generate {key} {params}")
                    if payload["cached"]:
                        raise RuntimeError(f"first generate of {key} {params} for {label} was a hit")
                    r["cold"].append(dt)
                    r["by_plugin"][key]["cold"].append(dt)
                    r["rows"].append(payload["dataset"]["row_count"])
                    for _ in range(hits):
                        dt, response = _timed(client, "POST", url, json=body)
                        payload = _check(response, f"generate {key} {params} (hit)")
                        if not payload["cached"]:
                            raise RuntimeError(f"repeat generate of {key} {params} for {label} computed again")
                        r["hit"].append(dt)
                        r["by_plugin"][key]["hit"].append(dt)
                    r["bytes"].append(len(response.content))
                raw["ranges"][label] = r
                c, h = summarize_ms(r["cold"]), summarize_ms(r["hit"])
                print(
                    f"[{NAME}] {label}: cold p50 {c['p50_ms']:.1f} p95 {c['p95_ms']:.1f} ms (n={c['n']}); "
                    f"hit p50 {h['p50_ms']:.1f} p95 {h['p95_ms']:.1f} ms (n={h['n']})",
                    flush=True,
                )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return raw


def run(hits: int = 20, n_definitions: int | None = None, health_n: int = 200, runs: int = 3) -> dict[str, Any]:
    """``runs`` independent server runs; percentiles over the samples of all runs pooled, and
    each run's p50 to show the spread between runs."""
    definitions = DEFINITIONS[:n_definitions] if n_definitions else DEFINITIONS
    raws = []
    for i in range(runs):
        print(f"[{NAME}] run {i + 1}/{runs}", flush=True)
        raws.append(run_once(definitions, hits, health_n))

    def pooled(get: Any) -> dict[str, Any]:
        per_run = [get(raw) for raw in raws]
        out = summarize_ms([x for samples in per_run for x in samples])
        out["p50_ms_per_run"] = [summarize_ms(samples)["p50_ms"] for samples in per_run]
        out["p95_ms_per_run"] = [summarize_ms(samples)["p95_ms"] for samples in per_run]
        return out

    per_range: dict[str, Any] = {}
    for label, (start, end) in RANGES.items():
        first = raws[0]["ranges"][label]
        hit = pooled(lambda raw, lab=label: raw["ranges"][lab]["hit"])
        per_range[label] = {
            "start": start,
            "end": end,
            "row_count_min": min(first["rows"]),
            "row_count_max": max(first["rows"]),
            "hit_response_bytes_median": sorted(first["bytes"])[len(first["bytes"]) // 2],
            "cold": pooled(lambda raw, lab=label: raw["ranges"][lab]["cold"]),
            "hit": hit,
            "by_plugin": {
                k: {phase: pooled(lambda raw, lab=label, k=k, ph=phase: raw["ranges"][lab]["by_plugin"][k][ph])
                    for phase in ("cold", "hit")}
                for k in first["by_plugin"]
            },
            "hit_meets_target": hit["p50_ms"] <= TARGET_HIT_P50_MS,
        }

    return {
        "config": {
            "server": "alphaforge serve (uvicorn, 1 process, default logging incl. access log), subprocess",
            "storage": "embedded: SQLite + file object store in a fresh temp dir per run",
            "client": "httpx.Client, one keep-alive connection, sequential requests",
            "symbol": SYMBOL,
            "runs": runs,
            "statistic": "percentiles over the samples of all runs pooled; *_per_run lists each run's own",
            "n_definitions": len(definitions),
            "definitions": [{"plugin_key": k, "parameters": p} for k, p in definitions],
            "hits_per_definition": hits,
            "health_requests_per_run": health_n,
            "timer": "time.perf_counter around client.request (client-side wall time)",
            "target_hit_p50_ms": TARGET_HIT_P50_MS,
        },
        "server_startup_s_per_run": [raw["startup_s"] for raw in raws],
        "health": pooled(lambda raw: raw["health"]),
        "health_ready": pooled(lambda raw: raw["health_ready"]),
        "create_feature": pooled(lambda raw: raw["create"]),
        "ranges": per_range,
    }


# -- in-process profile (no HTTP) ---------------------------------------------------------------

#: Plugins the stage breakdown looks at: single output + recursive, three outputs + recursive,
#: single output + short warm-up.
PROFILED = [
    ("technical.rsi", {"period": 14}),
    ("technical.macd", {"fast_period": 12, "slow_period": 26, "signal_period": 9}),
    ("statistical.returns", {"period": 1}),
]


def _median_ms(fn: Any, n: int) -> float:
    fn()  # warm
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def stage_breakdown(ctx: Any, feature_id: Any, request: Any, n: int = 200) -> dict[str, float]:
    """Median ms of each step ``generate_dataset`` takes, called one by one with the
    product's own functions (mirrors services/generation.py; update it if that changes)."""
    import uuid as _uuid

    import pandas as pd
    import pyarrow as pa

    from alphaforge.marketdata.bars import fingerprint
    from alphaforge.marketdata.times import to_utc
    from alphaforge.plugins.features import Bars, FeatureInputs
    from alphaforge.features import generation as g
    from alphaforge.hashing import content_hash
    from alphaforge.storage.parquet import from_parquet_bytes, to_parquet_bytes
    from alphaforge.storage.tables import FeatureDataset

    hit = g.generate_dataset(ctx, feature_id, request)
    row = hit.dataset
    definition = g._load_definition(ctx, feature_id)
    plugin = definition.plugin
    start, end = to_utc(request.start_date), to_utc(request.end_date)
    warmup = g.FULL_HISTORY if plugin.recursive else plugin.lookback
    bars = ctx.bars.get_bars(row.symbol, request.timeframe, start, end, warmup=warmup)
    in_range = int((bars.index >= pd.Timestamp(start)).sum())
    blob = ctx.objects.get(ctx.objects.key_of(row.storage_uri))
    stored = from_parquet_bytes(blob)
    frame = g.compute_frame(plugin, bars, in_range)
    bars_np = Bars.from_frame(bars)
    out: dict[str, float] = {"bars_in": len(bars), "rows_out": len(frame), "columns_out": len(frame.columns)}

    # Hit path, in order.
    out["hit: _load_definition (DB, plugin + params validation)"] = _median_ms(lambda: g._load_definition(ctx, feature_id), n)
    out["hit: get_bars (DB catalog read + slice)"] = _median_ms(
        lambda: ctx.bars.get_bars(row.symbol, request.timeframe, start, end, warmup=warmup), n)
    out["hit: rows in range (index compare)"] = _median_ms(lambda: int((bars.index >= pd.Timestamp(start)).sum()), n)
    out["hit: fingerprint(bars)"] = _median_ms(lambda: fingerprint(bars), n)
    out["hit: lineage + content_hash"] = _median_ms(
        lambda: content_hash({**row.lineage, "libraries": plugin.library_versions(),
                              "parameters": plugin.resolved_parameters()}), n)
    out["hit: _find (DB)"] = _median_ms(lambda: g._find(ctx, feature_id, row.version_hash), n)
    out["hit: objects.get (whole dataset bytes)"] = _median_ms(lambda: ctx.objects.get(ctx.objects.key_of(row.storage_uri)), n)
    out["hit: from_parquet_bytes (whole dataset)"] = _median_ms(lambda: from_parquet_bytes(blob), n)
    out["hit: preview_records (10 rows)"] = _median_ms(lambda: g.preview_records(stored), n)
    out["hit: sum of the steps above"] = sum(v for k, v in out.items() if k.startswith("hit: "))
    out["hit: TOTAL generate_dataset"] = _median_ms(lambda: g.generate_dataset(ctx, feature_id, request), n)

    # Cold-only steps.
    out["cold: plugin.compute only"] = _median_ms(lambda: plugin.compute(FeatureInputs(bars=bars_np)), n)
    out["cold: compute_frame (from_frame + compute + DataFrame)"] = _median_ms(
        lambda: g.compute_frame(plugin, bars, in_range), n)
    out["cold: to_parquet_bytes"] = _median_ms(lambda: to_parquet_bytes(frame), n)
    out["cold:   of which pa.Table.from_pandas (default nthreads)"] = _median_ms(
        lambda: pa.Table.from_pandas(frame, preserve_index=True), n)
    out["cold:   [diagnostic] pa.Table.from_pandas(nthreads=1)"] = _median_ms(
        lambda: pa.Table.from_pandas(frame, preserve_index=True, nthreads=1), n)
    key = f"bench-stage/{_uuid.uuid4().hex}.parquet"
    new_blob = to_parquet_bytes(frame)
    out["cold: objects.put (write tmp + rename)"] = _median_ms(lambda: ctx.objects.put(key, new_blob), n)

    def insert() -> None:
        g._insert_or_get(ctx, FeatureDataset(
            feature_id=feature_id, symbol=row.symbol, timeframe=row.timeframe, start_date=start, end_date=end,
            version_hash=_uuid.uuid4().hex, storage_uri=row.storage_uri, row_count=len(frame),
            columns=list(frame.columns), source_fingerprint=row.source_fingerprint, lineage=row.lineage))

    out["cold: _insert_or_get (DB insert + commit)"] = _median_ms(insert, n)
    out["cold: _set_storage_uri_once (DB update)"] = _median_ms(
        lambda: g._set_storage_uri_once(ctx, feature_id, ctx.objects.uri(definition.storage_prefix)), n)
    out["cold: preview_records (10 rows)"] = _median_ms(lambda: g.preview_records(frame), n)
    out["cold: TOTAL generate_dataset(force=True) (no insert)"] = _median_ms(
        lambda: g.generate_dataset(ctx, feature_id, request, force=True), n)
    return out


def profile_in_process(n: int = 200, top: int = 30) -> dict[str, Any]:
    """Stage breakdown and cProfile of the hit and cold paths of ``generate_dataset`` on an
    embedded context (same GSPC sample, no HTTP)."""
    import datetime as dt

    from alphaforge.bootstrap import start_context
    from alphaforge.schemas.features import FeatureCreate, FeatureGenerateRequest
    from alphaforge.features.definitions import create_feature
    from alphaforge.features.generation import generate_dataset
    from alphaforge.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="alphaforge-bench-prof-"))
    out: dict[str, Any] = {"stage_runs": n}
    try:
        ctx = start_context(Settings(data_dir=tmp))
        start, end = RANGES["1999-2018 (20y)"]
        request = FeatureGenerateRequest(symbol=SYMBOL, start_date=dt.datetime.fromisoformat(start),
                                         end_date=dt.datetime.fromisoformat(end))

        def make(k: str, p: dict[str, Any]) -> Any:
            return create_feature(ctx, FeatureCreate(name=k, type=k.split(".")[0], plugin_key=k, parameters=p))

        out["stages"] = {f"{k} {p}": stage_breakdown(ctx, make(k, p).id, request, n) for k, p in PROFILED}

        features = [make(k, p) for k, p in DEFINITIONS]
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for f in features:
            generate_dataset(ctx, f.id, request)
        prof.disable()
        out["cold"] = _stats(prof, top, len(features), time.perf_counter() - t0)
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for i in range(n):
            generate_dataset(ctx, features[i % len(features)].id, request)
        prof.disable()
        out["hit"] = _stats(prof, top, n, time.perf_counter() - t0)
        prof.dump_stats(str(RESULTS_DIR / f"{NAME}_hit.prof"))
        ctx.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _stats(prof: cProfile.Profile, top: int, calls: int, wall_s: float) -> dict[str, Any]:
    buffer = io.StringIO()
    stats = pstats.Stats(prof, stream=buffer)
    stats.sort_stats("cumulative").print_stats(top)
    return {"calls": calls, "wall_ms_per_call_profiled": wall_s * 1e3 / calls, "cumulative_top": buffer.getvalue()}


def report(result: dict[str, Any]) -> str:
    cfg = result["config"]
    def spread(x: dict[str, Any]) -> str:
        return " / ".join(f"{v:.1f}" for v in x["p50_ms_per_run"])

    rows = [
        ["GET /health", "-", result["health"]["n"], result["health"]["p50_ms"], result["health"]["p95_ms"],
         spread(result["health"])],
        ["GET /health/ready", "-", result["health_ready"]["n"], result["health_ready"]["p50_ms"],
         result["health_ready"]["p95_ms"], spread(result["health_ready"])],
        ["POST /features", "-", result["create_feature"]["n"], result["create_feature"]["p50_ms"],
         result["create_feature"]["p95_ms"], spread(result["create_feature"])],
    ]
    for label, r in result["ranges"].items():
        rows.append(["generate cold", label, r["cold"]["n"], r["cold"]["p50_ms"], r["cold"]["p95_ms"], spread(r["cold"])])
        rows.append(["generate hit", label, r["hit"]["n"], r["hit"]["p50_ms"], r["hit"]["p95_ms"], spread(r["hit"])])
    starts = ", ".join(f"{x:.1f}" for x in result["server_startup_s_per_run"])
    out = [
        f"generate_latency: {cfg['n_definitions']} definitions on {cfg['symbol']}, 1 cold + "
        f"{cfg['hits_per_definition']} hits each per range, {cfg['runs']} server runs (samples pooled); "
        f"server start {starts} s",
        table(rows, ["request", "range", "n", "p50 ms", "p95 ms", "p50 per run"]),
        "",
        "per plugin (p50 ms, cold / hit):",
    ]
    fam_rows = []
    labels = list(result["ranges"])
    for key in result["ranges"][labels[0]]["by_plugin"]:
        row: list[Any] = [key]
        for label in labels:
            bp = result["ranges"][label]["by_plugin"][key]
            row += [bp["cold"]["p50_ms"], bp["hit"]["p50_ms"]]
        fam_rows.append(row)
    out.append(table(fam_rows, ["plugin", *[f"{x} {lab}" for lab in labels for x in ("cold", "hit")]]))
    for label, r in result["ranges"].items():
        out.append(
            f"target hit p50 <= {TARGET_HIT_P50_MS:.0f} ms, {label}: {'MET' if r['hit_meets_target'] else 'NOT MET'} "
            f"({r['hit']['p50_ms']:.1f} ms)"
        )
    return "\n".join(out)


def profile_report(prof: dict[str, Any]) -> str:
    stages = prof["stages"]
    labels = list(stages)
    names = [k for k in stages[labels[0]] if k not in ("bars_in", "rows_out", "columns_out")]
    rows = [[name, *[stages[lab][name] for lab in labels]] for name in names]
    shape = ", ".join(f"{lab.split()[0]}: {stages[lab]['bars_in']} bars in, {stages[lab]['rows_out']} rows x "
                      f"{stages[lab]['columns_out']} cols out" for lab in labels)
    return (
        f"\n--- in-process stage breakdown of generate_dataset, GSPC 20y, median of {prof['stage_runs']} ms ---\n"
        f"({shape})\n" + table(rows, ["step", *[lab.split()[0] for lab in labels]])
    )


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    n = result["config"]["runs"]
    rows: list[list[Any]] = [[NAME, f"GET /health p50 ({n} run(s) pooled)", f"{result['health']['p50_ms']:.2f} ms", "-", None]]
    for label, r in result["ranges"].items():
        rows.append([NAME, f"cold p50/p95 {label}", f"{r['cold']['p50_ms']:.1f} / {r['cold']['p95_ms']:.1f} ms", "-", None])
        rows.append([NAME, f"hit p50/p95 {label}", f"{r['hit']['p50_ms']:.1f} / {r['hit']['p95_ms']:.1f} ms",
                     f"p50 <= {TARGET_HIT_P50_MS:.0f} ms", r["hit_meets_target"]])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generate_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 definitions, 5 hits each, 50 health requests")
    parser.add_argument("--hits", type=int, help="hits per definition and range (default 20)")
    parser.add_argument("--runs", type=int, help="independent server runs, samples pooled (default 3)")
    parser.add_argument("--profile", action="store_true",
                        help="also time each step of generate_dataset and cProfile it, in-process")
    args = parser.parse_args(argv)
    hits = args.hits or (5 if args.quick else 20)
    print(f"[{NAME}] machine: {machine_line(machine_info())}", flush=True)
    cal = start_calibration()
    print(f"[{NAME}] calibration: pure-Python 1M-iteration loop {cal['python_loop_1m_ms']:.1f} ms, "
          f"numpy sort of 1M floats {cal['numpy_sort_1m_ms']:.1f} ms", flush=True)
    runs = args.runs or (1 if args.quick else 3)
    result = run(hits=hits, n_definitions=10 if args.quick else None, health_n=50 if args.quick else 200, runs=runs)
    if args.profile:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        result["profile_in_process"] = profile_in_process()
    path = write_results(NAME, result, quick=args.quick)
    print(report(result))
    if args.profile:
        print(profile_report(result["profile_in_process"]))
        for phase in ("hit", "cold"):
            p = result["profile_in_process"][phase]
            print(f"\n--- in-process cProfile, {phase} path ({p['calls']} calls, "
                  f"{p['wall_ms_per_call_profiled']:.1f} ms/call under the profiler) ---")
            print(p["cumulative_top"])
    print(f"[{NAME}] results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
