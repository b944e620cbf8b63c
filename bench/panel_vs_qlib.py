"""Panel build vs Qlib (issue 13): the same 100 SYNTHETIC symbols x 20 years, the same 10
features, computed by Qlib's expression engine and by alphaforge's panel API, side by side.

Targets: alphaforge **cold** <= Qlib cold, alphaforge **warm** (every panel a hit) <= 0.1 x
Qlib cold. Three alphaforge modes are measured against the same Qlib figure: the 10 plugin
definitions as 10 panel requests, the same 10 definitions in ONE multi-feature request
(``POST /api/v1/features/panels`` naming the 10 ids: what Qlib's one ``D.features`` call
with 10 expressions is), and the same 10 features as ONE ``automated.expression``
definition of 10 named formulas (one panel request; see "Expression mode" below).

Data. 100 symbols x 5,040 daily OHLCV bars (``bench.common.synthetic_series``: a seeded
random walk; the same numbers for both sides), 1999-01-01 .. 2018-04-26.

Qlib side (``pyqlib``, a benchmark-only extra, run by ``--qlib-python`` / ``QLIB_PYTHON`` or
this interpreter). The benchmark writes Qlib's binary layout itself into a temp dir (not
timed): ``calendars/day.txt``, ``instruments/all.txt`` (``SYMBOL<TAB>first<TAB>last``),
``features/<symbol lower>/<field>.day.bin`` (little-endian float32: the index of the
symbol's first date in the calendar, then the values). Each run is a fresh subprocess:
``qlib.init(provider_uri=..., region=REG_US, kernels=1, expression_cache=None,
dataset_cache=None)``, then the timed call ``D.features(D.instruments("all"), <10
expressions>, "1999-01-01", "2018-12-31")`` (Qlib's *cold*: no disk cache, empty in-memory
cache). The same process then clears Qlib's in-memory cache ``H`` and calls again
(``--qlib-repeats`` times: cold again, but with imports and page cache warm), and once more
without clearing ``H`` (its in-memory expression cache; 500 entries, so not all hits).

alphaforge side, through the HTTP API as a user gets it: in a fresh subprocess per run, a
``fastapi.testclient.TestClient(create_app(settings))`` on the embedded default (SQLite +
file object store, 2 task worker processes) in a fresh temp data dir, no sample data; bars
uploaded as CSV to ``POST /api/v1/market-data/{symbol}/bars`` (not timed); a universe of
the symbols (``POST /api/v1/universes``, members from 1999-01-01, open-ended); the 10
definitions (``POST /api/v1/features``); one warm-up generate of an 11th definition on one
symbol (starts the task workers; reported, not timed in cold); then timed:

- **cold**: the 10 ``POST /api/v1/features/{id}/panels`` for the universe and
  [1999-01-01, 2019-01-01), one after the other; each answer must say ``cached: false``
  with every piece computed (``pieces[*].cached == false``);
- **warm**: the same 10 requests again; each answer must say ``cached: true``.

One-request mode: the same setup in another fresh subprocess and data dir; **cold** is ONE
``POST /api/v1/features/panels`` with the 10 ids (every panel ``cached: false``, every piece
computed), **warm** the same request again (every panel ``cached: true``).

Expression mode: the same setup in another fresh subprocess and data dir, but the
definitions are ONE ``automated.expression`` whose 10 named formulas (``EXPRESSIONS``) are
the Qlib expressions in alphaforge's language; **cold** is its one ``POST .../panels``
(every piece computed: the task workers evaluate each batch of symbols in one vectorised
pass), **warm** the same request again (``cached: true``).

Figures are medians over ``--runs`` (default 3) runs; each run is a Qlib, an alphaforge
(plugins), an alphaforge (plugins, one request) and an alphaforge (expression) subprocess,
in turn, so that load from other work on the machine hits them alike.

The 10 features (alphaforge plugin -> Qlib expression). They compute the same quantity,
with these known differences in definition (none of them matters after the warm-up, which
the sanity check below verifies):

==========================================  ==========================================================
alphaforge                                  Qlib
==========================================  ==========================================================
technical.sma(5)                            ``Mean($close,5)``
technical.sma(20)                           ``Mean($close,20)``
technical.ema(20)                           ``EMA($close,20)``  (pandas ``ewm(span=20)``)
statistical.returns(1)                      ``$close/Ref($close,1)-1``
technical.roc(10)                           ``($close/Ref($close,10)-1)*100``
statistical.realized_volatility(20, 252)    ``Std(Log($close/Ref($close,1)),20)*15.874507866387544``
statistical.z_score(20)                     ``($close-Mean($close,20))/Std($close,20)``
technical.willr(14)                         ``(Max($high,14)-$close)/(Max($high,14)-Min($low,14))*-100``
technical.rsi(14)                           ``100*EMA(Greater(d,0),1/14)/EMA(Abs(d),1/14)``, d = ``$close-Ref($close,1)``
technical.atr(14)                           ``EMA(Greater(Greater($high-$low,Abs($high-Ref($close,1))),Abs($low-Ref($close,1))),1/14)``
==========================================  ==========================================================

- Warm-up: Qlib's rolling operators use ``min_periods=1`` (a "mean of 5" on the first bar is
  the first close; Std is NaN on the first bar only); alphaforge (TA-Lib, pandas
  ``rolling(window)``) gives NaN until the window is full. So Qlib has values in the first
  window-1 bars where alphaforge has none.
- Storage: Qlib stores and computes float32 (about 7 significant digits); alphaforge float64.
- Exponential averages: TA-Lib's EMA seeds with the SMA of the first ``period`` values and
  recurses (``adjust=False``); Qlib's ``EMA`` is pandas' ``ewm(..., min_periods=1)`` with
  ``adjust=True`` (weights renormalised over the history so far). The two differ by a term
  that decays like (1 - alpha)^t, i.e. nothing after a few hundred bars.
- RSI and ATR: TA-Lib uses Wilder smoothing (an EMA with alpha = 1/period, seeded with an
  SMA); Qlib has no Wilder operator, but ``EMA(x, N)`` with 0 < N < 1 takes N as alpha, so
  ``EMA(x, 1/14)`` is Wilder's average up to the seed. RSI = 100 * avg gain / (avg gain +
  avg loss) = 100 * EMA(max(d, 0)) / EMA(|d|) (EMA is linear). Qlib's own Alpha158 "RSI-like"
  features (``SUMP``) are a *simple-sum* (Cutler) ratio instead: a different quantity.
- ROC: TA-Lib's ROC is in percent (x 100); written as such in the Qlib expression.
- Standard deviations: both ddof 1 (pandas' ``rolling().std()``); TA-Lib's STDDEV/BBANDS
  would be ddof 0, which is why BBANDS is not among the 10.
- Annualisation: alphaforge's realized volatility is annualised (x sqrt(252)); Qlib has no
  such convention, so the constant is written into the expression.
- Williams %R: TA-Lib gives 0 on a flat window; the Qlib expression gives NaN/inf there
  (never the case on these random walks).
- Shape: Qlib returns one frame (instrument, datetime) x 10 columns in memory; alphaforge
  stores 10 panel datasets (Parquet + rows, one per-symbol dataset per member), i.e. it
  persists and versions what Qlib recomputes each time (the expression mode: one panel of
  10 columns).

The expression mode's formulas (``EXPRESSIONS``) are Qlib's expressions operator for
operator (``mean`` = ``Mean``, ``std`` = ``Std`` with ddof 1, ``ref`` = ``Ref``, ``max`` /
``min`` = ``Max`` / ``Min``, ``greater`` = ``Greater``), so against Qlib they differ only in
the warm-up (full windows; ``ewm`` starts at bar ``span``) and in float32 vs float64:

- ``ewm(close, 20)`` is pandas' ``ewm(span=20, adjust=True)``, Qlib's ``EMA($close,20)``
  exactly (TA-Lib's EMA, the plugin, is the SMA-seeded ``adjust=False`` recursion).
- RSI and ATR: ``ewm`` takes a span, and span 27 is alpha = 2 / (27 + 1) = 1/14 exactly,
  i.e. Wilder's smoothing: ``ewm(x, 27)`` = Qlib's ``EMA(x, 1/14)`` (both ``adjust=True``,
  no SMA seed; TA-Lib's RSI/ATR differ from both by the seed's decaying term).
- Williams %R on a flat window is NaN/inf, as Qlib's (the plugin gives 0).

Sanity check (first run): for 3 symbols, every one of the 10 columns from the stored panels
(``GET .../panels/{panel_id}/data?format=parquet``; in each mode) against Qlib's frame, after a warm-up of
500 bars, where both are finite. Pass when ``|af - qlib| <= RTOL * |af| + ATOL_SCALE *
median(|af|)`` (RTOL = ATOL_SCALE = 1e-4: float32 storage gives ~1e-7 relative on the
inputs, amplified by the cancellations of a z-score or a return; a definitional difference --
ddof 0 vs 1 on 20 values, a Cutler vs Wilder RSI, a missing x100 -- is 1e-2 or more). The
benchmark fails (exit 1) when a column disagrees in either mode: then the features are not
the same.

Install the Qlib side (benchmark-only; the service does not depend on it). The full
``pip install pyqlib`` pulls ~1.4 GB (jupyter, full mlflow, cvxpy, gym ...) and would
downgrade pyarrow; the slim set below runs the expression engine::

    pip install --no-deps pyqlib==0.9.7
    pip install numpy pandas scipy pyyaml ruamel.yaml filelock dill joblib tqdm loguru fire \\
        pydantic-settings redis python-redis-lock pyarrow requests packaging mlflow-skinny

(the second line is also ``pip install --group qlib-bench`` from the repository root,
pip >= 25.1). Qlib in another interpreter: ``--qlib-python /path/to/venv/bin/python`` (or
``QLIB_PYTHON``); it needs only numpy and pandas besides Qlib to run this module's Qlib
worker. Without Qlib the benchmark prints these commands and exits 0 ("skipped").

    python -m bench.panel_vs_qlib                       # 100 symbols, 3 runs (a few minutes)
    python -m bench.panel_vs_qlib --quick               # 10 symbols, 1 run
    python -m bench.panel_vs_qlib --symbols 10 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import (
    ADMIN_API_KEY,
    REPO_ROOT,
    api_headers,
    machine_info,
    machine_line,
    start_calibration,
    synthetic_series,
    table,
    write_results,
)

NAME = "panel_vs_qlib"
#: alphaforge's panel range [start, end) and Qlib's [start, end] over the same 5,040 bars.
AF_START, AF_END = "1999-01-01", "2019-01-01"
QLIB_START, QLIB_END = "1999-01-01", "2018-12-31"
UNIVERSE = "SYNQLIB"
COLD_TARGET = 1.0
WARM_TARGET = 0.1
#: Sanity check: bars skipped at the start (warm-up, EMA seeds), symbols compared, tolerances.
WARMUP_SKIP = 500
SAMPLE_SYMBOLS = 3
RTOL = 1e-4
ATOL_SCALE = 1e-4

_ALPHA14 = repr(1 / 14)
_DIFF = "($close-Ref($close,1))"
_TR = "Greater(Greater($high-$low,Abs($high-Ref($close,1))),Abs($low-Ref($close,1)))"

#: (label, plugin_key, parameters, output column, Qlib expression).
FEATURES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("sma5", "technical.sma", {"period": 5}, "sma", "Mean($close,5)"),
    ("sma20", "technical.sma", {"period": 20}, "sma", "Mean($close,20)"),
    ("ema20", "technical.ema", {"period": 20}, "ema", "EMA($close,20)"),
    ("ret1", "statistical.returns", {"period": 1}, "returns", "$close/Ref($close,1)-1"),
    ("roc10", "technical.roc", {"period": 10}, "roc", "($close/Ref($close,10)-1)*100"),
    ("rvol20", "statistical.realized_volatility", {"window": 20, "annualization": 252}, "realized_volatility",
     f"Std(Log($close/Ref($close,1)),20)*{repr(252 ** 0.5)}"),
    ("z20", "statistical.z_score", {"window": 20}, "z_score", "($close-Mean($close,20))/Std($close,20)"),
    ("willr14", "technical.willr", {"period": 14}, "willr",
     "(Max($high,14)-$close)/(Max($high,14)-Min($low,14))*-100"),
    ("rsi14", "technical.rsi", {"period": 14}, "rsi",
     f"100*EMA(Greater({_DIFF},0),{_ALPHA14})/EMA(Abs({_DIFF}),{_ALPHA14})"),
    ("atr14", "technical.atr", {"period": 14}, "atr", f"EMA({_TR},{_ALPHA14})"),
]
#: The same 10 features as named formulas of ONE ``automated.expression`` definition (the
#: expression mode): the Qlib expressions above in alphaforge's language. ``ewm(x, 27)`` is
#: alpha = 2 / (27 + 1) = 1/14 exactly, Wilder's smoothing (Qlib's ``EMA(x, 1/14)``).
_SQRT252 = repr(252 ** 0.5)
_D = "close - ref(close, 1)"
EXPRESSIONS: dict[str, str] = {
    "sma5": "mean(close, 5)",
    "sma20": "mean(close, 20)",
    "ema20": "ewm(close, 20)",
    "ret1": "close / ref(close, 1) - 1",
    "roc10": "(close / ref(close, 10) - 1) * 100",
    "rvol20": f"std(log(close / ref(close, 1)), 20) * {_SQRT252}",
    "z20": "(close - mean(close, 20)) / std(close, 20)",
    "willr14": "(max(high, 14) - close) / (max(high, 14) - min(low, 14)) * -100",
    "rsi14": f"100 * ewm(greater({_D}, 0), 27) / ewm(abs({_D}), 27)",
    "atr14": "ewm(greater(greater(high - low, abs(high - ref(close, 1))), abs(low - ref(close, 1))), 27)",
}
assert list(EXPRESSIONS) == [f[0] for f in FEATURES]
#: The warm-up generate (starts the task workers before the timed cold panels).
WARMUP_FEATURE = ("statistical.log_returns", {"period": 1})

QLIB_SLIM_DEPS = ("numpy pandas scipy pyyaml ruamel.yaml filelock dill joblib tqdm loguru fire pydantic-settings "
                  "redis python-redis-lock pyarrow requests packaging mlflow-skinny")
INSTALL_HINT = (
    "Qlib (pyqlib) is a benchmark-only dependency. Install its expression engine without the ~1.4 GB of "
    "notebook/mlflow/cvxpy extras its wheel pulls:\n"
    "    pip install --no-deps pyqlib==0.9.7\n"
    f"    pip install {QLIB_SLIM_DEPS}\n"
    "  (the second line = `pip install --group qlib-bench` from the repository root, pip >= 25.1)\n"
    "into this environment, or into another one and pass --qlib-python /path/to/python (or QLIB_PYTHON)."
)


def log(message: str) -> None:
    print(f"[{NAME}] {message}", flush=True)


def _med(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "per_run": values}


# -- Qlib side ----------------------------------------------------------------------------


def qlib_version(python: str) -> tuple[str | None, str]:
    """Qlib's version under ``python``, or None and why not."""
    try:
        proc = subprocess.run([python, "-c", "import qlib; print(qlib.__version__)"], capture_output=True, text=True,
                              timeout=120, cwd=tempfile.gettempdir())
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{python}: {exc}"
    if proc.returncode != 0:
        return None, f"{python}: " + (proc.stderr.strip().splitlines() or ["import qlib failed"])[-1]
    return proc.stdout.strip(), ""


def write_qlib_layout(root: Path, n_symbols: int) -> dict[str, Any]:
    """Qlib's day-frequency binary layout for the synthetic symbols (what its dump_bin writes)."""
    t0 = time.perf_counter()
    series = [synthetic_series(i) for i in range(n_symbols)]
    calendar = pd.DatetimeIndex(series[0].timestamps, tz="UTC").tz_localize(None)
    (root / "calendars").mkdir(parents=True, exist_ok=True)
    (root / "instruments").mkdir(parents=True, exist_ok=True)
    (root / "calendars" / "day.txt").write_text("".join(f"{d:%Y-%m-%d}\n" for d in calendar))
    position = {int(ts): i for i, ts in enumerate(series[0].timestamps)}
    lines = []
    for s in series:
        first = position[int(s.timestamps[0])]
        if not np.array_equal(s.timestamps, series[0].timestamps[first:first + len(s.timestamps)]):
            raise RuntimeError(f"{s.symbol}: its dates are not a contiguous run of the calendar")
        dates = pd.DatetimeIndex(s.timestamps, tz="UTC").tz_localize(None)
        lines.append(f"{s.symbol}\t{dates[0]:%Y-%m-%d}\t{dates[-1]:%Y-%m-%d}\n")
        folder = root / "features" / s.symbol.lower()
        folder.mkdir(parents=True, exist_ok=True)
        for field in ("open", "high", "low", "close", "volume"):
            values = np.concatenate(([float(first)], getattr(s, field))).astype("<f4")
            values.tofile(folder / f"{field}.day.bin")
    (root / "instruments" / "all.txt").write_text("".join(lines))
    return {"symbols": n_symbols, "calendar_days": len(calendar), "write_s": time.perf_counter() - t0}


def qlib_worker(provider_uri: Path, out_dir: Path, repeats: int, sample: list[str]) -> None:
    """In a fresh process: init Qlib (caches off), time D.features cold, then the repeats."""
    import logging

    t0 = time.perf_counter()
    import qlib
    from qlib.constant import REG_US
    from qlib.data import D
    from qlib.data.cache import H

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    qlib.init(provider_uri=str(provider_uri), region=REG_US, kernels=1, expression_cache=None, dataset_cache=None,
              logging_level=logging.WARNING)
    init_s = time.perf_counter() - t0
    exprs = [f[4] for f in FEATURES]

    def call() -> tuple[float, pd.DataFrame]:
        t = time.perf_counter()
        frame = D.features(D.instruments("all"), exprs, start_time=QLIB_START, end_time=QLIB_END, freq="day")
        return time.perf_counter() - t, frame

    cold_s, frame = call()
    shape = list(frame.shape)
    nonnull = {f[0]: int(frame[f[4]].notna().sum()) for f in FEATURES}
    if sample:
        picked = frame.loc[frame.index.get_level_values("instrument").isin(sample), exprs]
        picked.columns = [f[0] for f in FEATURES]
        picked = picked.reset_index()
        np.savez(out_dir / "qlib_sample.npz", instrument=np.asarray(picked["instrument"].tolist(), dtype="U32"),
                 datetime=picked["datetime"].to_numpy().astype("datetime64[ns]").astype(np.int64),
                 **{f[0]: picked[f[0]].to_numpy(dtype=np.float64) for f in FEATURES})
    del frame
    repeat_s = []
    for _ in range(repeats):
        H.clear()  # calendar, instruments and expression caches: cold again (page cache stays warm)
        repeat_s.append(call()[0])
    memcache_s = call()[0]  # Qlib's in-memory expression cache H left as the last call filled it
    (out_dir / "qlib.json").write_text(json.dumps({
        "qlib_version": qlib.__version__, "import_s": import_s, "init_s": init_s, "cold_s": cold_s,
        "shape": shape, "nonnull": nonnull, "repeat_cleared_s": repeat_s, "repeat_memcache_s": memcache_s,
    }))


def run_worker(command: Callable[[str], list[str]], prefix: str, result_file: str, keep: Path | None = None,
               keep_files: Sequence[str] = (), env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a worker subprocess (``command(out_dir)``, from the repository root) that writes
    ``result_file`` (JSON) into a fresh temp dir; its parsed content plus
    ``subprocess_wall_s``. ``keep_files`` are copied from that dir into ``keep`` (when given)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        t0 = time.perf_counter()
        subprocess.run(command(tmp), check=True, cwd=REPO_ROOT, env=env)
        out = json.loads((Path(tmp) / result_file).read_text())
        out["subprocess_wall_s"] = time.perf_counter() - t0
        if keep is not None:
            for name in keep_files:
                shutil.copy(Path(tmp) / name, keep / name)
        return out


def af_env() -> dict[str, str]:
    """This environment less its ALPHAFORGE_* settings (a stray one would skew the run)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFORGE_") or k == "ALPHAFORGE_BENCH_TMP"}


def _run_qlib(python: str, provider_uri: Path, repeats: int, sample: list[str], keep: Path | None) -> dict[str, Any]:
    def command(tmp: str) -> list[str]:
        return [python, "-m", f"bench.{NAME}", "--qlib-worker", tmp, "--provider-uri", str(provider_uri),
                "--qlib-repeats", str(repeats)] + (["--sample", ",".join(sample)] if sample else [])

    return run_worker(command, "panel-vs-qlib-q-", "qlib.json", keep if sample else None, ["qlib_sample.npz"])


# -- alphaforge side ----------------------------------------------------------------------


def _ok(response: Any, what: str, status: int = 200) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:2000]}")
    return response.json()


def plugin_definitions() -> list[dict[str, Any]]:
    """The 10 plugin definitions' bodies (``POST /api/v1/features``), in ``FEATURES`` order."""
    return [{"name": f"{label} {key}", "type": key.split(".")[0], "plugin_key": key, "parameters": params}
            for label, key, params, _, _ in FEATURES]


def expression_definition(name: str, expressions: dict[str, str]) -> dict[str, Any]:
    """One ``automated.expression`` definition holding ``expressions`` (column -> formula)."""
    return {"name": name, "type": "automated", "plugin_key": "automated.expression",
            "parameters": {"expressions": expressions}}


@contextmanager
def af_session(n_symbols: int, definitions: list[dict[str, Any]], result: dict[str, Any]) -> Iterator[tuple[Any, list[str]]]:
    """A ``TestClient`` over a new app on a fresh data dir (embedded default, no sample data),
    set up and not timed: the bars uploaded as CSV, the universe, ``definitions`` created,
    one warm-up generate of another definition on one symbol (starts the task workers).
    Yields the client and the definitions' ids; records ``app_start_s``, ``ingest_s`` and
    ``warmup_generate_s`` in ``result``. The data dir is removed afterwards."""
    import io

    from fastapi.testclient import TestClient

    from alphaforge.api.app import create_app
    from alphaforge.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="alphaforge-bench-vsqlib-"))
    try:
        settings = Settings(data_dir=tmp, load_sample_data=False, admin_api_key=ADMIN_API_KEY,
                            allowed_hosts=["testserver"])
        t0 = time.perf_counter()
        with TestClient(create_app(settings), headers=api_headers()) as client:
            result["app_start_s"] = time.perf_counter() - t0

            # Bars: CSV uploads, as a user would send them (not timed in the comparison).
            t0 = time.perf_counter()
            series = [synthetic_series(i) for i in range(n_symbols)]
            for s in series:
                buffer = io.StringIO()
                s.records().to_csv(buffer, index=False, float_format="%.17g", date_format="%Y-%m-%dT%H:%M:%SZ")
                files = {"file": (f"{s.symbol}.csv", buffer.getvalue().encode(), "text/csv")}
                _ok(client.post(f"/api/v1/market-data/{s.symbol}/bars", files=files), f"upload {s.symbol}")
            result["ingest_s"] = time.perf_counter() - t0

            members = [{"symbol": s.symbol, "from": AF_START, "to": None} for s in series]
            _ok(client.post("/api/v1/universes", json={"name": UNIVERSE, "members": members}), "universe", 201)
            ids = [_ok(client.post("/api/v1/features", json=body), f"feature {body['name']}", 201)["id"]
                   for body in definitions]

            # Warm-up: one generate of another definition on one symbol starts the task workers.
            key, params = WARMUP_FEATURE
            wid = _ok(client.post("/api/v1/features", json={"name": "warm-up", "type": key.split(".")[0],
                                                            "plugin_key": key, "parameters": params}), "warm-up", 201)["id"]
            t0 = time.perf_counter()
            _ok(client.post(f"/api/v1/features/{wid}/generate",
                            json={"symbol": series[0].symbol, "start_date": AF_START, "end_date": AF_END}), "warm-up")
            result["warmup_generate_s"] = time.perf_counter() - t0
            del series
            yield client, ids
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def time_panels(client: Any, named_ids: list[tuple[str, str]], n_symbols: int,
                expect_cached: bool) -> tuple[float, list[float], list[dict[str, Any]]]:
    """``POST /api/v1/features/{id}/panels`` for the universe and [AF_START, AF_END), one
    feature after the other: the total and per-request seconds and the answers. Each answer
    must say ``cached == expect_cached``; a cold one must have computed every piece."""
    body = {"universe": UNIVERSE, "start_date": AF_START, "end_date": AF_END}
    per, answers = [], []
    t_all = time.perf_counter()
    for label, fid in named_ids:
        t = time.perf_counter()
        answer = _ok(client.post(f"/api/v1/features/{fid}/panels", json=body), f"panel {label}")
        per.append(time.perf_counter() - t)
        if answer["cached"] != expect_cached:
            raise RuntimeError(f"panel {label}: cached={answer['cached']}, expected {expect_cached}")
        if not expect_cached:
            computed = [p for p in answer["pieces"] if not p["cached"]]
            if len(computed) != n_symbols:
                raise RuntimeError(f"panel {label}: {len(computed)} of {n_symbols} pieces computed "
                                   f"(pieces: {len(answer['pieces'])})")
        answers.append(answer)
    return time.perf_counter() - t_all, per, answers


def time_panels_one(client: Any, named_ids: list[tuple[str, str]], n_symbols: int,
                    expect_cached: bool) -> tuple[float, list[float], list[dict[str, Any]]]:
    """``time_panels`` as ONE ``POST /api/v1/features/panels`` naming every feature: the
    request's seconds (as every feature's "per request" figure) and each feature's answer,
    checked alike."""
    body = {"feature_ids": [fid for _, fid in named_ids], "universe": UNIVERSE, "start_date": AF_START,
            "end_date": AF_END}
    t = time.perf_counter()
    answers = _ok(client.post("/api/v1/features/panels", json=body), "panels")["panels"]
    elapsed = time.perf_counter() - t
    for (label, _), answer in zip(named_ids, answers, strict=True):
        if answer["cached"] != expect_cached:
            raise RuntimeError(f"panel {label}: cached={answer['cached']}, expected {expect_cached}")
        computed = [p for p in answer["pieces"] if not p["cached"]]
        if not expect_cached and len(computed) != n_symbols:
            raise RuntimeError(f"panel {label}: {len(computed)} of {n_symbols} pieces computed")
    return elapsed, [elapsed] * len(named_ids), answers


def panel_sample(client: Any, fid: str, panel_id: str, sample: list[str], what: str) -> pd.DataFrame:
    """A stored panel's rows of the ``sample`` symbols (``GET .../panels/{panel_id}/data?format=
    parquet``, only their rows decoded): columns symbol, timestamp (UTC ns, naive) and the
    feature's outputs, sorted by (symbol, timestamp)."""
    import io

    import pyarrow.parquet as pq

    response = client.get(f"/api/v1/features/{fid}/panels/{panel_id}/data", params={"format": "parquet"})
    if response.status_code != 200:
        raise RuntimeError(f"panel data {what}: HTTP {response.status_code}: {response.text[:500]}")
    frame = pq.read_table(io.BytesIO(response.content), filters=[("symbol", "in", sample)]).to_pandas()
    del response
    if "symbol" not in frame.columns:  # (timestamp, symbol) stored as the index
        frame = frame.reset_index()
    frame = frame.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)
    frame["timestamp"] = pd.DatetimeIndex(frame["timestamp"]).tz_convert("UTC").tz_localize(None).as_unit("ns").asi8
    return frame


def save_panel_samples(path: Path, frames: list[tuple[pd.DataFrame, dict[str, str]]], what: str) -> None:
    """Write the sampled rows of one or more panels (each with its {column: label}) as one
    ``.npz``: symbol, timestamp and one float64 array per label; every panel must hold the
    same rows."""
    arrays: dict[str, np.ndarray] = {}
    for frame, columns in frames:
        symbols = np.asarray(frame["symbol"].tolist(), dtype="U32")
        if not arrays:
            arrays["symbol"], arrays["timestamp"] = symbols, frame["timestamp"].to_numpy(np.int64)
        elif not (np.array_equal(arrays["symbol"], symbols)
                  and np.array_equal(arrays["timestamp"], frame["timestamp"].to_numpy(np.int64))):
            raise RuntimeError(f"panel data {what}: rows differ from the first panel's")
        for column, label in columns.items():
            arrays[label] = frame[column].to_numpy(dtype=np.float64)
    np.savez(path, **arrays)


def af_worker(out_dir: Path, n_symbols: int, sample: list[str], mode: str = "plugins") -> None:
    """In a fresh process: a TestClient over a new app on a fresh data dir; ingest, define,
    warm-up, then time the panels cold and warm: the 10 plugin definitions' 10 panels, one
    request each (``mode`` plugins) or all in one request (``mode`` plugins_one), or the one
    expression definition's panel (``mode`` expression)."""
    result: dict[str, Any] = {"mode": mode}
    if mode in ("plugins", "plugins_one"):
        definitions = plugin_definitions()
        labels = [f[0] for f in FEATURES]
    else:
        definitions = [expression_definition("10 features as expressions", EXPRESSIONS)]
        labels = ["expressions"]
    with af_session(n_symbols, definitions, result) as (client, ids):
        named_ids = list(zip(labels, ids, strict=True))
        timed = time_panels_one if mode == "plugins_one" else time_panels
        cold_s, cold_per, cold_answers = timed(client, named_ids, n_symbols, expect_cached=False)
        warm_s, warm_per, _ = timed(client, named_ids, n_symbols, expect_cached=True)
        result.update(
            cold_s=cold_s, warm_s=warm_s,
            cold_per_feature_s=dict(zip(labels, cold_per, strict=True)),
            warm_per_feature_s=dict(zip(labels, warm_per, strict=True)),
            rows_per_panel={label: a["panel"]["row_count"] for label, a in zip(labels, cold_answers, strict=True)},
        )
        if sample:  # the stored panels' values for the sanity check (not timed)
            if mode in ("plugins", "plugins_one"):
                columns = [{f[3]: f[0]} for f in FEATURES]
            else:
                columns = [{label: label for label in EXPRESSIONS}]
            frames = [(panel_sample(client, fid, answer["panel"]["id"], sample, label), cols)
                      for (label, fid), answer, cols in zip(named_ids, cold_answers, columns, strict=True)]
            save_panel_samples(out_dir / f"af_{mode}_sample.npz", frames, mode)
    (out_dir / "af.json").write_text(json.dumps(result))


def _run_af(n_symbols: int, sample: list[str], keep: Path | None, mode: str = "plugins") -> dict[str, Any]:
    def command(tmp: str) -> list[str]:
        return [sys.executable, "-m", f"bench.{NAME}", "--af-worker", tmp, "--symbols", str(n_symbols),
                "--mode", mode] + (["--sample", ",".join(sample)] if sample else [])

    return run_worker(command, "panel-vs-qlib-a-", "af.json", keep if sample else None, [f"af_{mode}_sample.npz"],
                      env=af_env())


# -- sanity check -----------------------------------------------------------------------


def compare_columns(af_path: Path, qlib_path: Path, labels: Sequence[str], warmup_skip: int, rtol: float,
                    atol_scale: float) -> dict[str, Any]:
    """Each label's column of alphaforge's sample (``af_path``: symbol, timestamp, labels)
    against Qlib's (``qlib_path``: instrument, datetime, labels) on the same rows, after
    ``warmup_skip`` bars of each symbol, where both are finite. A column passes when every
    ``|af - qlib| <= rtol * |af| + atol_scale * median(|af|)``. Also counted (not part of
    ``ok``): values finite on one side only after the warm-up, and Qlib's values inside it
    where alphaforge has none."""
    af = np.load(af_path, allow_pickle=False)
    q = np.load(qlib_path, allow_pickle=False)
    af_index = pd.MultiIndex.from_arrays([af["symbol"], af["timestamp"]])
    q_index = pd.MultiIndex.from_arrays([q["instrument"], q["datetime"]])
    rank = pd.Series(0, index=af_index).groupby(level=0).cumcount().to_numpy()
    out: dict[str, Any] = {"warmup_skipped_bars": warmup_skip, "rtol": rtol, "atol_scale": atol_scale,
                           "symbols": sorted(set(af["symbol"].tolist())), "features": {}}
    for label in labels:
        a_v = af[label]
        b_v = pd.Series(q[label], index=q_index).reindex(af_index).to_numpy()
        after = rank >= warmup_skip
        mask = after & np.isfinite(a_v) & np.isfinite(b_v)
        both_early = int(((~after) & np.isfinite(b_v) & ~np.isfinite(a_v)).sum())
        one_sided = int((after & (np.isfinite(a_v) != np.isfinite(b_v))).sum())
        diff = np.abs(a_v[mask] - b_v[mask])
        scale = float(np.median(np.abs(a_v[mask]))) if mask.any() else float("nan")
        allowed = rtol * np.abs(a_v[mask]) + atol_scale * scale
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(np.abs(a_v[mask]) > 0, diff / np.abs(a_v[mask]), np.nan)
        out["features"][label] = {
            "compared": int(mask.sum()),
            "max_abs_diff": float(diff.max()) if diff.size else None,
            "max_rel_diff": float(np.nanmax(rel)) if diff.size and np.isfinite(rel).any() else None,
            "median_rel_diff": float(np.nanmedian(rel)) if diff.size and np.isfinite(rel).any() else None,
            "median_abs_value": scale,
            "qlib_only_values_in_warmup": both_early,
            "finite_on_one_side_after_warmup": one_sided,
            "beyond_tolerance": int((diff > allowed).sum()),
            "ok": bool(mask.sum() > 0 and (diff <= allowed).all()),
        }
    out["ok"] = all(v["ok"] for v in out["features"].values())
    return out


def compare(samples: Path, mode: str = "plugins") -> dict[str, Any]:
    """Each feature's column from alphaforge's panels (``mode``: the 10 plugin definitions',
    or the expression definition's) vs Qlib's, on the sampled symbols, after the warm-up;
    max abs / rel differences and whether within float32 precision."""
    return compare_columns(samples / f"af_{mode}_sample.npz", samples / "qlib_sample.npz", [f[0] for f in FEATURES],
                           WARMUP_SKIP, RTOL, ATOL_SCALE)


# -- the benchmark ------------------------------------------------------------------------


def run(n_symbols: int, runs: int, qlib_python: str, qlib_repeats: int) -> dict[str, Any]:
    from bench.common import synthetic_symbol

    sample = [synthetic_symbol(i) for i in range(min(SAMPLE_SYMBOLS, n_symbols))]
    work = Path(tempfile.mkdtemp(prefix="panel-vs-qlib-"))
    try:
        layout = write_qlib_layout(work / "qlib_data", n_symbols)
        log(f"Qlib layout written ({layout['calendar_days']} days x {n_symbols} symbols, "
            f"{layout['write_s']:.1f} s, not timed)")
        q_runs, af_runs, one_runs, ex_runs = [], [], [], []
        for i in range(runs):
            keep = work if i == 0 else None
            s = sample if i == 0 else []
            q = _run_qlib(qlib_python, work / "qlib_data", qlib_repeats, s, keep)
            log(f"run {i + 1}/{runs}: Qlib D.features cold {q['cold_s']:.2f} s (same process, cache cleared: "
                + ", ".join(f"{x:.2f}" for x in q["repeat_cleared_s"]) + f" s; in-memory cache: "
                f"{q['repeat_memcache_s']:.2f} s) load {os.getloadavg()[0]:.2f}")
            a = _run_af(n_symbols, s, keep)
            log(f"run {i + 1}/{runs}: alphaforge panels cold {a['cold_s']:.2f} s, warm {a['warm_s']:.2f} s "
                f"(ingest {a['ingest_s']:.1f} s, warm-up generate {a['warmup_generate_s']:.2f} s) "
                f"load {os.getloadavg()[0]:.2f}")
            o = _run_af(n_symbols, s, keep, mode="plugins_one")
            log(f"run {i + 1}/{runs}: alphaforge 10 panels in one request cold {o['cold_s']:.2f} s, warm "
                f"{o['warm_s']:.2f} s load {os.getloadavg()[0]:.2f}")
            e = _run_af(n_symbols, s, keep, mode="expression")
            log(f"run {i + 1}/{runs}: alphaforge expression panel (10 formulas, 1 definition) cold {e['cold_s']:.2f} s, "
                f"warm {e['warm_s']:.2f} s (ingest {e['ingest_s']:.1f} s, warm-up generate "
                f"{e['warmup_generate_s']:.2f} s) load {os.getloadavg()[0]:.2f}")
            q_runs.append(q)
            af_runs.append(a)
            one_runs.append(o)
            ex_runs.append(e)
            if i == 0:
                sanity = compare(work)
                sanity_one = compare(work, mode="plugins_one")
                sanity_expr = compare(work, mode="expression")
                for what, check in (("plugins", sanity), ("plugins, one request", sanity_one),
                                    ("expression", sanity_expr)):
                    log(f"sanity check ({what}): " + ("OK" if check["ok"] else "FAILED") + " -- " + ", ".join(
                        f"{k} max rel {v['max_rel_diff']:.1e}" for k, v in check["features"].items()
                        if v["max_rel_diff"] is not None))
                if not (sanity["ok"] and sanity_one["ok"] and sanity_expr["ok"]):
                    break  # the features are not the same: timing them side by side means nothing
    finally:
        shutil.rmtree(work, ignore_errors=True)

    q_cold = _med([q["cold_s"] for q in q_runs])
    af_cold = _med([a["cold_s"] for a in af_runs])
    af_warm = _med([a["warm_s"] for a in af_runs])
    cold_ratio = af_cold["median"] / q_cold["median"]
    warm_ratio = af_warm["median"] / q_cold["median"]
    one_cold = _med([o["cold_s"] for o in one_runs])
    one_warm = _med([o["warm_s"] for o in one_runs])
    one_cold_ratio = one_cold["median"] / q_cold["median"]
    one_warm_ratio = one_warm["median"] / q_cold["median"]
    ex_cold = _med([e["cold_s"] for e in ex_runs])
    ex_warm = _med([e["warm_s"] for e in ex_runs])
    expr_cold_ratio = ex_cold["median"] / q_cold["median"]
    expr_warm_ratio = ex_warm["median"] / q_cold["median"]
    return {
        "config": {
            "n_symbols": n_symbols,
            "bars_per_symbol": layout["calendar_days"],
            "features": [{"label": f[0], "plugin_key": f[1], "parameters": f[2], "column": f[3], "qlib": f[4],
                          "expression": EXPRESSIONS[f[0]]} for f in FEATURES],
            "range_alphaforge": [AF_START, AF_END],
            "range_qlib": [QLIB_START, QLIB_END],
            "data": "SYNTHETIC geometric random walk, seeded (bench.common.synthetic_series), daily OHLCV",
            "qlib": "fresh subprocess per run; qlib.init(region=REG_US, kernels=1, expression_cache=None, "
                    "dataset_cache=None); D.features(D.instruments('all'), 10 exprs); layout written by the "
                    "benchmark (not timed)",
            "alphaforge": "fresh subprocess + data dir per run; TestClient(create_app(Settings(embedded, "
                          "load_sample_data=False))); CSV uploads, universe, 10 definitions, 1 warm-up "
                          "generate (not timed); cold = 10 POST /features/{id}/panels (all pieces computed), "
                          "warm = the same 10 again (panel hits); expression mode: another fresh subprocess + data "
                          "dir, ONE automated.expression definition with the 10 formulas, cold = 1 POST "
                          "/features/{id}/panels, warm = the same again",
            "runs": len(q_runs),
            "runs_requested": runs,
            "qlib_python": qlib_python,
            "qlib_repeats_in_process": qlib_repeats,
            "statistic": "median over runs (Qlib and alphaforge runs alternate)",
            "timer": "time.perf_counter",
        },
        "qlib_version": q_runs[0]["qlib_version"],
        "qlib_layout": layout,
        "qlib_cold_s": q_cold,
        "qlib_cold_cleared_cache_same_process_s": _med([x for q in q_runs for x in q["repeat_cleared_s"]]),
        "qlib_in_memory_cache_s": _med([q["repeat_memcache_s"] for q in q_runs]),
        "qlib_init_s": _med([q["init_s"] for q in q_runs]),
        "qlib_frame_shape": q_runs[0]["shape"],
        "af_cold_s": af_cold,
        "af_warm_s": af_warm,
        "af_ingest_s": _med([a["ingest_s"] for a in af_runs]),
        "af_warmup_generate_s": _med([a["warmup_generate_s"] for a in af_runs]),
        "af_cold_per_feature_s": {k: _med([a["cold_per_feature_s"][k] for a in af_runs]) for k in af_runs[0]["cold_per_feature_s"]},
        "af_warm_per_feature_s": {k: _med([a["warm_per_feature_s"][k] for a in af_runs]) for k in af_runs[0]["warm_per_feature_s"]},
        "af_rows_per_panel": af_runs[0]["rows_per_panel"],
        "cold_ratio": cold_ratio,
        "warm_ratio": warm_ratio,
        "cold_target": COLD_TARGET,
        "warm_target": WARM_TARGET,
        "cold_met": cold_ratio <= COLD_TARGET,
        "warm_met": warm_ratio <= WARM_TARGET,
        "sanity": sanity,
        "af_one_cold_s": one_cold,
        "af_one_warm_s": one_warm,
        "one_cold_ratio": one_cold_ratio,
        "one_warm_ratio": one_warm_ratio,
        "one_cold_met": one_cold_ratio <= COLD_TARGET,
        "one_warm_met": one_warm_ratio <= WARM_TARGET,
        "sanity_one_request": sanity_one,
        "af_expr_cold_s": ex_cold,
        "af_expr_warm_s": ex_warm,
        "af_expr_ingest_s": _med([e["ingest_s"] for e in ex_runs]),
        "af_expr_rows_per_panel": ex_runs[0]["rows_per_panel"],
        "expr_cold_ratio": expr_cold_ratio,
        "expr_warm_ratio": expr_warm_ratio,
        "expr_cold_met": expr_cold_ratio <= COLD_TARGET,
        "expr_warm_met": expr_warm_ratio <= WARM_TARGET,
        "sanity_expression": sanity_expr,
        "runs_raw": {"qlib": q_runs, "alphaforge": af_runs, "alphaforge_one_request": one_runs,
                     "alphaforge_expression": ex_runs},
    }


def sci(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


def sanity_table(check: dict[str, Any]) -> str:
    rows = [[k, v["compared"], sci(v["max_abs_diff"]), sci(v["max_rel_diff"]), sci(v["median_rel_diff"]),
             v["median_abs_value"], v["qlib_only_values_in_warmup"], "yes" if v["ok"] else "NO"]
            for k, v in check["features"].items()]
    return table(rows, ["feature", "values", "max abs diff", "max rel diff", "median rel diff", "median |af|",
                        "Qlib-only values in warm-up", "ok"])


def _met(ratio: float, target: float) -> str:
    return f"{ratio:.3f} (target <= {target}: {'met' if ratio <= target else 'NOT met'})"


def report(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return f"{NAME}: skipped -- {result['skipped']}"
    cfg = result["config"]

    def runs(x: dict[str, Any]) -> str:
        return " / ".join(f"{v:.2f}" for v in x["per_run"])

    q = result["qlib_cold_s"]["median"]
    rows = [
        ["Qlib D.features, cold (fresh process, caches off)", result["qlib_cold_s"]["median"], runs(result["qlib_cold_s"]), 1.0],
        ["Qlib, cache H cleared, same process (extra)", result["qlib_cold_cleared_cache_same_process_s"]["median"],
         runs(result["qlib_cold_cleared_cache_same_process_s"]), result["qlib_cold_cleared_cache_same_process_s"]["median"] / q],
        ["Qlib, in-memory cache H kept (extra)", result["qlib_in_memory_cache_s"]["median"],
         runs(result["qlib_in_memory_cache_s"]), result["qlib_in_memory_cache_s"]["median"] / q],
        ["alphaforge 10 panels, cold", result["af_cold_s"]["median"], runs(result["af_cold_s"]), result["cold_ratio"]],
        ["alphaforge 10 panels, warm (all hits)", result["af_warm_s"]["median"], runs(result["af_warm_s"]), result["warm_ratio"]],
        ["alphaforge 10 panels in ONE request, cold", result["af_one_cold_s"]["median"], runs(result["af_one_cold_s"]),
         result["one_cold_ratio"]],
        ["alphaforge 10 panels in ONE request, warm", result["af_one_warm_s"]["median"], runs(result["af_one_warm_s"]),
         result["one_warm_ratio"]],
        ["alphaforge 1 expression panel (10 formulas), cold", result["af_expr_cold_s"]["median"],
         runs(result["af_expr_cold_s"]), result["expr_cold_ratio"]],
        ["alphaforge 1 expression panel, warm (a hit)", result["af_expr_warm_s"]["median"],
         runs(result["af_expr_warm_s"]), result["expr_warm_ratio"]],
    ]
    s, se = result["sanity"], result["sanity_expression"]
    per_feature = [[f["label"], f"{f['plugin_key']}{f['parameters']}", f["qlib"][:60],
                    result["af_cold_per_feature_s"][f["label"]]["median"], result["af_warm_per_feature_s"][f["label"]]["median"]]
                   for f in cfg["features"]]
    expressions = [[f["label"], f["expression"], f["qlib"]] for f in cfg["features"]]
    return "\n".join([
        f"{NAME}: {cfg['n_symbols']} SYNTHETIC symbols x {cfg['bars_per_symbol']} daily bars x 10 features; "
        f"Qlib {result['qlib_version']} vs alphaforge's panel API (embedded, TestClient); median of {cfg['runs']} runs",
        table(rows, ["what", "median s", "per run s", "/ Qlib cold"]),
        f"10 plugin definitions: cold alphaforge / Qlib = {_met(result['cold_ratio'], COLD_TARGET)}; "
        f"warm alphaforge / Qlib cold = {_met(result['warm_ratio'], WARM_TARGET)}",
        f"10 plugin definitions, one request (POST /features/panels): cold alphaforge / Qlib = "
        f"{_met(result['one_cold_ratio'], COLD_TARGET)}; warm alphaforge / Qlib cold = "
        f"{_met(result['one_warm_ratio'], WARM_TARGET)} (sanity check: "
        f"{'OK' if result['sanity_one_request']['ok'] else 'FAILED'})",
        f"1 expression definition: cold alphaforge / Qlib = {_met(result['expr_cold_ratio'], COLD_TARGET)}; "
        f"warm alphaforge / Qlib cold = {_met(result['expr_warm_ratio'], WARM_TARGET)}",
        f"not timed: Qlib layout write {result['qlib_layout']['write_s']:.1f} s, qlib.init {result['qlib_init_s']['median']:.2f} s; "
        f"alphaforge CSV upload of {cfg['n_symbols']} symbols {result['af_ingest_s']['median']:.1f} s, warm-up generate "
        f"{result['af_warmup_generate_s']['median']:.2f} s; Qlib frame {result['qlib_frame_shape']}, alphaforge panels "
        f"{sorted(set(result['af_rows_per_panel'].values()))} rows each",
        "",
        f"sanity check, 10 plugin definitions (first run; symbols {', '.join(s['symbols'])}; after "
        f"{s['warmup_skipped_bars']} bars; pass: |diff| <= {s['rtol']:g} |af| + {s['atol_scale']:g} median|af|): "
        f"{'OK' if s['ok'] else 'FAILED'}",
        sanity_table(s),
        "",
        f"sanity check, 1 expression definition (same symbols, bars, rule): {'OK' if se['ok'] else 'FAILED'}",
        sanity_table(se),
        "",
        "per feature (alphaforge, median s per panel request):",
        table(per_feature, ["feature", "alphaforge", "Qlib", "cold s", "warm s"]),
        "",
        "the expression mode's formulas (one automated.expression definition):",
        table(expressions, ["feature", "alphaforge expression", "Qlib"]),
    ])


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    if "skipped" in result:
        return [[NAME, "skipped (pyqlib not installed)", "-", "-", None]]
    n = result["config"]["runs"]
    return [
        [NAME, f"Qlib D.features 10 exprs, cold (median of {n})", f"{result['qlib_cold_s']['median']:.2f} s", "-", None],
        [NAME, "alphaforge 10 panels cold / Qlib cold", f"{result['cold_ratio']:.2f} "
         f"({result['af_cold_s']['median']:.1f} s)", f"<= {COLD_TARGET}", result["cold_met"]],
        [NAME, "alphaforge 10 panels warm / Qlib cold", f"{result['warm_ratio']:.3f} "
         f"({result['af_warm_s']['median']:.2f} s)", f"<= {WARM_TARGET}", result["warm_met"]],
        [NAME, "same features (sanity check vs Qlib)", "OK" if result["sanity"]["ok"] else "FAILED", "OK", result["sanity"]["ok"]],
        [NAME, "alphaforge 10 panels in one request cold / Qlib cold", f"{result['one_cold_ratio']:.2f} "
         f"({result['af_one_cold_s']['median']:.2f} s)", f"<= {COLD_TARGET}", result["one_cold_met"]],
        [NAME, "alphaforge 10 panels in one request warm / Qlib cold", f"{result['one_warm_ratio']:.3f} "
         f"({result['af_one_warm_s']['median']:.2f} s)", f"<= {WARM_TARGET}", result["one_warm_met"]],
        [NAME, "alphaforge 1 expression panel cold / Qlib cold", f"{result['expr_cold_ratio']:.2f} "
         f"({result['af_expr_cold_s']['median']:.1f} s)", f"<= {COLD_TARGET}", result["expr_cold_met"]],
        [NAME, "alphaforge 1 expression panel warm / Qlib cold", f"{result['expr_warm_ratio']:.3f} "
         f"({result['af_expr_warm_s']['median']:.2f} s)", f"<= {WARM_TARGET}", result["expr_warm_met"]],
        [NAME, "same features, expression mode (vs Qlib)", "OK" if result["sanity_expression"]["ok"] else "FAILED", "OK",
         result["sanity_expression"]["ok"]],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{NAME}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 symbols, 1 run")
    parser.add_argument("--symbols", type=int, help="synthetic symbols (default 100; --quick 10)")
    parser.add_argument("--runs", type=int, help="runs of each side (default 3; --quick 1)")
    parser.add_argument("--qlib-python", default=os.environ.get("QLIB_PYTHON") or sys.executable,
                        help="interpreter with pyqlib for the Qlib side (default: $QLIB_PYTHON, else this one)")
    parser.add_argument("--qlib-repeats", type=int, default=2,
                        help="extra D.features calls per Qlib process after clearing its in-memory cache (default 2)")
    parser.add_argument("--qlib-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--af-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--provider-uri", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sample", default="", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["plugins", "plugins_one", "expression"], default="plugins",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n_symbols = args.symbols or (10 if args.quick else 100)
    sample = [s for s in args.sample.split(",") if s]
    if args.qlib_worker:
        qlib_worker(args.provider_uri, args.qlib_worker, args.qlib_repeats, sample)
        return 0
    if args.af_worker:
        af_worker(args.af_worker, n_symbols, sample, args.mode)
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
    result = run(n_symbols, runs, args.qlib_python, args.qlib_repeats)
    path = write_results(NAME, result, quick=args.quick)
    print(report(result))
    log(f"results: {path}")
    if not (result["sanity"]["ok"] and result["sanity_expression"]["ok"]):
        which = " and ".join(w for w, k in (("the plugin definitions", "sanity"), ("the expression definition",
                                                                                   "sanity_expression"))
                             if not result[k]["ok"])
        log(f"FAILED: {which}' and Qlib's values disagree beyond float32 precision: the features are not the same")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
