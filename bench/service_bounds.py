"""Service bounds (issue 10, "safe to run as a shared service"): cancel latency, liveness
under load, and what API keys cost a cache-hit request.

Every figure comes from real servers in subprocesses on the embedded default (SQLite + file
object store in a fresh temp data directory, the bundled REAL GSPC sample, 2 task workers),
driven over HTTP by one ``httpx.Client`` per server (keep-alive, sequential requests,
``bench.common.api_headers()``). Timer: ``time.perf_counter`` around the client call.

1. **Cancel latency of a mid-fold training** (target <= 5 s). ``alphaforge serve``. Model
   ``ml.random_forest`` (2000 trees, fully grown, min_samples_leaf 1, 1 thread) on
   statistical.returns(1) + technical.rsi(14), GSPC 1999-2018, ``cv: {n_splits: 1}``: the
   single fold fits for about 20 s. ``POST /train/async``; ``GET /tasks/{id}`` every
   20 ms until STARTED with progress_message "fold 1 of 1" (inside the fold's fit); then
   ``POST /tasks/{id}/cancel`` and the wall time until ``GET /tasks/{id}`` says REVOKED
   (polled every 20 ms). The pool ends the worker process (kill + join) before it writes
   REVOKED, so the status time includes the process's end; the bench checks it: a process
   under the server that was there before the cancel is gone when REVOKED is read.
   ``--cancel-runs`` trainings in a row on one server; median, max.

2. **/health while the workers are busy** (target p99 < 100 ms). The same server. Each
   episode: an idle reference (``--idle-s`` of sequential ``GET /health``, then
   ``--gen-s`` of cache-hit generates: RSI 14, GSPC 1999-2018), then two slow trainings
   (the random forest above, 3 folds) and one tune (ml.lightgbm, 30 trials, 3 folds)
   submitted async: the trainings occupy both workers (checked: both STARTED before and
   still STARTED after the window), the tune waits in the queue. Then ``--load-s`` of
   ``GET /health`` and ``--gen-s`` of cache-hit generates under that load; then all three
   are cancelled and awaited. p50/p95/p99/max per episode; the figure is the median over
   ``--episodes`` episodes (the pooled and the worst episode's p99 are recorded too).

3. **What keys cost a cache-hit generate** (target <= 5 %). There is no setting that turns
   keys off, and there must be none. So four servers are started as subprocesses by this
   module (``--bench-app-server``), each running ``create_app(Settings())`` under
   ``uvicorn.run`` exactly as ``alphaforge serve`` does, each on its own fresh data directory:

   * ``with``: the product's app, unchanged;
   * ``without`` (BENCH ONLY): the ``Access`` entry of ``app.user_middleware`` replaced by
     ``BenchPrincipal``, which only hands the routes the admin principal (looked up once, at
     the first request) and binds it as the actor, which the routes need to run the same code;
   * ``keys_only`` (BENCH ONLY): the product's ``Access`` with its audit row left out, to
     split the cost between the checks and the audit write.
   * ``without_again`` (BENCH ONLY): the same as ``without`` (see below).

   The baseline (``without``) therefore leaves out, per request: reading the key from the
   headers, its SHA-256 and the key-cache lookup (a database read only when the 5 s cache
   entry has expired), the route-role lookup and check, and the AUDIT ENTRY (generate is a
   POST, so ``with`` records one per request: queued for the background writer, which
   inserts them in batches off the request path; a synchronous insert + commit per request
   cost +8 % here, which is why the writer is batched). Everything else (request id, host guard, body limit,
   routing, the route's code) is the same. The product is untouched; the bench-only apps
   exist only in this module. A fourth server, ``without_again``, is a second baseline: on
   this shared 2-core VM two identical servers differ by up to 10-20 % (the CPU time a hit
   takes in one process stays higher than in another for the life of the processes), so
   each run starts fresh servers, the figure is the median over runs, and this A/A figure
   says how large that noise was (the servers of a run start in a shuffled order). The same generate (RSI 14, GSPC 1999-2018)
   is warmed on each, then ``--rounds`` rounds of ``--hits`` hits per server, one request to
   each server in turn (in a fresh seeded random order each time: a request is faster right
   after its twin ran in another server, so a fixed cycle would favour one), so drifts in
   the machine's load hit all alike. Keys' cost of a run = pooled p50(with) / pooled p50(without) - 1; the figure
   is the median over ``--auth-runs`` runs, each on freshly started servers. Per-round
   ratios and the median paired difference are recorded too, and the audit rows each
   server holds are counted (``with``: one per generate; the others: none).

   To say where the cost goes, each piece of work ``Access`` adds is also timed in-process
   (the product's functions, a fresh SQLite database): in a tight loop (``warm``) and with a
   cache hit's own Parquet read and preview before each call (``between hits``, as in the
   server, where the hit's work has pushed SQLAlchemy's code and data out of the CPU caches).

4. The machine, a CPU calibration and the load average at start and end are recorded
   (``bench.common.write_results``); other work sharing the 2 cores makes tails longer, and
   a high load is called out in the report.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import (
    REPO_ROOT,
    SEED,
    Server,
    api_headers,
    machine_info,
    machine_line,
    percentile,
    start_calibration,
    table,
    write_results,
)

NAME = "service_bounds"
TARGET_CANCEL_S = 5.0
TARGET_HEALTH_P99_MS = 100.0
TARGET_AUTH_OVERHEAD = 0.05
#: A 1-minute load average above this (the machine has 2 cores) is called out in the report.
HIGH_LOAD = 1.0
TASK_POLL_S = 0.02

SYMBOL = "GSPC"
RANGE = ("1999-01-01", "2019-01-01")
FEATURES = [("statistical.returns", {"period": 1}), ("technical.rsi", {"period": 14})]
HIT_FEATURE = ("technical.rsi", {"period": 14})
FOREST = {"n_estimators": 2000, "max_depth": None, "min_samples_leaf": 1}
TUNE_PLUGIN = "ml.lightgbm"
TUNE_TRIALS = 30
LOAD_FOLDS = 3
FINISHED = ("SUCCESS", "FAILURE", "REVOKED")


# -- HTTP helpers -----------------------------------------------------------------------


def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=120.0, trust_env=False, headers=api_headers())


def _ok(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    return response.json()


def _create_feature(client: httpx.Client, key: str, params: dict[str, Any]) -> str:
    body = {"name": f"bench {key} {params}", "type": key.split(".", 1)[0], "plugin_key": key, "parameters": params}
    return _ok(client.post("/api/v1/features", json=body), f"create feature {key}")["id"]


def _generate(client: httpx.Client, feature_id: str) -> tuple[float, bool]:
    """One generate: (seconds, cached)."""
    body = {"symbol": SYMBOL, "start_date": RANGE[0], "end_date": RANGE[1]}
    t0 = time.perf_counter()
    response = client.post(f"/api/v1/features/{feature_id}/generate", json=body)
    dt = time.perf_counter() - t0
    return dt, bool(_ok(response, "generate")["cached"])


def _warm_hit_feature(client: httpx.Client) -> str:
    """A feature whose generate is a cache hit from now on (the first one computes)."""
    fid = _create_feature(client, *HIT_FEATURE)
    _generate(client, fid)
    for _ in range(20):
        if not _generate(client, fid)[1]:
            raise RuntimeError("a repeated generate was not a cache hit")
    return fid


def _dataset(feature_ids: list[str]) -> dict[str, Any]:
    return {"feature_ids": feature_ids, "symbol": SYMBOL, "start_date": RANGE[0], "end_date": RANGE[1],
            "target_horizon": 1}


def _create_forest(client: httpx.Client, name: str) -> str:
    body = {"name": name, "model_type": "ml.random_forest", "family": "machine_learning", "parameters": FOREST}
    return _ok(client.post("/api/v1/models", json=body), "create model")["id"]


def _train_async(client: httpx.Client, model_id: str, feature_ids: list[str], n_splits: int) -> str:
    body = {"dataset": _dataset(feature_ids), "cv": {"method": "expanding", "n_splits": n_splits}}
    return _ok(client.post(f"/api/v1/models/{model_id}/train/async", json=body), "train/async")["task_id"]


def _tune_async(client: httpx.Client, feature_ids: list[str]) -> str:
    body = {"plugin_key": TUNE_PLUGIN, "dataset": _dataset(feature_ids), "n_trials": TUNE_TRIALS,
            "cv": {"method": "expanding", "n_splits": LOAD_FOLDS}}
    return _ok(client.post("/api/v1/models/tune/async", json=body), "tune/async")["task_id"]


def _task(client: httpx.Client, task_id: str) -> dict[str, Any]:
    return _ok(client.get(f"/api/v1/tasks/{task_id}"), f"GET task {task_id}")


def _wait_task(client: httpx.Client, task_id: str, done: Any, timeout_s: float, what: str) -> dict[str, Any]:
    """Poll every ``TASK_POLL_S`` until ``done(task)``; a task that finishes otherwise is an error."""
    deadline = time.monotonic() + timeout_s
    while True:
        task = _task(client, task_id)
        if done(task):
            return task
        if task["status"] in FINISHED:
            raise RuntimeError(f"{what}: task {task_id} ended {task['status']} first: {task.get('error')}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: task {task_id} not there after {timeout_s:.0f} s (last: {task['status']}, "
                               f"{task['progress_message']!r})")
        time.sleep(TASK_POLL_S)


def _descendants(pid: int) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


def _stats_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1e3 for s in seconds]
    return {"n": len(ms), "p50_ms": statistics.median(ms), "p95_ms": percentile(ms, 95),
            "p99_ms": percentile(ms, 99), "max_ms": max(ms)}


# -- 1. cancel latency ---------------------------------------------------------------------


def measure_cancel(server: Server, client: httpx.Client, feature_ids: list[str], runs: int) -> list[dict[str, Any]]:
    model_id = _create_forest(client, "bench cancel forest")
    out = []
    for i in range(runs):
        t_submit = time.perf_counter()
        task_id = _train_async(client, model_id, feature_ids, n_splits=1)
        _wait_task(client, task_id, lambda t: t["status"] == "STARTED" and t["progress_message"] == "fold 1 of 1",
                   300, "reach the fold")
        t_fold = time.perf_counter()
        before = _descendants(server.pid)
        t0 = time.perf_counter()
        answered = _ok(client.post(f"/api/v1/tasks/{task_id}/cancel"), "cancel")
        t_answer = time.perf_counter()
        final = _wait_task(client, task_id, lambda t: t["status"] == "REVOKED", 60, "revoke")
        t1 = time.perf_counter()
        gone = sorted(before - _descendants(server.pid))
        run = {
            "task_id": task_id,
            "submit_to_fold_s": t_fold - t_submit,
            "cancel_request_ms": (t_answer - t0) * 1e3,
            "status_after_cancel_request": answered["status"],
            "cancel_to_revoked_s": t1 - t0,
            "error": final["error"],
            "processes_gone_at_revoked": gone,
            "worker_gone_at_revoked": bool(gone),
        }
        out.append(run)
        print(f"[{NAME}] cancel {i + 1}/{runs}: fold reached {run['submit_to_fold_s']:.1f} s after submit; "
              f"REVOKED {run['cancel_to_revoked_s']:.2f} s after the cancel request "
              f"(worker process gone: {run['worker_gone_at_revoked']})", flush=True)
    return out


# -- 2. /health under load --------------------------------------------------------------------


def _sample_health(client: httpx.Client, seconds: float) -> list[float]:
    samples = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        response = client.get("/health")
        samples.append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise RuntimeError(f"/health: HTTP {response.status_code}")
    return samples


def _sample_hits(client: httpx.Client, feature_id: str, seconds: float) -> list[float]:
    samples = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        dt, cached = _generate(client, feature_id)
        if not cached:
            raise RuntimeError("a generate under load was not a cache hit")
        samples.append(dt)
    return samples


def _started(client: httpx.Client) -> list[dict[str, Any]]:
    return _ok(client.get("/api/v1/tasks", params={"status": "STARTED", "include_children": "true"}), "list tasks")


def measure_load_episode(client: httpx.Client, feature_ids: list[str], hit_id: str, models: list[str],
                         idle_s: float, load_s: float, gen_s: float) -> dict[str, Any]:
    if _started(client):
        raise RuntimeError("a task is still running before the idle reference")
    idle = {"health": _sample_health(client, idle_s), "hit": _sample_hits(client, hit_id, gen_s)}
    trainings = [_train_async(client, m, feature_ids, n_splits=LOAD_FOLDS) for m in models]
    tune = _tune_async(client, feature_ids)
    for task_id in trainings:
        _wait_task(client, task_id, lambda t: t["status"] == "STARTED", 120, "training start")
    busy_before = len(_started(client))
    t0 = time.perf_counter()
    loaded = {"health": _sample_health(client, load_s), "hit": _sample_hits(client, hit_id, gen_s)}
    window_s = time.perf_counter() - t0
    statuses = {"train_a": _task(client, trainings[0])["status"], "train_b": _task(client, trainings[1])["status"],
                "tune": _task(client, tune)["status"]}
    held = statuses["train_a"] == statuses["train_b"] == "STARTED"
    for task_id in (*trainings, tune):
        response = client.post(f"/api/v1/tasks/{task_id}/cancel")
        if response.status_code not in (200, 409):  # 409: it finished meanwhile
            _ok(response, "cancel")
    for task_id in (*trainings, tune):
        _wait_task(client, task_id, lambda t: t["status"] in FINISHED, 120, "end after cancel")
    deadline = time.monotonic() + 60  # the tune's trial shards end with their parent
    while _started(client) and time.monotonic() < deadline:
        time.sleep(0.2)
    return {
        "idle": {k: _stats_ms(v) for k, v in idle.items()},
        "loaded": {k: _stats_ms(v) for k, v in loaded.items()},
        "raw_ms": {phase: {k: [round(x * 1e3, 3) for x in v] for k, v in d.items()}
                   for phase, d in (("idle", idle), ("loaded", loaded))},
        "tasks_started_before_window": busy_before,
        "statuses_after_window": statuses,
        "window_s": window_s,
        "load_held": held,
        "loadavg_1min_after_window": os.getloadavg()[0],
    }


# -- 3. keys' cost on a cache hit --------------------------------------------------------

#: The servers of part 3: the product's app, and two bench-only variants of it.
VARIANTS = ("with", "keys_only", "without", "without_again")


class BenchPrincipal:
    """BENCH ONLY, never in the product: stands where ``Access`` stands and hands every
    /api/ request the admin principal (looked up once) and binds it as the actor: what
    the routes need to run, without the key check, the role check and the audit row."""

    def __init__(self, app: Any, settings: Any) -> None:
        self.app = app
        self.key = settings.admin_api_key.get_secret_value()
        self.principal: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from starlette.concurrency import run_in_threadpool

        from alphaforge import actor

        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        if self.principal is None:
            self.principal = await run_in_threadpool(scope["app"].state.ctx.keys.authenticate, self.key)
        scope.setdefault("state", {})["principal"] = self.principal
        token = actor.bind(self.principal.key_id)
        try:
            await self.app(scope, receive, send)
        finally:
            actor.unbind(token)


def _access_without_audit() -> type:
    """BENCH ONLY: the product's ``Access`` (key and role checks) minus the audit row, to
    split the keys' cost between the checks and the audit write."""
    from alphaforge.api.middleware import Access

    class AccessWithoutAudit(Access):
        @staticmethod
        def _audited(ctx: Any, scope: Any, principal: Any, send: Any) -> Any:
            return send

    return AccessWithoutAudit


def serve_bench_app(variant: str, port: int) -> int:
    """A server of part 3: ``alphaforge serve``'s app and uvicorn call; for the bench-only
    variants, the ``Access`` entry of ``app.user_middleware`` swapped before the first request."""
    import uvicorn
    from starlette.middleware import Middleware

    from alphaforge import logs
    from alphaforge.api.app import create_app
    from alphaforge.api.middleware import Access
    from alphaforge.settings import Settings

    logs.configure()
    settings = Settings()
    app = create_app(settings)
    stand_in = {"with": None, "keys_only": _access_without_audit(), "without": BenchPrincipal,
                "without_again": BenchPrincipal}[variant]
    if stand_in is not None:
        swapped = [Middleware(stand_in, settings=settings) if m.cls is Access else m for m in app.user_middleware]
        if sum(m.cls is stand_in for m in swapped) != 1:
            raise RuntimeError("the app has no single Access middleware to swap; update the bench")
        app.user_middleware = swapped
    uvicorn.run(app, host="127.0.0.1", port=port)
    return 0


def _bench_app_command(variant: str) -> Any:
    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "bench.service_bounds", "--bench-app-server", variant, "--port", str(port)]

    return command


def _auth_run(rounds: int, hits: int, rng: random.Random) -> tuple[dict[str, list[list[float]]], dict[str, int]]:
    """One set of freshly started servers: per variant, each round's hit times (s)."""
    dirs = {v: Path(tempfile.mkdtemp(prefix=f"alphaforge-bench-auth-{v}-")) for v in VARIANTS}
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    samples: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
    try:
        with ExitStack() as stack:
            started = rng.sample(VARIANTS, len(VARIANTS))  # start order shuffled too: no variant always last
            servers = {v: stack.enter_context(Server(dirs[v], env=env, command=_bench_app_command(v)))
                       for v in started}
            clients = {v: stack.enter_context(_client(servers[v])) for v in VARIANTS}
            hit_ids = {v: _warm_hit_feature(clients[v]) for v in VARIANTS}
            for v in VARIANTS:  # warm each path
                for _ in range(50):
                    _generate(clients[v], hit_ids[v])
            order = list(VARIANTS)
            for r in range(rounds):  # one request to each server in turn: drifts in load hit all alike
                blocks: dict[str, list[float]] = {v: [] for v in VARIANTS}
                for _ in range(hits):
                    # A fresh order each time: a request runs faster right after the same code
                    # ran in another server (shared library pages warm in the CPU caches), so
                    # a fixed cycle would favour whichever server follows its twin.
                    rng.shuffle(order)
                    for v in order:
                        dt, cached = _generate(clients[v], hit_ids[v])
                        if not cached:
                            raise RuntimeError(f"{v}: a repeated generate was not a cache hit")
                        blocks[v].append(dt)
                for v in VARIANTS:
                    samples[v].append(blocks[v])
                print(f"[{NAME}] auth round {r + 1}/{rounds}: p50 " + ", ".join(
                    f"{v} {statistics.median(blocks[v]) * 1e3:.2f}" for v in VARIANTS) + " ms", flush=True)
            audit_rows = {v: _audit_generate_rows(clients[v]) for v in VARIANTS}
    finally:
        for d in dirs.values():
            shutil.rmtree(d, ignore_errors=True)
    return samples, audit_rows


def measure_auth_overhead(runs: int, rounds: int, hits: int) -> dict[str, Any]:
    """``runs`` sets of fresh servers (identical servers differ by a few percent from one
    start to the next: ``without_again`` shows by how much); per run, each variant's pooled
    p50 against the baseline's; the figure is the median over runs."""
    per_run = []
    rng = random.Random(SEED)
    for i in range(runs):
        print(f"[{NAME}] auth run {i + 1}/{runs} (fresh servers)", flush=True)
        samples, audit_rows = _auth_run(rounds, hits, rng)
        pooled = {v: _stats_ms([x for b in samples[v] for x in b]) for v in VARIANTS}
        base = samples["without"]
        run: dict[str, Any] = {"p50_ms": {v: pooled[v]["p50_ms"] for v in VARIANTS}, "pooled": pooled,
                               "audit_rows_of_generate": audit_rows}
        for v in (x for x in VARIANTS if x != "without"):
            paired = [(a - b) * 1e3 for ba, bb in zip(samples[v], base) for a, b in zip(ba, bb)]
            run[f"{v}_vs_without"] = {
                "overhead_p50": pooled[v]["p50_ms"] / pooled["without"]["p50_ms"] - 1,
                "overhead_p50_ms": pooled[v]["p50_ms"] - pooled["without"]["p50_ms"],
                "ratio_p50_per_round": [statistics.median(a) / statistics.median(b) for a, b in zip(samples[v], base)],
                "paired_difference_median_ms": statistics.median(paired),
            }
        per_run.append(run)
        print(f"[{NAME}] auth run {i + 1}/{runs}: " + ", ".join(
            f"{v} {run[f'{v}_vs_without']['overhead_p50'] * 100:+.1f} %" for v in VARIANTS if v != "without")
            + " vs without (p50)", flush=True)

    def median_of(v: str, key: str) -> float:
        return statistics.median(r[f"{v}_vs_without"][key] for r in per_run)

    out: dict[str, Any] = {
        "runs": runs,
        "rounds_per_run": rounds,
        "hits_per_round": hits,
        "generate_requests_per_server": 1 + 20 + 50 + rounds * hits,
        "p50_ms_median_of_runs": {v: statistics.median(r["p50_ms"][v] for r in per_run) for v in VARIANTS},
        **{f"{v}_vs_without": {k: median_of(v, k) for k in
                               ("overhead_p50", "overhead_p50_ms", "paired_difference_median_ms")}
           for v in VARIANTS if v != "without"},
        "per_run": per_run,
    }
    out["met"] = out["with_vs_without"]["overhead_p50"] <= TARGET_AUTH_OVERHEAD
    return out


def measure_auth_components(n: int) -> dict[str, dict[str, float]]:
    """In-process, no HTTP: the median microseconds of each piece of work ``Access`` adds to
    a POST, called with the product's own functions on a fresh SQLite database (mirrors
    api/middleware.py ``Access``; update it if that changes). Twice: ``warm`` (called in a
    tight loop, everything in the CPU caches) and ``between_hits`` (each call preceded by
    the bulk of a cache hit's own work: reading a 20-year dataset's Parquet bytes and
    building its preview, as the server does between two audit rows)."""
    import uuid

    from starlette.datastructures import Headers

    from alphaforge.api.app import create_app
    from alphaforge.api.security import presented_key, role_needed, route_roles
    from alphaforge.auth import audit
    from alphaforge.auth.keys import KeyStore
    from alphaforge.auth.roles import Role
    from alphaforge.features.generation import preview_records
    from alphaforge.settings import Settings
    from alphaforge.storage.db import Database
    from alphaforge.storage.migrate import upgrade
    from alphaforge.storage.parquet import from_parquet_bytes, to_parquet_bytes

    from bench.common import synthetic_series

    tmp = Path(tempfile.mkdtemp(prefix="alphaforge-bench-auth-parts-"))
    key = api_headers()["Authorization"].split(" ", 1)[1]
    try:
        settings = Settings(data_dir=tmp, database_url=None, admin_api_key=key, load_sample_data=False)
        upgrade(settings.resolved_database_url)
        db = Database(settings.resolved_database_url)
        keys = KeyStore(db, key)
        principal = keys.authenticate(key)
        assert principal is not None
        roles = route_roles(create_app(settings).routes)
        headers = Headers(headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
        path = f"/api/v1/features/{uuid.uuid4()}/generate"
        entry = audit.Entry(key_id=principal.key_id, role=principal.role.value, method="POST", path=path,
                            status_code=200, request_id=uuid.uuid4().hex, client="127.0.0.1")
        blob = to_parquet_bytes(synthetic_series(0).frame())

        def hit_work() -> None:
            preview_records(from_parquet_bytes(blob))

        def check_key() -> None:
            found = presented_key(headers)
            assert found is not None and (keys.cached(found) or keys.authenticate(found)) is not None

        def med_us(fn: Any, between: bool) -> float:
            fn()
            samples = []
            for _ in range(n):
                if between:
                    hit_work()
                t0 = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - t0)
            return statistics.median(samples) * 1e6

        writer = audit.AuditWriter(db)

        def batch_write_per_entry() -> float:
            """The background writer's cost per entry, in a batch of 100 (off the request path)."""
            for _ in range(100):
                writer.record(entry)
            t0 = time.perf_counter()
            writer.flush()
            return (time.perf_counter() - t0) / 100 * 1e6

        out: dict[str, dict[str, float]] = {}
        for label, between in (("warm", False), ("between_hits", True)):
            parts = {
                "key: header + SHA-256 + cache lookup": med_us(check_key, between),
                "role: route-role lookup + check": med_us(
                    lambda: principal.role.allows(role_needed(roles, "POST", path) or Role.READ), between),
                "audit: entry queued (AuditWriter.record)": med_us(lambda: writer.record(entry), between),
            }
            parts["sum"] = sum(parts.values())
            parts["audit: background batch write per entry (not on the request path)"] = batch_write_per_entry()
            out[label] = parts
        writer.close()
        db.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _audit_generate_rows(client: httpx.Client) -> int:
    """Audit rows of generate requests the server holds (the check that ``with`` wrote one
    per POST and the others none)."""
    count, skip = 0, 0
    while True:
        page = _ok(client.get("/api/v1/audit", params={"limit": 1000, "skip": skip}), "audit")
        count += sum(e["path"].endswith("/generate") for e in page)
        if len(page) < 1000:
            return count
        skip += 1000


# -- the run ------------------------------------------------------------------------------


def run(cancel_runs: int, episodes: int, idle_s: float, load_s: float, gen_s: float, rounds: int,
        hits: int, auth_runs: int, component_n: int) -> dict[str, Any]:
    loadavg: dict[str, Any] = {"start": os.getloadavg()}
    data_dir = Path(tempfile.mkdtemp(prefix="alphaforge-bench-bounds-"))
    try:
        with Server(data_dir, env={"ALPHAFORGE_TASK_WORKERS": "2"}) as server, _client(server) as client:
            print(f"[{NAME}] server on {server.base_url} answered after {server.startup_s:.1f} s", flush=True)
            feature_ids = [_create_feature(client, k, p) for k, p in FEATURES]
            hit_id = _warm_hit_feature(client)
            cancels = measure_cancel(server, client, feature_ids, cancel_runs)
            loadavg["after_cancel"] = os.getloadavg()
            models = [_create_forest(client, f"bench load forest {x}") for x in "ab"]
            episodes_out = []
            for i in range(episodes):
                ep = measure_load_episode(client, feature_ids, hit_id, models, idle_s, load_s, gen_s)
                episodes_out.append(ep)
                print(f"[{NAME}] episode {i + 1}/{episodes}: /health p99 idle {ep['idle']['health']['p99_ms']:.1f} ms, "
                      f"loaded {ep['loaded']['health']['p99_ms']:.1f} ms (n={ep['loaded']['health']['n']}, max "
                      f"{ep['loaded']['health']['max_ms']:.0f} ms); hit p99 idle {ep['idle']['hit']['p99_ms']:.1f}, "
                      f"loaded {ep['loaded']['hit']['p99_ms']:.1f} ms; load held: {ep['load_held']}; "
                      f"load average {ep['loadavg_1min_after_window']:.2f}", flush=True)
            loadavg["after_load"] = os.getloadavg()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    auth = measure_auth_overhead(auth_runs, rounds, hits)
    auth["components_us"] = measure_auth_components(component_n)
    loadavg["end"] = os.getloadavg()

    cancel_s = [c["cancel_to_revoked_s"] for c in cancels]

    def across(phase: str, kind: str) -> dict[str, Any]:
        per = [ep[phase][kind] for ep in episodes_out]
        pooled = _stats_ms([x / 1e3 for ep in episodes_out for x in ep["raw_ms"][phase][kind]])
        return {
            **{f"median_{k}": statistics.median(p[k] for p in per) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
            "worst_p99_ms": max(p["p99_ms"] for p in per),
            "p99_ms_per_episode": [p["p99_ms"] for p in per],
            "n_per_episode": [p["n"] for p in per],
            "pooled": pooled,
        }

    health_loaded = across("loaded", "health")
    return {
        "config": {
            "server": "alphaforge serve (uvicorn, 1 process), subprocess; embedded default, fresh temp data dir, "
                      "2 task workers",
            "client": "httpx.Client, one keep-alive connection per server, sequential requests",
            "cancel": {"model": "ml.random_forest", "parameters": FOREST, "features": FEATURES, "symbol": SYMBOL,
                       "range": RANGE, "cv": {"method": "expanding", "n_splits": 1}, "poll_s": TASK_POLL_S,
                       "runs": cancel_runs},
            "load": {"trainings": 2, "training_folds": LOAD_FOLDS, "tune": {"plugin_key": TUNE_PLUGIN,
                     "n_trials": TUNE_TRIALS, "folds": LOAD_FOLDS}, "episodes": episodes, "idle_s": idle_s,
                     "load_s": load_s, "generate_hit_s": gen_s, "hit_feature": HIT_FEATURE},
            "auth": {"servers": "three subprocesses running create_app + uvicorn.run like alphaforge serve: 'with' "
                                "the product's app; bench only: 'keys_only' (Access minus the audit row), "
                                "'without' (Access swapped for BenchPrincipal)",
                     "baseline_leaves_out": "key header parse + SHA-256 + key-cache lookup, route-role lookup and "
                                            "check, the audit row (threadpool hop + insert + commit) of the POST",
                     "runs": auth_runs, "rounds_per_run": rounds, "hits_per_round": hits,
                     "order": "one request to each server in turn, a fresh seeded random order each turn"},
            "targets": {"cancel_s": TARGET_CANCEL_S, "health_p99_ms": TARGET_HEALTH_P99_MS,
                        "auth_overhead": TARGET_AUTH_OVERHEAD},
        },
        "loadavg": loadavg,
        "high_load": max(v[0] for v in loadavg.values()) > HIGH_LOAD,
        "cancel": {
            "runs": cancels,
            "median_s": statistics.median(cancel_s),
            "max_s": max(cancel_s),
            "worker_gone_every_run": all(c["worker_gone_at_revoked"] for c in cancels),
            "met": statistics.median(cancel_s) <= TARGET_CANCEL_S,
        },
        "health": {
            "idle": across("idle", "health"),
            "loaded": health_loaded,
            "load_held_every_episode": all(ep["load_held"] for ep in episodes_out),
            "met": health_loaded["median_p99_ms"] < TARGET_HEALTH_P99_MS,
        },
        "generate_hit": {"idle": across("idle", "hit"), "loaded": across("loaded", "hit")},
        "episodes": episodes_out,
        "auth": auth,
    }


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    c, h, g, a = result["cancel"], result["health"], result["generate_hit"], result["auth"]
    hl, hi = h["loaded"], h["idle"]
    wv, kv, aa = a["with_vs_without"], a["keys_only_vs_without"], a["without_again_vs_without"]
    p50 = a["p50_ms_median_of_runs"]
    per_request_us = a["components_us"]["between_hits"]["sum"]  # key + role + audit entry queued
    return [
        [NAME, f"cancel mid-fold -> REVOKED, median / max ({len(c['runs'])} runs)",
         f"{c['median_s']:.2f} / {c['max_s']:.2f} s", f"<= {TARGET_CANCEL_S:.0f} s", c["met"]],
        [NAME, "/health under load p50 / p95 / p99 / max (median of episodes)",
         f"{hl['median_p50_ms']:.1f} / {hl['median_p95_ms']:.1f} / {hl['median_p99_ms']:.1f} / "
         f"{hl['median_max_ms']:.0f} ms", f"p99 < {TARGET_HEALTH_P99_MS:.0f} ms", h["met"]],
        [NAME, "/health idle p50 / p95 / p99 / max",
         f"{hi['median_p50_ms']:.1f} / {hi['median_p95_ms']:.1f} / {hi['median_p99_ms']:.1f} / "
         f"{hi['median_max_ms']:.0f} ms", "-", None],
        [NAME, "generate hit p50 / p99, idle -> under load",
         f"{g['idle']['median_p50_ms']:.1f} / {g['idle']['median_p99_ms']:.1f} -> "
         f"{g['loaded']['median_p50_ms']:.1f} / {g['loaded']['median_p99_ms']:.1f} ms", "-", None],
        [NAME, f"generate hit p50 with keys / baseline (median of {a['runs']} runs)",
         f"{p50['with']:.2f} / {p50['without']:.2f} ms ({wv['overhead_p50'] * 100:+.1f} %, "
         f"{wv['overhead_p50_ms']:+.2f} ms)", f"<= {TARGET_AUTH_OVERHEAD * 100:.0f} %", a["met"]],
        [NAME, "  keys without the audit row (keys_only) / baseline",
         f"{p50['keys_only']:.2f} ms ({kv['overhead_p50'] * 100:+.1f} %)", "-", None],
        [NAME, "  A/A: a second identical baseline / baseline",
         f"{p50['without_again']:.2f} ms ({aa['overhead_p50'] * 100:+.1f} %)", "-", None],
        [NAME, "  keys' work per request in-process (key, role, audit entry), between hits",
         f"{per_request_us:.0f} us ({per_request_us / 1000 / p50['without'] * 100:.1f} % of a hit)", "-", None],
    ]


def report(result: dict[str, Any]) -> str:
    c, a = result["cancel"], result["auth"]
    rows = [[r[1], r[2], r[3], "-" if r[4] is None else ("yes" if r[4] else "NO")] for r in summary_rows(result)]
    out = [table(rows, ["measure", "value", "target", "met"]), ""]
    out.append("cancel -> REVOKED per run (s): " + ", ".join(f"{r['cancel_to_revoked_s']:.2f}" for r in c["runs"])
               + f"; worker process gone at REVOKED every run: {c['worker_gone_every_run']}")
    for phase in ("idle", "loaded"):
        for kind in ("health", "hit"):
            src = result["health" if kind == "health" else "generate_hit"][phase]
            out.append(f"{kind:6s} {phase:6s} p99 per episode (ms): "
                       + ", ".join(f"{x:.1f}" for x in src["p99_ms_per_episode"])
                       + f"; pooled p99 {src['pooled']['p99_ms']:.1f}, worst episode {src['worst_p99_ms']:.1f}")
    out.append(f"load held (both trainings STARTED before and after each window): "
               f"{result['health']['load_held_every_episode']}")
    for i, run in enumerate(a["per_run"]):
        out.append(f"keys' cost run {i + 1}: p50 " + ", ".join(f"{v} {x:.2f}" for v, x in run["p50_ms"].items())
                   + " ms; audit rows of generate " + ", ".join(f"{v} {n}" for v, n in run["audit_rows_of_generate"].items())
                   + f" (of {a['generate_requests_per_server']} generates each)")
        for v in (x for x in VARIANTS if x != "without"):
            x = run[f"{v}_vs_without"]
            out.append(f"    {v} vs without: {x['overhead_p50'] * 100:+.1f} % ({x['overhead_p50_ms']:+.2f} ms); per round "
                       + ", ".join(f"{r:.3f}" for r in x["ratio_p50_per_round"])
                       + f"; median paired difference {x['paired_difference_median_ms']:+.2f} ms")
    comp = a["components_us"]
    out.append(table([[k, comp["warm"][k], comp["between_hits"][k]] for k in comp["warm"]],
                     ["keys' work per POST, in-process", "warm us", "between hits us"]))
    la = result["loadavg"]
    out.append("load average (1 min): " + ", ".join(f"{k} {v[0]:.2f}" for k, v in la.items()))
    if result["high_load"]:
        out.append(f"NOTE: the load average went above {HIGH_LOAD:.1f} on 2 cores: other work shared the machine, "
                   "so tails are longer than on a quiet one")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.service_bounds", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 cancels, 1 episode of short windows, 1 x 2 x 50 hits")
    parser.add_argument("--cancel-runs", type=int, help="trainings cancelled mid-fold (default 5)")
    parser.add_argument("--episodes", type=int, help="load episodes (default 5)")
    parser.add_argument("--load-s", type=float, help="seconds of /health under load per episode (default 20)")
    parser.add_argument("--idle-s", type=float, help="seconds of idle /health per episode (default 10)")
    parser.add_argument("--gen-s", type=float, help="seconds of cache-hit generates per phase (default 8)")
    parser.add_argument("--auth-runs", type=int, help="sets of fresh servers, keys' cost (default 5)")
    parser.add_argument("--rounds", type=int, help="rounds per set, keys' cost (default 2)")
    parser.add_argument("--hits", type=int, help="hits per server and round (default 150)")
    parser.add_argument("--bench-app-server", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bench_app_server:
        return serve_bench_app(args.bench_app_server, args.port)
    q = args.quick
    print(f"[{NAME}] machine: {machine_line(machine_info())}", flush=True)
    if os.getloadavg()[0] > HIGH_LOAD:
        print(f"[{NAME}] NOTE: load average {os.getloadavg()[0]:.2f} at start: other work shares the cores", flush=True)
    start_calibration()
    result = run(
        cancel_runs=args.cancel_runs or (2 if q else 5),
        episodes=args.episodes or (1 if q else 5),
        idle_s=args.idle_s or (4.0 if q else 10.0),
        load_s=args.load_s or (6.0 if q else 20.0),
        gen_s=args.gen_s or (3.0 if q else 8.0),
        rounds=args.rounds or 2,
        hits=args.hits or (50 if q else 150),
        auth_runs=args.auth_runs or (1 if q else 5),
        component_n=300 if q else 2000,
    )
    path = write_results(NAME, result, quick=q)
    print(report(result))
    print(f"[{NAME}] results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
