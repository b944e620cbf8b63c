"""Upload memory: the API process's RSS while it takes a large CSV of bars.

For each kind of upload (``valid``, ``bad``) and each of ``--repeats`` runs, in a fresh
temporary data directory, the bench starts ``alphaforge serve`` (the embedded default:
SQLite + file object store, the bundled sample data loaded on start) with
``ALPHAFORGE_MAX_UPLOAD_MB`` raised above the upload's size, then:

1. warms the upload route up (a 100-row valid and a 100-row bad CSV for another symbol),
   waits 2 s and reads the server's ``VmRSS`` (the baseline);
2. resets the server's peak RSS (``5`` to ``/proc/<pid>/clear_refs``), then POSTs the big
   CSV as ``multipart/form-data`` (field ``file``, streamed from disk) to
   ``/api/v1/market-data/<new symbol>/bars?timeframe=1h``, while one thread samples
   ``VmRSS`` every 10 ms and another times ``GET /health`` every 50 ms;
3. after the response, waits ``--settle`` s and reads ``VmRSS`` again (retained).

Peak = the kernel's ``VmHWM`` after the upload (the sampled maximum is kept as a check).
Linux only (``/proc``); psutil is not needed.

The CSVs are SYNTHETIC hourly bars (from 1800-01-01T00:00:00Z, ISO 8601 with ``Z``): a
seeded random walk with 4-decimal prices and integer volumes, about 70 bytes a row, cut at
``--mb`` MiB. ``valid`` bars are consistent (low <= open, close <= high); in ``bad`` every
row's high is 1.0 below min(open, close), so every row fails the data-quality gate.

Targets (for the 200 MiB reference size): peak RSS below 1 GiB, and peak minus baseline
below 3x the upload's size. A ``--quick`` 20 MiB run checks the plumbing only: fixed costs
(a 1 MiB read block, the allocator's arenas) dominate there, so no ratio target applies.
Requests send ``bench.common.api_headers()`` (the server gets the same key).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from bench.common import Server, api_headers, machine_info, machine_line, table, write_results

NAME = "upload_memory"
KINDS = ("valid", "bad")
TARGET_PEAK_MIB = 1024.0
TARGET_PEAK_OVER_BASELINE_X = 3.0
#: The ratio target is judged from this upload size up (below it fixed costs dominate).
RATIO_TARGET_FROM_MIB = 100.0
FIRST_HOUR = np.datetime64("1800-01-01T00:00:00", "s")
CHUNK_ROWS = 200_000
MIB = 1024 * 1024


# -- synthetic CSVs ---------------------------------------------------------------------


def _chunk(start_row: int, n: int, last_close: float, rng: np.random.Generator, bad: bool) -> tuple[pa.Table, float]:
    close = np.round(last_close * np.exp(np.cumsum(rng.normal(0.0, 0.004, n))), 4)
    open_ = np.round(np.concatenate(([last_close], close[:-1])) * np.exp(rng.normal(0.0, 0.001, n)), 4)
    body_hi, body_lo = np.maximum(open_, close), np.minimum(open_, close)
    high = np.round(body_hi * np.exp(np.abs(rng.normal(0.0, 0.002, n))), 4)
    low = np.round(body_lo * np.exp(-np.abs(rng.normal(0.0, 0.002, n))), 4)
    high, low = np.maximum(high, body_hi), np.minimum(low, body_lo)
    if bad:
        high = body_lo - 1.0  # open > high (and close > high): every row fails the gate
    stamps = FIRST_HOUR + np.arange(start_row, start_row + n).astype("timedelta64[h]")
    table_ = pa.table({
        "timestamp": pa.array(np.char.add(np.datetime_as_string(stamps, unit="s"), "Z")),
        "open": open_, "high": high, "low": low, "close": close,
        "volume": np.round(rng.lognormal(10.0, 0.5, n)).astype("int64"),
    })
    return table_, float(close[-1])


def write_csv(path: Path, target_bytes: int, bad: bool, seed: int = 20240601) -> int:
    """Write SYNTHETIC hourly bars to ``path`` until it holds about ``target_bytes``; the row count."""
    rng = np.random.default_rng([seed, int(bad)])
    rows, close = 0, 100.0
    options = pacsv.WriteOptions(quoting_style="none")
    with open(path, "wb") as sink:
        writer = None
        while sink.tell() < target_bytes:
            row_bytes = max(sink.tell() / rows, 40.0) if rows else 70.0
            n = int(min(CHUNK_ROWS, max(1, (target_bytes - sink.tell()) / row_bytes)))
            chunk, close = _chunk(rows, n, close, rng, bad)
            if writer is None:
                writer = pacsv.CSVWriter(sink, chunk.schema, write_options=options)
            writer.write_table(chunk)
            rows += n
            sink.flush()
        if writer is not None:
            writer.close()
    return rows


# -- the server's memory ----------------------------------------------------------------


def proc_status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (VmRSS: now, VmHWM: peak)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux >= 4.0); False when refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


class Sampler(threading.Thread):
    """VmRSS every ``interval_s`` until stopped: the maximum and a coarse timeline."""

    def __init__(self, pid: int, interval_s: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.stop = threading.Event()
        self.max_kib = 0
        self.timeline: list[tuple[float, float]] = []  # (s since start, MiB), every 0.5 s

    def run(self) -> None:
        t0 = last = time.perf_counter()
        while not self.stop.is_set():
            rss = proc_status_kib(self.pid, "VmRSS")
            self.max_kib = max(self.max_kib, rss)
            now = time.perf_counter()
            if now - last >= 0.5 or not self.timeline:
                self.timeline.append((round(now - t0, 2), round(rss / 1024, 1)))
                last = now
            time.sleep(self.interval_s)


class HealthProbe(threading.Thread):
    """``GET /health`` every ``interval_s`` until stopped; the latencies in seconds."""

    def __init__(self, base_url: str, interval_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.base_url, self.interval_s = base_url, interval_s
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.failures = 0

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=60.0, trust_env=False, headers=api_headers()) as client:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    ok = client.get("/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - t0)
                self.failures += 0 if ok else 1
                self.stop.wait(self.interval_s)


# -- one run ----------------------------------------------------------------------------


def _post_csv(client: httpx.Client, symbol: str, path: Path) -> httpx.Response:
    with open(path, "rb") as upload:
        return client.post(f"/api/v1/market-data/{symbol}/bars", params={"timeframe": "1h"},
                           files={"file": (path.name, upload, "text/csv")})


def _expect(response: httpx.Response, kind: str, rows: int) -> str | None:
    """None when the answer is what the upload deserves, else what is wrong."""
    if kind == "valid":
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:300]}"
        if response.json()["received"] != rows:
            return f"received {response.json()['received']} of {rows} rows"
        return None
    if response.status_code != 422:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    body = response.json()
    if body.get("n_bad_rows") != rows:
        return f"n_bad_rows {body.get('n_bad_rows')} of {rows} rows"
    return None


def run_once(
    kind: str, csv: Path, rows: int, warmup: dict[str, Path], settle_s: float, max_upload_mb: int
) -> dict[str, Any]:
    size = csv.stat().st_size
    data_dir = Path(tempfile.mkdtemp(prefix="alphaforge-bench-"))
    try:
        with Server(data_dir, env={"ALPHAFORGE_MAX_UPLOAD_MB": str(max_upload_mb)}) as server, httpx.Client(
            base_url=server.base_url, timeout=1800.0, trust_env=False, headers=api_headers()
        ) as client:
            for warm_kind, path in warmup.items():
                problem = _expect(_post_csv(client, "WARMUP", path), warm_kind, 100)
                if problem:
                    raise RuntimeError(f"warm-up {warm_kind} upload: {problem}")
            time.sleep(2.0)
            baseline_kib = proc_status_kib(server.pid, "VmRSS")
            hwm_reset = reset_peak(server.pid)
            sampler, probe = Sampler(server.pid), HealthProbe(server.base_url)
            sampler.start()
            probe.start()
            t0 = time.perf_counter()
            response = _post_csv(client, f"UPL{kind.upper()}", csv)
            wall_s = time.perf_counter() - t0
            probe.stop.set()
            probe.join()
            time.sleep(settle_s)
            retained_kib = proc_status_kib(server.pid, "VmRSS")
            sampler.stop.set()
            sampler.join()
            peak_kib = proc_status_kib(server.pid, "VmHWM") if hwm_reset else sampler.max_kib
            problem = _expect(response, kind, rows)
            if problem:
                raise RuntimeError(f"{kind} upload: {problem}\n{server.log_tail()}")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    health = probe.latencies or [float("nan")]
    baseline, peak, retained = baseline_kib / 1024, peak_kib / 1024, retained_kib / 1024
    return {
        "upload_mib": size / MIB,
        "rows": rows,
        "status": response.status_code,
        "wall_s": wall_s,
        "baseline_rss_mib": baseline,
        "peak_rss_mib": peak,
        "peak_source": "VmHWM" if hwm_reset else "sampled VmRSS",
        "sampled_max_rss_mib": sampler.max_kib / 1024,
        "peak_over_baseline_mib": peak - baseline,
        "peak_over_baseline_x_upload": (peak - baseline) / (size / MIB),
        "retained_rss_mib": retained,
        "retained_over_baseline_mib": retained - baseline,
        "health_n": len(probe.latencies),
        "health_failures": probe.failures,
        "health_p50_ms": float(np.percentile(health, 50)) * 1e3,
        "health_p95_ms": float(np.percentile(health, 95)) * 1e3,
        "health_max_ms": max(health) * 1e3,
        "rss_timeline_s_mib": sampler.timeline,
    }


# -- the benchmark ----------------------------------------------------------------------

MEDIAN_KEYS = ("wall_s", "baseline_rss_mib", "peak_rss_mib", "peak_over_baseline_mib", "peak_over_baseline_x_upload",
               "retained_rss_mib", "retained_over_baseline_mib", "health_p50_ms", "health_p95_ms", "health_max_ms")


def run(mib: float, repeats: int, settle_s: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="alphaforge-bench-csv-"))
    max_upload_mb = int(mib * 1.5) + 10
    try:
        warmup = {"valid": work / "warm_valid.csv", "bad": work / "warm_bad.csv"}
        for kind, path in warmup.items():
            _write_rows(path, 100, kind == "bad")
        result: dict[str, Any] = {"target_peak_mib": TARGET_PEAK_MIB,
                                  "target_peak_over_baseline_x_upload": TARGET_PEAK_OVER_BASELINE_X,
                                  "settle_s": settle_s, "max_upload_mb_setting": max_upload_mb, "kinds": {}}
        for kind in KINDS:
            csv = work / f"{kind}.csv"
            t0 = time.perf_counter()
            rows = write_csv(csv, int(mib * MIB), kind == "bad")
            print(f"[{NAME}] {kind}: {csv.stat().st_size / MIB:.1f} MiB, {rows:,} rows written in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            runs = []
            for i in range(repeats):
                one = run_once(kind, csv, rows, warmup, settle_s, max_upload_mb)
                print(f"[{NAME}] {kind} run {i + 1}/{repeats}: HTTP {one['status']} in {one['wall_s']:.1f} s; RSS "
                      f"baseline {one['baseline_rss_mib']:.0f} MiB, peak {one['peak_rss_mib']:.0f} MiB "
                      f"(+{one['peak_over_baseline_mib']:.0f}, {one['peak_over_baseline_x_upload']:.2f}x upload), "
                      f"retained {one['retained_rss_mib']:.0f} MiB; /health p50 {one['health_p50_ms']:.1f} "
                      f"p95 {one['health_p95_ms']:.1f} max {one['health_max_ms']:.0f} ms", flush=True)
                runs.append(one)
            median = {k: statistics.median(r[k] for r in runs) for k in MEDIAN_KEYS}
            median["met_peak"] = median["peak_rss_mib"] < TARGET_PEAK_MIB
            median["met_ratio"] = (median["peak_over_baseline_x_upload"] < TARGET_PEAK_OVER_BASELINE_X
                                   if mib >= RATIO_TARGET_FROM_MIB else None)
            result["kinds"][kind] = {"upload_mib": runs[0]["upload_mib"], "rows": rows, "median": median, "runs": runs}
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_rows(path: Path, n: int, bad: bool) -> None:
    chunk, _ = _chunk(0, n, 100.0, np.random.default_rng(1), bad)
    pacsv.write_csv(chunk, path, write_options=pacsv.WriteOptions(quoting_style="none"))


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for kind, r in result["kinds"].items():
        m = r["median"]
        label = f"{kind} {r['upload_mib']:.0f} MiB CSV"
        rows += [
            [NAME, f"{label}: peak RSS", f"{m['peak_rss_mib']:.0f} MiB", f"< {TARGET_PEAK_MIB:.0f} MiB", m["met_peak"]],
            [NAME, f"{label}: peak - baseline", f"{m['peak_over_baseline_x_upload']:.2f}x upload",
             f"< {TARGET_PEAK_OVER_BASELINE_X:.0f}x" if m["met_ratio"] is not None else "-", m["met_ratio"]],
            [NAME, f"{label}: retained - baseline", f"{m['retained_over_baseline_mib']:.0f} MiB", "-", None],
            [NAME, f"{label}: /health p95 / max", f"{m['health_p95_ms']:.0f} / {m['health_max_ms']:.0f} ms", "-", None],
        ]
    return rows


def report(result: dict[str, Any]) -> str:
    rows = []
    for kind, r in result["kinds"].items():
        m = r["median"]
        rows.append([kind, round(r["upload_mib"], 1), r["rows"], round(m["wall_s"], 1), round(m["baseline_rss_mib"]),
                     round(m["peak_rss_mib"]), round(m["peak_over_baseline_x_upload"], 2),
                     round(m["retained_rss_mib"]), round(m["health_p95_ms"], 1), round(m["health_max_ms"])])
    return table(rows, ["upload", "MiB", "rows", "wall s", "base MiB", "peak MiB", "(peak-base)/size",
                        "retained MiB", "health p95 ms", "health max ms"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upload_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 MiB uploads, 1 run")
    parser.add_argument("--mb", type=float, default=200.0, help="upload size in MiB (default 200)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the response before 'retained'")
    parser.add_argument("--label", help="results file bench/results/upload_memory.<label>.json (e.g. before)")
    args = parser.parse_args(argv)
    if not Path("/proc/self/status").exists():
        print(f"[{NAME}] needs Linux /proc", file=sys.stderr)
        return 1
    mib, repeats = (20.0, 1) if args.quick else (args.mb, args.repeats)
    print(f"[{NAME}] machine: {machine_line(machine_info())}", flush=True)
    result = run(mib, repeats, args.settle)
    name = f"{NAME}.{args.label}" if args.label else NAME
    path = write_results(name, result, quick=args.quick)
    print(report(result))
    print(f"[{NAME}] results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
