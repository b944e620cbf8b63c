"""What the benchmarks share: synthetic bars, timing helpers, machine info, result files, a real server.

Every market-data series made here is SYNTHETIC: a seeded geometric random walk with
consistent OHLC (low <= min(open, close) <= max(open, close) <= high, volume >= 0). The
same (seed, symbol index) always gives the same bars, whatever the number of symbols.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Where every benchmark's scratch data dirs go (``tempfile`` in this process and in the
#: subprocesses it starts): beside the service's default data dir (``./data``), on the disk a
#: deployment stores its objects on, not in /tmp -- on the 2-core guest the README's figures
#: come from, creating a file under /tmp costs ~0.7 ms against ~0.05 ms elsewhere on the same
#: ext4 disk, which a cold panel build (one object per piece) would pay 1,000 times.
#: ``ALPHAFORGE_BENCH_TMP`` overrides it (e.g. /tmp, to see that cost).
BENCH_TMP = Path(os.environ.get("ALPHAFORGE_BENCH_TMP") or REPO_ROOT / "data" / "bench-tmp")
BENCH_TMP.mkdir(parents=True, exist_ok=True)
tempfile.tempdir = str(BENCH_TMP)
#: Load average when the benchmark process started: other work on the machine skews timings.
LOADAVG_AT_START = os.getloadavg()
SEED = 20240601
#: 20 years of business days: 252 * 20.
BARS_20Y = 5040
FIRST_DAY = "1999-01-01"


# -- synthetic data ---------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticSeries:
    """One synthetic symbol: int64 UTC nanosecond timestamps and float64 OHLCV arrays."""

    symbol: str
    timestamps: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def frame(self) -> pd.DataFrame:
        """The canonical bar frame (UTC ``DatetimeIndex`` named timestamp, float64 OHLCV)."""
        index = pd.DatetimeIndex(self.timestamps, tz="UTC").as_unit("ns").rename("timestamp")
        return pd.DataFrame(
            {"open": self.open, "high": self.high, "low": self.low, "close": self.close, "volume": self.volume},
            index=index,
        )

    def records(self) -> pd.DataFrame:
        """Rows as an upload would carry them (a ``timestamp`` column), for ``ingest_bars``."""
        return self.frame().reset_index()


def synthetic_symbol(i: int) -> str:
    return f"SYN{i:04d}"


def synthetic_series(i: int, n_bars: int = BARS_20Y, seed: int = SEED) -> SyntheticSeries:
    """SYNTHETIC daily bars for symbol ``i``: a geometric random walk (per-symbol drift and
    volatility), an overnight gap for the open, high/low outside the open-close body."""
    rng = np.random.default_rng([seed, i])
    sigma = rng.uniform(0.008, 0.03)
    mu = rng.uniform(-0.0002, 0.0006)
    p0 = float(np.exp(rng.normal(np.log(50.0), 0.8)))
    close = p0 * np.exp(np.cumsum(rng.normal(mu, sigma, n_bars)))
    prev_close = np.concatenate(([p0], close[:-1]))
    open_ = prev_close * np.exp(rng.normal(0.0, sigma * 0.3, n_bars))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, sigma * 0.5, n_bars)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, sigma * 0.5, n_bars)))
    volume = np.round(rng.lognormal(13.0, 0.5, n_bars))
    timestamps = pd.bdate_range(FIRST_DAY, periods=n_bars, tz="UTC").as_unit("ns").asi8
    return SyntheticSeries(
        symbol=synthetic_symbol(i),
        timestamps=np.ascontiguousarray(timestamps, dtype=np.int64),
        open=np.ascontiguousarray(open_),
        high=np.ascontiguousarray(high),
        low=np.ascontiguousarray(low),
        close=np.ascontiguousarray(close),
        volume=np.ascontiguousarray(volume),
    )


def synthetic_universe(n_symbols: int, n_bars: int = BARS_20Y, seed: int = SEED) -> list[SyntheticSeries]:
    return [synthetic_series(i, n_bars, seed) for i in range(n_symbols)]


# -- timing -----------------------------------------------------------------------------


@contextmanager
def gc_paused(enabled: bool = True) -> Iterator[None]:
    """Collect, then keep the cyclic GC off for a timed section (restored afterwards)."""
    if not enabled:
        yield
        return
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def time_once(fn: Callable[[], Any], *, gc_off: bool = True) -> float:
    """Seconds one call of ``fn`` takes (``time.perf_counter``)."""
    with gc_paused(gc_off):
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p95, min, max and mean of samples given in seconds, in milliseconds."""
    ms = [s * 1e3 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": statistics.median(ms),
        "p95_ms": percentile(ms, 95),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "mean_ms": statistics.fmean(ms),
    }


# -- machine info and results -------------------------------------------------------------


def calibrate(repeats: int = 5) -> dict[str, float]:
    """A fixed CPU workload, timed (median ms): the machine's speed at that moment.

    On a shared VM the same code can run 30-50 % slower from one minute to the next with
    no visible load; comparing this figure between two result files says whether a
    difference comes from the code or from the machine."""

    def python_loop() -> None:
        total = 0
        for i in range(1_000_000):
            total += i * i

    x = np.random.default_rng(0).normal(size=1_000_000)

    def numpy_work() -> None:
        np.sort(x)

    out = {}
    for name, fn in (("python_loop_1m_ms", python_loop), ("numpy_sort_1m_ms", numpy_work)):
        out[name] = statistics.median(time_once(fn) for _ in range(repeats)) * 1e3
    return out


CALIBRATION_AT_START: dict[str, float] | None = None


def start_calibration() -> dict[str, float]:
    """Call at the start of a benchmark; ``write_results`` records it with one at the end."""
    global CALIBRATION_AT_START
    CALIBRATION_AT_START = calibrate()
    return CALIBRATION_AT_START


def _dist_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    import talib

    ta_c = getattr(talib, "__ta_version__", b"")
    if isinstance(ta_c, bytes):
        ta_c = ta_c.decode(errors="replace")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "python_impl": platform.python_implementation(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "talib_python": talib.__version__,
        "talib_c": ta_c,
        "pyarrow": _dist_version("pyarrow"),
        "sqlalchemy": _dist_version("SQLAlchemy"),
        "fastapi": _dist_version("fastapi"),
        "uvicorn": _dist_version("uvicorn"),
        "httpx": _dist_version("httpx"),
    }


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"{info['cpu_model']}, {info['usable_cores']} cores, {info['ram_gib']} GiB RAM; "
        f"Python {info['python']}, numpy {info['numpy']}, pandas {info['pandas']}, "
        f"TA-Lib {info['talib_python']} (C {info['talib_c']}), pyarrow {info['pyarrow']}; "
        f"load average now {os.getloadavg()[0]:.2f} (other work on the machine skews timings)"
    )


def results_path(name: str, quick: bool = False) -> Path:
    """``bench/results/<name>.json`` for the latest full run, ``<name>.quick.json`` for --quick."""
    return RESULTS_DIR / (f"{name}.quick.json" if quick else f"{name}.json")


def provenance() -> dict[str, Any]:
    """The commit measured and whether the product code differs from it."""

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    changed = git("status", "--porcelain", "--", "src")
    return {"git_head": git("rev-parse", "HEAD"), "src_changes_uncommitted": None if changed is None else changed.splitlines()}


def write_results(name: str, payload: dict[str, Any], quick: bool = False) -> Path:
    """Write the latest run's figures (see ``results_path``) and return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "quick": quick,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "loadavg_1_5_15_at_start": LOADAVG_AT_START,
        "loadavg_1_5_15_at_end": os.getloadavg(),
        "calibration_at_start": CALIBRATION_AT_START,
        "calibration_at_end": calibrate(),
        "provenance": provenance(),
        "machine": machine_info(),
        **payload,
    }
    path = results_path(name, quick)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain left/right aligned text table (numbers right-aligned)."""
    cells = [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(header)]
    numeric = [all(isinstance(r[i], (int, float)) for r in rows) if rows else False for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric))

    out = [line([str(h) for h in header]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def wait_for_quiet(name: str, threshold: float, max_wait_s: float, poll_s: float = 15.0) -> dict[str, Any]:
    """Poll the 1-minute load average until it is below ``threshold`` (or give up): the
    benchmarks that compare two timings want a machine nothing else is loading."""
    first = os.getloadavg()
    t0 = time.monotonic()
    while os.getloadavg()[0] >= threshold and time.monotonic() - t0 < max_wait_s:
        print(f"[{name}] load average {os.getloadavg()[0]:.2f} >= {threshold}: waiting "
              f"({time.monotonic() - t0:.0f}/{max_wait_s:.0f} s)", flush=True)
        time.sleep(poll_s)
    now = os.getloadavg()
    out = {
        "threshold_1min": threshold,
        "loadavg_1_5_15_before_wait": first,
        "loadavg_1_5_15_after_wait": now,
        "waited_s": round(time.monotonic() - t0, 1),
        "quiet_reached": now[0] < threshold,
    }
    print(f"[{name}] load average {now[0]:.2f} after {out['waited_s']:.0f} s of waiting "
          f"({'quiet' if out['quiet_reached'] else 'NOT quiet: gave up waiting'})", flush=True)
    return out


# -- a real server ----------------------------------------------------------------------

#: The admin key the benchmarks' servers are started with and their requests send: the
#: environment's ALPHAFORGE_ADMIN_API_KEY, else one made up for this process.
ADMIN_API_KEY = os.environ.get("ALPHAFORGE_ADMIN_API_KEY") or secrets.token_urlsafe(24)


def api_headers() -> dict[str, str]:
    """The headers every benchmark request to a server sends (the one place for them)."""
    return {"Authorization": f"Bearer {ADMIN_API_KEY}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("alphaforge")
    if script.exists():
        return [str(script), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return [sys.executable, "-m", "alphaforge.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]


class Server:
    """``alphaforge serve`` in a subprocess on its own data directory; stopped on exit.

    The environment's ALPHAFORGE_* settings are dropped (a stray one would skew the run);
    the server gets its data directory, the sample data, ``ADMIN_API_KEY`` and ``env``.
    ``command`` (port -> argv) replaces ``alphaforge serve`` for a bench-only server."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None,
                 command: Callable[[int], list[str]] = server_command) -> None:
        self.data_dir = data_dir
        self.extra_env = env or {}
        self.command = command
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFORGE_") or k == "ALPHAFORGE_BENCH_TMP"}
        env.update(ALPHAFORGE_DATA_DIR=str(self.data_dir), ALPHAFORGE_LOAD_SAMPLE_DATA="true",
                   ALPHAFORGE_ADMIN_API_KEY=ADMIN_API_KEY, **self.extra_env)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in __exit__)
        t0 = time.perf_counter()
        # cwd = the data directory, so no stray .env of the checkout is read.
        self.proc = subprocess.Popen(
            self.command(self.port), cwd=self.data_dir, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            self._wait_until_up()
        except BaseException:
            self.__exit__(None, None, None)  # stop the server we started, then re-raise
            raise
        self.startup_s = time.perf_counter() - t0
        return self

    def _wait_until_up(self, timeout_s: float = 180.0) -> None:
        import httpx

        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.base_url, timeout=2.0, trust_env=False, headers=api_headers()) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if client.get("/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")
                time.sleep(0.1)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
