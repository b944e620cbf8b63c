"""Tuning: Optuna bookkeeping per trial, parallel trial shards (1 vs 2 workers), pruning.

Data: the bundled REAL daily GSPC bars (1999-2018, ``arch`` sample data) and the same 10
feature definitions (14 columns) as ``bench.train_overhead``; target the 1-bar forward
return; CV the request default (rolling, 5 splits, test_size 0.15). The feature-dataset
cache is warmed before anything is timed.

1. bookkeeping: Optuna's own cost per trial with a trivial objective (ask, suggest one
   float, tell it back: the ask/tell loop ``run_trials`` uses), on
     memory      ``InMemoryStorage`` (the floor),
     sqlite      the embedded storage exactly as alphaforge opens it
                 (``studies.storage(Settings(data_dir=tmp).resolved_optuna_storage_url)``:
                 optuna.db, WAL, synchronous=NORMAL),
     postgresql  a fresh database on 127.0.0.1:5432 (user postgres), opened the same way
                 (``Settings(database_url=...)``: schema ``optuna``); dropped at the end,
   each with a seeded ``RandomSampler`` (bookkeeping alone) and with alphaforge's own
   trial-seeded TPE (``constant_liar``; its cost grows with the trials already stored).
   Median over repeats (``--repeats``; TPE rows ``--tpe-repeats``) of N trials in a fresh
   study; trials/s and ms/trial.
   Then alphaforge's full per-trial overhead: ``tuner.run_trials_on`` (data assembled
   beforehand) with ``ml.ridge`` on a tiny dataset (GSPC 2017-2018, 2 features), pruner
   none, MLflow child run per trial, on the embedded backend and on PostgreSQL (the
   MLflow store is the embedded SQLite one on both). The bench wraps ``tuner._fold_scores``
   and ``tracker.log_trial`` (no product code edited) to split each trial into model
   work / MLflow child run / the rest (Optuna storage, TPE, stop checks, progress).

2. parallel: a tune of ``ml.lightgbm`` through the real asynchronous path, as
   ``POST /models/tune/async`` does it: ``check_tune_request``, ``create_study``, then
   ``tasks.submit`` of a parent ``tune`` task with one ``tune_trials`` shard per worker, on
   a context from ``start_context(Settings(data_dir=tmp, task_workers=N))`` (embedded
   executor: a pool of worker processes forked from a fork server); the task row is polled (every 0.1 s) until
   it has finished. Both contexts share one data dir and live side by side. Pruner none
   and a fixed-cost space (n_estimators 100 and num_leaves 31 fixed; learning_rate,
   min_child_samples, colsample_bytree, reg_lambda sampled), so both runs do the same work.
     cold   the first tune on a fresh pool: worker spawn, imports (optuna, lightgbm,
            MLflow) and first connections are inside the wall time;
     warm   later tunes on the same pool (what a running service sees): the repeats.
   Wall time: from ``check_tune_request`` to the parent task's SUCCESS seen by the poll.
   From the study's trial timestamps: start-up (submit -> first trial start), trial span
   (first trial start -> last trial end), finalize (last trial end -> SUCCESS), the sum of
   trial durations and the workers' busy share (sum / (N x span)).
   The speed-up compared with the target (>= 1.7) is median warm wall(1) / median warm wall(2).

3. pruning: the synchronous ``tuner.tune`` (in this process) with each pruner of ``PRUNERS``
   (none, the fold-wise median, the default fold-wise percentile, Optuna's WilcoxonPruner, the
   fold-wise rule at 25 % from fold 2), same n_trials and space as 2, once per seed
   (``--pruning-seeds``, default 5, from ``--pruning-seed-start``; the pruners' order rotates): per seed the wall time over no pruning's, the same for this
   process's CPU time (all its threads: less swayed by other work on a shared machine), the
   folds run and each pruner's best score; the median wall ratio is compared with the target
   (<= 0.70). Then the median rule is replayed on the first seed's
   unpruned study's per-fold scores (``replay_pruning``): Optuna's ``MedianPruner`` rule,
   and a per-step variant, with the folds each would have saved.

4. listing: a study of 10,000 trials seeded straight into Optuna's tables (three bulk
   inserts: running them would take minutes), read through ``tuning.catalog`` (what
   ``GET /api/v1/studies/{id}/trials`` serves): first pages by number, by score, by state, a
   page deep in the study, every trial page by page, the summary; beside Optuna's
   ``Study.get_trials`` of all of them. Embedded and PostgreSQL; median of ``--repeats``.

5. scale: a default ``ml.ridge`` tune of 1,000 trials on GSPC 1999-2018 (the tiny
   dataset's 2 features) through the asynchronous path on PostgreSQL with 1 and 2 worker
   processes (a 20-trial tune first starts each pool): wall time and trials/s.

The cyclic GC is collected before, and off during, every timed sample of 1 and 3 (the
tunes of 2 run in worker processes). Before timing, the bench waits (polling every 15 s,
up to ``--max-wait`` s) for the 1-minute load average to drop below 0.7; the load at the
start and end of each section is recorded (from then on the bench's own work is in it).
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
from bench.train_overhead import FEATURES

NAME = "tuning"
TARGET_SPEEDUP = 1.7
SYMBOL = "GSPC"
START = "1999-01-01"
END = "2019-01-01"
HORIZON = 1
SEED = 0
LOAD_THRESHOLD = 0.7
TASK_POLL_S = 0.1
POSTGRES_ADMIN_URL = os.environ.get("ALPHAFORGE_BENCH_POSTGRES_URL",
                                    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

#: The tiny dataset of the run_trials overhead figure (ml.ridge): 2 features, 2 years.
TINY_FEATURES: list[tuple[str, dict[str, Any]]] = [("statistical.returns", {"period": 1}),
                                                   ("technical.rsi", {"period": 14})]
TINY_START, TINY_END = "2017-01-01", "2019-01-01"

#: ml.lightgbm with a fixed-cost space: the trees and leaves are fixed, so a trial costs
#: about the same whatever is sampled and the 1- and 2-worker runs do the same work.
LGBM_FIXED = {"n_estimators": 100, "num_leaves": 31}
LGBM_SPACE = {
    "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
    "min_child_samples": {"type": "int", "low": 10, "high": 60},
    "colsample_bytree": {"type": "float", "low": 0.5, "high": 1.0},
    "reg_lambda": {"type": "float", "low": 0.0, "high": 10.0},
}


def log(message: str) -> None:
    print(f"[{NAME}] {message}", flush=True)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def load_now() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- PostgreSQL: a database of our own -----------------------------------------------------


class ScratchPostgres:
    """Creates databases on the server at ``admin_url`` and drops them (FORCE) at close."""

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy import create_engine, text

        self.admin_url = admin_url
        self.engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []
        with self.engine.connect() as conn:
            self.version = str(conn.execute(text("SHOW server_version")).scalar())
            self.settings = {name: str(conn.execute(text(f"SHOW {name}")).scalar())
                             for name in ("synchronous_commit", "fsync", "shared_buffers")}

    def new_database(self) -> str:
        from sqlalchemy import text
        from sqlalchemy.engine import make_url

        name = f"alphaforge_bench_{uuid.uuid4().hex[:12]}"
        with self.engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.engine.dispose()


def open_postgres() -> tuple[ScratchPostgres | None, str | None]:
    try:
        return ScratchPostgres(POSTGRES_ADMIN_URL), None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable": the rows say skipped
        from alphaforge.tracking import redact_uri

        return None, f"{redact_uri(POSTGRES_ADMIN_URL)}: {str(exc).strip().splitlines()[0][:200]}"


# -- shared set-up -------------------------------------------------------------------------


def create_features(ctx: Any, features: list[tuple[str, dict[str, Any]]]) -> list[uuid.UUID]:
    from alphaforge.schemas.features import FeatureCreate
    from alphaforge.features.definitions import create_feature

    return [
        create_feature(ctx, FeatureCreate(name=f"bench tuning {k} {p} {uuid.uuid4().hex[:6]}", type=k.split(".")[0],
                                          plugin_key=k, parameters=p)).id
        for k, p in features
    ]


def lgbm_request(feature_ids: list[uuid.UUID], n_trials: int, pruner: str, seed: int = SEED) -> Any:
    from alphaforge.schemas.models import DatasetSpec
    from alphaforge.schemas.tuning import TuneRequest

    return TuneRequest(
        plugin_key="ml.lightgbm",
        dataset=DatasetSpec(feature_ids=feature_ids, symbol=SYMBOL, start_date=START, end_date=END,
                            target_horizon=HORIZON),
        param_space=LGBM_SPACE, fixed_params=LGBM_FIXED, n_trials=n_trials, pruner=pruner, seed=seed,
    )


def section_load(out: dict[str, Any], key: str) -> None:
    out.setdefault("loadavg_1_5_15", {})[key] = load_now()


# -- 1. bookkeeping ------------------------------------------------------------------------


def trivial_trials(storage: Any, n_trials: int, sampler: Any) -> float:
    """Seconds for ``n_trials`` ask / suggest_float / tell in a fresh study (creation untimed)."""
    import optuna

    study = optuna.create_study(storage=storage, sampler=sampler, study_name=f"bench-{uuid.uuid4().hex}",
                                direction="minimize")

    def loop() -> None:
        for _ in range(n_trials):
            trial = study.ask()
            study.tell(trial, trial.suggest_float("x", 0.0, 1.0))

    return time_once(loop)


@contextmanager
def trial_parts(ctx: Any) -> Iterator[dict[str, float]]:
    """Seconds spent in ``tuner._fold_scores`` (model work) and ``tracker.log_trial``/``log_trials`` (MLflow)."""
    from alphaforge.tuning import tuner

    acc = {"model_s": 0.0, "mlflow_s": 0.0}
    fold_scores, log_trial, log_trials = tuner._fold_scores, ctx.tracker.log_trial, ctx.tracker.log_trials

    def timed(fn: Callable[..., Any], key: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[key] += time.perf_counter() - t0

        return wrapper

    tuner._fold_scores = timed(fold_scores, "model_s")  # type: ignore[attr-defined]
    ctx.tracker.log_trial = timed(log_trial, "mlflow_s")
    ctx.tracker.log_trials = timed(log_trials, "mlflow_s")  # child runs in batches (one write on a database store)
    try:
        yield acc
    finally:
        tuner._fold_scores = fold_scores  # type: ignore[attr-defined]
        del ctx.tracker.log_trial
        del ctx.tracker.log_trials


def run_trials_overhead(ctx: Any, n_trials: int, repeats: int) -> dict[str, Any]:
    """alphaforge's own per-trial cost: run_trials_on with ml.ridge on a tiny dataset."""
    from alphaforge.schemas.models import DatasetSpec
    from alphaforge.schemas.tuning import TuneRequest
    from alphaforge.training import trainer
    from alphaforge.training.assembly import assemble_training_data
    from alphaforge.tuning import tuner

    ids = create_features(ctx, TINY_FEATURES)
    request = TuneRequest(
        plugin_key="ml.ridge",
        dataset=DatasetSpec(feature_ids=ids, symbol=SYMBOL, start_date=TINY_START, end_date=TINY_END,
                            target_horizon=HORIZON),
        n_trials=n_trials, pruner="none", seed=SEED,
    )
    tuner.check_tune_request(ctx, request)
    data = assemble_training_data(ctx, request.dataset)
    folds = trainer.folds_for(request.cv, request.dataset.target_horizon, len(data.y))
    # warm-up study (imports, MLflow experiment, first connections): untimed
    warm = request.model_copy(update={"n_trials": 3})
    name = tuner.create_study(ctx, warm, f"bench-{uuid.uuid4().hex}")
    tuner.run_trials_on(ctx, warm, name, data, folds)
    tuner.tune_result(ctx, warm, name)
    storage = tuner._storage(ctx)
    space = tuner.resolve_plan(request).space
    samples = []
    for _ in range(repeats):
        # Optuna alone on the same storage, sampler and space (ask, suggest ridge's 2 parameters,
        # tell): the floor alphaforge's bookkeeping is compared with, side by side.
        alone = time_once(lambda: optuna_alone(storage, space, n_trials))
        name = tuner.create_study(ctx, request, f"bench-{uuid.uuid4().hex}")
        with trial_parts(ctx) as acc:
            total = time_once(lambda name=name: tuner.run_trials_on(ctx, request, name, data, folds))
        result = tuner.tune_result(ctx, request, name)
        if result.n_complete != n_trials:
            raise AssertionError(f"ridge study: {result.n_complete} of {n_trials} trials complete")
        samples.append({"total_s": total, "optuna_alone_s": alone, **acc})
    per = {k: _median([s[k] for s in samples]) / n_trials * 1e3
           for k in ("total_s", "model_s", "mlflow_s", "optuna_alone_s")}
    return {
        "n_rows": int(len(data.y)), "n_columns": int(data.X.shape[1]), "n_trials": n_trials, "repeats": repeats,
        "samples": [{k: round(v, 4) for k, v in s.items()} for s in samples],
        "ms_per_trial": per["total_s"],
        "trials_per_s": 1e3 / per["total_s"],
        "model_ms_per_trial": per["model_s"],
        "mlflow_ms_per_trial": per["mlflow_s"],
        "rest_ms_per_trial": per["total_s"] - per["model_s"] - per["mlflow_s"],
        "optuna_alone_ms_per_trial": per["optuna_alone_s"],
        # what alphaforge adds per trial beyond the model and Optuna's own bookkeeping
        "beyond_optuna_ms_per_trial": per["total_s"] - per["model_s"] - per["optuna_alone_s"],
    }


def optuna_alone(storage: Any, space: dict[str, Any], n_trials: int) -> None:
    """A fresh study of ``n_trials`` with alphaforge's sampler: ask, sample ``space``, tell."""
    import optuna

    from alphaforge.tuning import search_space, tuner

    study = optuna.create_study(storage=storage, sampler=tuner._trial_seeded_tpe(SEED),
                                study_name=f"bench-alone-{uuid.uuid4().hex}", direction="minimize")
    for i in range(n_trials):
        trial = study.ask()
        search_space.sample(trial, space)
        study.tell(trial, float(i % 7))


def bench_bookkeeping(n_trials: int, repeats: int, tpe_repeats: int, ridge_trials: int, ridge_repeats: int,
                      pg: ScratchPostgres | None, pg_skip: str | None) -> dict[str, Any]:
    import optuna

    from alphaforge.bootstrap import start_context
    from alphaforge.tuning import studies
    from alphaforge.tuning import tuner
    from alphaforge.settings import Settings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: dict[str, Any] = {"n_trials": n_trials, "repeats": repeats, "tpe_repeats": tpe_repeats, "trivial": {},
                           "run_trials": {}}
    section_load(out, "start")
    tmp = Path(tempfile.mkdtemp(prefix="alphaforge-bench-tuning-bk-"))
    try:
        storages: dict[str, Callable[[], Any]] = {
            "memory": lambda: optuna.storages.InMemoryStorage(),
            "sqlite": lambda: studies.storage(Settings(data_dir=tmp / "sqlite").resolved_optuna_storage_url),
        }
        pg_url = None
        if pg is not None:
            pg_url = pg.new_database()
            storages["postgresql"] = lambda: studies.storage(
                Settings(data_dir=tmp / "pg", database_url=pg_url).resolved_optuna_storage_url)
        samplers: dict[str, Callable[[], Any]] = {
            "random": lambda: optuna.samplers.RandomSampler(seed=SEED),
            "alphaforge_tpe": lambda: tuner._trial_seeded_tpe(SEED),
        }
        for backend, make_storage in storages.items():
            storage = make_storage()
            trivial_trials(storage, 5, samplers["random"]())  # warm-up: connections, first statements
            for sampler_name, make_sampler in samplers.items():
                n_runs = repeats if sampler_name == "random" else tpe_repeats
                runs = [trivial_trials(storage, n_trials, make_sampler()) for _ in range(n_runs)]
                med = _median(runs)
                out["trivial"][f"{backend}/{sampler_name}"] = {
                    "backend": backend, "sampler": sampler_name, "runs_s": [round(r, 4) for r in runs], "runs": n_runs,
                    "median_s": med, "trials_per_s": n_trials / med, "ms_per_trial": med / n_trials * 1e3,
                }
                log(f"trivial objective, {backend}, {sampler_name}: {n_trials / med:,.0f} trials/s "
                    f"({med / n_trials * 1e3:.2f} ms/trial, median of {n_runs} x {n_trials})")
        if pg is None:
            out["trivial"]["postgresql"] = {"skipped": pg_skip}
            log(f"PostgreSQL skipped: {pg_skip}")

        # alphaforge's own per-trial overhead (run_trials_on, ridge, MLflow child runs)
        backends: dict[str, Any] = {"embedded": Settings(data_dir=tmp / "ctx-embedded")}
        if pg_url is not None:
            backends["postgresql"] = Settings(data_dir=tmp / "ctx-pg", database_url=pg_url)
        for backend, settings in backends.items():
            ctx = start_context(settings)
            try:
                row = run_trials_overhead(ctx, ridge_trials, ridge_repeats)
            finally:
                ctx.close()
            out["run_trials"][backend] = row
            log(f"run_trials ml.ridge ({row['n_rows']} rows x {row['n_columns']}), {backend}: "
                f"{row['ms_per_trial']:.1f} ms/trial ({row['trials_per_s']:.1f} trials/s): model "
                f"{row['model_ms_per_trial']:.1f}, MLflow {row['mlflow_ms_per_trial']:.1f}, rest "
                f"{row['rest_ms_per_trial']:.1f} ms; Optuna alone {row['optuna_alone_ms_per_trial']:.1f} ms, beyond "
                f"it and the model {row['beyond_optuna_ms_per_trial']:.1f} ms")
        if pg is None:
            out["run_trials"]["postgresql"] = {"skipped": pg_skip}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    section_load(out, "end")
    return out


# -- 2. parallel shards ----------------------------------------------------------------------


def async_tune(ctx: Any, request: Any) -> dict[str, Any]:
    """The tune_async route's steps, then poll the parent task until it has finished."""
    import optuna

    from alphaforge.tuning import studies
    from alphaforge.tasks import service as tasks
    from alphaforge.tuning import tuner
    from alphaforge.tasks.runner import FINISHED, SUCCESS, status_of

    t0 = time.time()
    tuner.check_tune_request(ctx, request)
    study_name = tuner.create_study(ctx, request, f"tune-{uuid.uuid4().hex}")
    body = {"study_name": study_name, "body": request.model_dump(mode="json")}
    shards = max(1, min(ctx.settings.task_workers, request.n_trials))
    t_submit = time.time()
    parent = tasks.submit(ctx, "tune", body, [("tune_trials", body)] * shards)
    while status_of(ctx, parent.id) not in FINISHED:
        time.sleep(TASK_POLL_S)
    t_end = time.time()
    task = tasks.get_task(ctx, parent.id)
    if task.status != SUCCESS:
        raise RuntimeError(f"tune task ended {task.status}: {task.error_type}: {task.error_message}")
    study = optuna.load_study(study_name=study_name, storage=studies.storage(ctx.settings.resolved_optuna_storage_url))
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(tuner.SURPLUS)]
    starts = [t.datetime_start.timestamp() for t in trials]
    ends = [t.datetime_complete.timestamp() for t in trials]
    durations = [e - s for s, e in zip(starts, ends)]
    span = max(ends) - min(starts)
    result = task.result or {}
    return {
        "workers": shards,
        "wall_s": t_end - t0,
        "submit_to_success_s": t_end - t_submit,
        "check_and_create_study_s": t_submit - t0,
        "startup_s": min(starts) - t_submit,
        "trial_span_s": span,
        "finalize_s": t_end - max(ends),
        "trial_duration_sum_s": sum(durations),
        "trial_duration_median_s": _median(durations),
        "busy_share": sum(durations) / (shards * span),
        "n_trials": len(trials),
        "n_complete": result.get("n_complete"),
        "n_failed": result.get("n_failed"),
        "best_score": result.get("best_score"),
    }


def bench_parallel(tmp: Path, n_trials: int, repeats: int, workers: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    from alphaforge.bootstrap import start_context
    from alphaforge.training.assembly import assemble_training_data
    from alphaforge.settings import Settings

    out: dict[str, Any] = {"n_trials": n_trials, "repeats": repeats, "workers": list(workers)}
    section_load(out, "start")
    contexts = {n: start_context(Settings(data_dir=tmp, task_workers=n)) for n in workers}
    try:
        feature_ids = create_features(contexts[workers[0]], FEATURES)
        request = lgbm_request(feature_ids, n_trials, "none")
        data = assemble_training_data(contexts[workers[0]], request.dataset)  # warms the dataset cache
        out["dataset"] = {"n_rows": int(len(data.y)), "n_columns": int(data.X.shape[1])}
        runs: dict[int, dict[str, list[dict[str, Any]]]] = {n: {"cold": [], "warm": []} for n in workers}
        for n in workers:  # cold: the first tune of each fresh pool
            r = async_tune(contexts[n], request)
            runs[n]["cold"].append(r)
            log(f"{n} worker(s), cold pool: wall {r['wall_s']:.1f} s (start-up {r['startup_s']:.1f} s, trials "
                f"{r['trial_span_s']:.1f} s, finalize {r['finalize_s']:.2f} s)")
        for rep in range(repeats):  # warm: alternate which goes first
            for n in (workers if rep % 2 == 0 else tuple(reversed(workers))):
                r = async_tune(contexts[n], request)
                runs[n]["warm"].append(r)
                log(f"{n} worker(s), warm pool, repeat {rep + 1}: wall {r['wall_s']:.1f} s (start-up "
                    f"{r['startup_s']:.2f} s, trials {r['trial_span_s']:.1f} s, busy {r['busy_share']:.2f})")
    finally:
        for ctx in contexts.values():
            ctx.close()

    keys = ("wall_s", "submit_to_success_s", "check_and_create_study_s", "startup_s", "trial_span_s", "finalize_s",
            "trial_duration_sum_s", "trial_duration_median_s", "busy_share")
    summary = {}
    for n in workers:
        summary[n] = {
            "cold": runs[n]["cold"][0],
            "warm_median": {k: _median([r[k] for r in runs[n]["warm"]]) for k in keys},
            "warm_runs": runs[n]["warm"],
        }
    one, two = summary[workers[0]], summary[workers[-1]]
    out.update(
        per_workers={str(n): s for n, s in summary.items()},
        speedup_warm_wall=one["warm_median"]["wall_s"] / two["warm_median"]["wall_s"],
        speedup_warm_trial_span=one["warm_median"]["trial_span_s"] / two["warm_median"]["trial_span_s"],
        speedup_warm_paired=[a["wall_s"] / b["wall_s"]
                             for a, b in zip(runs[workers[0]]["warm"], runs[workers[-1]]["warm"])],
        speedup_cold_wall=one["cold"]["wall_s"] / two["cold"]["wall_s"],
        speedup_cold_trial_span=one["cold"]["trial_span_s"] / two["cold"]["trial_span_s"],
        trial_duration_inflation=(two["warm_median"]["trial_duration_sum_s"]
                                  / one["warm_median"]["trial_duration_sum_s"]),
        target_speedup=TARGET_SPEEDUP,
        compared_with_target="speedup_warm_wall: median warm-pool wall time (check_tune_request -> parent SUCCESS), "
                             "1 worker / 2 workers",
    )
    out["meets_target"] = out["speedup_warm_wall"] >= TARGET_SPEEDUP
    section_load(out, "end")
    return out


# -- 3. pruning ----------------------------------------------------------------------------


def fold_scores_of(ctx: Any, study_name: str, metric: str) -> list[list[float]]:
    """Each finished trial's per-fold scores (the metric's fold key), in trial-number order."""
    import optuna

    from alphaforge.tuning import studies
    from alphaforge.tuning import tuner

    fold_key = tuner.METRICS[metric][0]
    study = optuna.load_study(study_name=study_name, storage=studies.storage(ctx.settings.resolved_optuna_storage_url))
    out = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        folds = (t.user_attrs.get(tuner.RESULT) or {}).get("folds") or []
        if t.state.name == "COMPLETE" and folds:
            out.append([float(f[fold_key]) for f in folds])
    return out


def replay_pruning(fold_scores: list[list[float]], minimize: bool, rule: str) -> dict[str, Any]:
    """Replay the median rule on the unpruned study's trials (in trial order, as a sequential
    study meets them): the score reported at fold k is the metric over folds 0..k, as
    ``tuner._evaluate`` reports it; the startup trials, warm-up step and "never after the last
    fold" are tuning's. ``rule``: "optuna" = ``MedianPruner`` (the trial's BEST reported value
    over its steps so far vs the median of the completed trials at this step), "per_step" = the
    trial's value AT this step vs that median. The same trials are replayed: a real pruned
    study would then sample differently (TPE sees the pruned trials)."""
    from alphaforge.tuning import tuner

    n_folds = len(fold_scores[0]) if fold_scores else 0
    running = [[statistics.fmean(f[: k + 1]) for k in range(len(f))] for f in fold_scores]
    completed: list[list[float]] = []
    pruned_at: list[int | None] = []
    for values in running:
        stop = None
        if len(completed) >= tuner.PRUNER_STARTUP_TRIALS:
            for step in range(tuner.FOLD_RULES["median"][1], n_folds - 1):
                median = statistics.median(c[step] for c in completed)
                own = values[step] if rule == "per_step" else (min if minimize else max)(values[: step + 1])
                if (own > median) if minimize else (own < median):
                    stop = step
                    break
        pruned_at.append(stop)
        if stop is None:
            completed.append(values)
    finals = [v[-1] for v in running]
    best = (min if minimize else max)(range(len(finals)), key=lambda i: finals[i]) if finals else None
    folds_run = sum(n_folds if s is None else s + 1 for s in pruned_at)
    return {
        "rule": rule,
        "n_pruned": sum(s is not None for s in pruned_at),
        "folds_run": folds_run,
        "folds_total": n_folds * len(fold_scores),
        "fold_share_saved": 1 - folds_run / max(1, n_folds * len(fold_scores)),
        "best_trial_survives": best is not None and pruned_at[best] is None,
    }


#: The pruners compared: (label, request's pruner, tuner constants set for it). "percentile"
#: is the default (the best 40 % from fold 1), "median" the default before; the last row is
#: the fold-wise rule at 25 % from fold 2, which ran as few folds but lost the best in 2 of 5
#: seeds when the default was chosen.
PRUNERS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("none", "none", {}), ("median", "median", {}), ("percentile", "percentile", {}),
    ("wilcoxon p0.15", "wilcoxon", {"WILCOXON_P_THRESHOLD": 0.15}),
    ("best 25% from fold 2", "percentile", {"FOLD_RULES": {"percentile": (25.0, 1), "median": (50.0, 1)}}),
)
#: Target of issue 17: a pruner's wall time <= this share of no pruning's.
TARGET_PRUNING_RATIO = 0.70


def bench_pruning(tmp: Path, n_trials: int, seeds: int, seed_start: int = 0) -> dict[str, Any]:
    """Each pruner's synchronous tune (this process) on the same study, once per seed
    (0 .. seeds-1), the order of the pruners rotating from seed to seed; the wall-time ratio
    to no pruning per seed, and the best score of each."""
    from alphaforge.bootstrap import start_context
    from alphaforge.tuning import tuner
    from alphaforge.training.assembly import assemble_training_data
    from alphaforge.settings import Settings

    out: dict[str, Any] = {"n_trials": n_trials, "seeds": list(range(seed_start, seed_start + seeds)),
                           "pruners": [label for label, _, _ in PRUNERS]}
    section_load(out, "start")
    ctx = start_context(Settings(data_dir=tmp, task_workers=1))
    defaults = {name: getattr(tuner, name) for _, _, constants in PRUNERS for name in constants}
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in PRUNERS}
    try:
        feature_ids = create_features(ctx, FEATURES)
        assemble_training_data(ctx, lgbm_request(feature_ids, n_trials, "none").dataset)  # warms the dataset cache
        tuner.tune(ctx, lgbm_request(feature_ids, 2, "none"))  # warm-up: imports, MLflow
        fold_scores_none: list[list[float]] = []
        for seed in out["seeds"]:
            order = PRUNERS[seed % len(PRUNERS):] + PRUNERS[: seed % len(PRUNERS)]
            for label, pruner, constants in order:
                for name, value in {**defaults, **constants}.items():
                    setattr(tuner, name, value)
                request = lgbm_request(feature_ids, n_trials, pruner, seed)
                box: dict[str, Any] = {}
                cpu0 = time.process_time()  # this process's CPU (all its threads): less swayed by others' load
                wall = time_once(lambda request=request, box=box: box.update(r=tuner.tune(ctx, request)))
                cpu = time.process_time() - cpu0
                r = box["r"]
                runs[label].append({"seed": seed, "wall_s": wall, "cpu_s": cpu, "load_1m": load_now()[0],
                                    "best_score": r.best_score, "best_trial": r.best_trial, "n_pruned": r.n_pruned,
                                    "folds_evaluated": sum(t.folds_evaluated for t in r.trials)})
                if pruner == "none" and seed == seed_start:
                    fold_scores_none = fold_scores_of(ctx, r.study_name, r.metric)
                    out["metric"] = r.metric
                log(f"seed {seed}, pruner {label}: {wall:.1f} s (CPU {cpu:.1f} s), best {r.metric} {r.best_score:.6g}, "
                    f"{r.n_pruned} pruned, {runs[label][-1]['folds_evaluated']} folds, load {load_now()[0]}")
    finally:
        for name, value in defaults.items():
            setattr(tuner, name, value)
        ctx.close()
    none = runs["none"]
    for label, _, _ in PRUNERS:
        rows = runs[label]
        ratios = [r["wall_s"] / n["wall_s"] for r, n in zip(rows, none)]
        cpu_ratios = [r["cpu_s"] / n["cpu_s"] for r, n in zip(rows, none)]
        best_diff = [abs(r["best_score"] - n["best_score"]) / abs(n["best_score"]) for r, n in zip(rows, none)]
        out[label] = {
            "runs": rows,
            "wall_ratio_per_seed": ratios,
            "wall_ratio_median": _median(ratios),
            "wall_ratio_total": sum(r["wall_s"] for r in rows) / sum(n["wall_s"] for n in none),
            "cpu_ratio_per_seed": cpu_ratios,
            "cpu_ratio_median": _median(cpu_ratios),
            "best_score_rel_diff_per_seed": best_diff,
            "same_best_seeds": sum(d == 0 for d in best_diff),
            "n_pruned_median": _median([r["n_pruned"] for r in rows]),
            "folds_evaluated_total": sum(r["folds_evaluated"] for r in rows),
            "meets_target": _median(ratios) <= TARGET_PRUNING_RATIO,
        }
    out["target_ratio"] = TARGET_PRUNING_RATIO
    minimize = tuner.resolve_objective(out.get("metric", "mean_mse")).direction == "minimize"
    out["replay_on_unpruned_study"] = {
        rule: replay_pruning(fold_scores_none, minimize, rule) for rule in ("optuna", "per_step")
    }
    section_load(out, "end")
    return out


# -- 4. listing a large study --------------------------------------------------------------


def seed_study(ctx: Any, n_trials: int) -> int:
    """A study of ``n_trials`` finished trials written into Optuna's tables with three bulk
    inserts (running them would take minutes); its id. States 60/30/10 % complete / pruned /
    failed, scores uniform in [0, 1), a result attribute like a real trial's."""
    import json
    import random

    import optuna
    from optuna.storages._rdb import models
    from sqlalchemy import insert, select

    from alphaforge.tuning import tuner

    storage = tuner._storage(ctx)
    study = optuna.create_study(storage=storage, study_name=f"bench-list-{uuid.uuid4().hex}")
    rng = random.Random(SEED)
    states = [rng.choices(("COMPLETE", "PRUNED", "FAIL"), (6, 3, 1))[0] for _ in range(n_trials)]
    trials, values, attrs = (models.TrialModel.__table__, models.TrialValueModel.__table__,
                             models.TrialUserAttributeModel.__table__)
    with storage.engine.begin() as conn:
        conn.execute(insert(trials), [{"number": n, "study_id": study._study_id, "state": optuna.trial.TrialState[st]}
                                      for n, st in enumerate(states)])
        ids = conn.execute(select(trials.c.trial_id).where(trials.c.study_id == study._study_id)
                           .order_by(trials.c.number)).scalars().all()
        conn.execute(insert(values), [{"trial_id": i, "objective": 0, "value": rng.random(),
                                       "value_type": models.TrialValueModel.TrialValueType.FINITE}
                                      for i, st in zip(ids, states) if st != "FAIL"])
        folds = [{"fold": k, "mse": 1e-4, "mae": 1e-2} for k in range(5)]
        conn.execute(insert(attrs), [{"trial_id": i, "key": tuner.RESULT,
                                      "value_json": json.dumps({"params": {"alpha": 1.0}, "folds": folds})}
                                     for i in ids])
    return int(study._study_id)


def bench_listing(tmp: Path, n_trials: int, repeats: int, pg: ScratchPostgres | None, pg_skip: str | None
                  ) -> dict[str, Any]:
    """``GET /studies/{id}/trials``' service function on a seeded study: a first page by
    number, by score, filtered by state, the whole study page by page, and the summary; beside
    Optuna's ``Study.get_trials`` (what a response listing every trial used to read)."""
    import optuna

    from alphaforge.bootstrap import start_context
    from alphaforge.settings import Settings
    from alphaforge.tuning import catalog, tuner

    out: dict[str, Any] = {"n_trials": n_trials, "repeats": repeats, "backends": {}}
    section_load(out, "start")
    backends: dict[str, Any] = {"embedded": Settings(data_dir=tmp / "embedded")}
    if pg is not None:
        backends["postgresql"] = Settings(data_dir=tmp / "pg", database_url=pg.new_database())
    else:
        out["backends"]["postgresql"] = {"skipped": pg_skip}
    for backend, settings in backends.items():
        ctx = start_context(settings)
        try:
            study_id = seed_study(ctx, n_trials)
            name = catalog.get_study(ctx, study_id).study_name

            def walk(study_id: int = study_id) -> None:
                offset: int | None = 0
                while offset is not None:
                    offset = catalog.list_trials(ctx, study_id, 1000, offset).next_offset

            cases: dict[str, Callable[[], Any]] = {
                "first page of 100, by number": lambda: catalog.list_trials(ctx, study_id, 100, 0),
                "page of 100 at offset 9,000, by number": lambda: catalog.list_trials(ctx, study_id, 100, 9000),
                "first page of 100, by score desc": lambda: catalog.list_trials(ctx, study_id, 100, 0, "score", "desc"),
                "first page of 100, state PRUNED": lambda: catalog.list_trials(ctx, study_id, 100, 0, states=["PRUNED"]),
                "every trial, pages of 1,000": walk,
                "study summary": lambda: catalog.get_study(ctx, study_id),
                "optuna Study.get_trials (all)": lambda: optuna.load_study(
                    study_name=name, storage=tuner._storage(ctx)).get_trials(deepcopy=False),
            }
            row = {}
            for label, call in cases.items():
                call()  # warm: connections, statement caches
                runs = [time_once(call) for _ in range(repeats)]
                row[label] = {"median_ms": _median(runs) * 1e3, "runs_ms": [round(r * 1e3, 2) for r in runs]}
                log(f"listing {n_trials:,} trials, {backend}: {label}: {_median(runs) * 1e3:.1f} ms")
            out["backends"][backend] = row
        finally:
            ctx.close()
    section_load(out, "end")
    return out


# -- 5. a 1,000-trial ridge study end to end -------------------------------------------------


def bench_scale(tmp: Path, n_trials: int, pg: ScratchPostgres | None, pg_skip: str | None,
                workers: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    """A default ``ml.ridge`` tune (its default space and pruner) of ``n_trials`` on
    GSPC 1999-2018 with the tiny dataset's 2 features, through the asynchronous path on
    PostgreSQL, with 1 and then 2 worker processes: wall time (check -> the parent task's
    SUCCESS) and trials/s. Each pool runs a 20-trial tune first (untimed: worker start-up)."""
    from alphaforge.bootstrap import start_context
    from alphaforge.schemas.models import DatasetSpec
    from alphaforge.schemas.tuning import TuneRequest
    from alphaforge.settings import Settings
    from alphaforge.training.assembly import assemble_training_data

    out: dict[str, Any] = {"n_trials": n_trials, "workers": list(workers), "runs": {}}
    if pg is None:
        return {**out, "skipped": pg_skip}
    section_load(out, "start")
    url = pg.new_database()
    for n in workers:
        ctx = start_context(Settings(data_dir=tmp / "scale", database_url=url, task_workers=n))
        try:
            ids = create_features(ctx, TINY_FEATURES)
            request = TuneRequest(plugin_key="ml.ridge", n_trials=n_trials, seed=SEED, dataset=DatasetSpec(
                feature_ids=ids, symbol=SYMBOL, start_date=START, end_date=END, target_horizon=HORIZON))
            out["n_rows"] = int(len(assemble_training_data(ctx, request.dataset).y))
            async_tune(ctx, request.model_copy(update={"n_trials": 20}))  # warm-up: the pool's workers start
            r = async_tune(ctx, request)
        finally:
            ctx.close()
        r["trials_per_s"] = r["n_trials"] / r["wall_s"]
        r["trials_per_s_in_span"] = r["n_trials"] / r["trial_span_s"]
        out["runs"][str(n)] = r
        log(f"{n_trials}-trial ridge tune, {n} worker(s), PostgreSQL: wall {r['wall_s']:.1f} s = "
            f"{r['trials_per_s']:.1f} trials/s (trials span {r['trial_span_s']:.1f} s, finalize {r['finalize_s']:.1f} s)")
    section_load(out, "end")
    return out


# -- the benchmark ------------------------------------------------------------------------


def run(*, quick: bool, wait: bool, max_wait_s: float, sections: list[str], trivial_trials_n: int, repeats: int,
        tpe_repeats: int, ridge_trials: int, ridge_repeats: int, parallel_trials: int, parallel_repeats: int,
        pruning_trials: int,
        pruning_seeds: int, listing_trials: int = 10_000, scale_trials: int = 1000,
        pruning_seed_start: int = 0) -> dict[str, Any]:
    import lightgbm
    import mlflow
    import optuna

    tmp = Path(tempfile.mkdtemp(prefix="alphaforge-bench-tuning-"))
    pg, pg_skip = open_postgres()
    result: dict[str, Any] = {
        "config": {
            "data": f"REAL bundled sample bars ({SYMBOL} daily, arch package), {START} .. {END} (end exclusive)",
            "features": [{"plugin_key": k, "parameters": p} for k, p in FEATURES],
            "tiny_dataset": {"features": [{"plugin_key": k, "parameters": p} for k, p in TINY_FEATURES],
                             "start": TINY_START, "end": TINY_END},
            "lightgbm_fixed_params": LGBM_FIXED,
            "lightgbm_param_space": LGBM_SPACE,
            "target_horizon": HORIZON,
            "cv": "request default: rolling, 5 splits, test_size 0.15, purge = horizon",
            "seed": SEED,
            "sections": sections,
            "postgresql": (f"server {pg.version} ({pg.settings}), fresh database per run (dropped at the end)"
                           if pg else
                           f"skipped: {pg_skip}"),
            "versions": {"optuna": optuna.__version__, "mlflow": mlflow.__version__,
                         "lightgbm": lightgbm.__version__},
            "statistic": "median over repeats",
            "timer": "time.perf_counter (sections 1 and 3, cyclic GC off while timing); time.time across "
                     "processes (section 2)",
        },
        "loadavg_1_5_15_process_start": LOADAVG_AT_START,
    }
    try:
        result["load_wait"] = (wait_for_quiet(NAME, LOAD_THRESHOLD, max_wait_s) if wait
                               else {"skipped": True, "loadavg_1_5_15": os.getloadavg()})
        cal = start_calibration()
        log(f"calibration: pure-Python 1M loop {cal['python_loop_1m_ms']:.1f} ms, numpy sort 1M "
            f"{cal['numpy_sort_1m_ms']:.1f} ms")
        if "bookkeeping" in sections:
            result["bookkeeping"] = bench_bookkeeping(trivial_trials_n, repeats, tpe_repeats, ridge_trials,
                                                      ridge_repeats, pg, pg_skip)
        if "parallel" in sections:
            result["parallel"] = bench_parallel(tmp / "parallel", parallel_trials, parallel_repeats)
        if "pruning" in sections:
            result["pruning"] = bench_pruning(tmp / "pruning", pruning_trials, pruning_seeds, pruning_seed_start)
        if "listing" in sections:
            result["listing"] = bench_listing(tmp / "listing", listing_trials, repeats, pg, pg_skip)
        if "scale" in sections:
            result["scale"] = bench_scale(tmp / "scale", scale_trials, pg, pg_skip)
    finally:
        if pg is not None:
            pg.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return result


# -- reporting ------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> str:
    out = [f"{NAME}: load wait {result['load_wait']}", ""]
    bk = result.get("bookkeeping")
    if bk:
        rows = []
        for key, r in bk["trivial"].items():
            if "skipped" in r:
                rows.append([key, "-", "-", r["skipped"][:60]])
            else:
                rows.append([f"{r['backend']}, {r['sampler']}", r["trials_per_s"], r["ms_per_trial"],
                             f"median of {r['runs']} x {bk['n_trials']} trials"])
        out.append("1. Optuna bookkeeping, trivial objective (ask, suggest_float, tell):")
        out.append(table(rows, ["storage, sampler", "trials/s", "ms/trial", "note"]))
        rows = []
        for backend, r in bk["run_trials"].items():
            if "skipped" in r:
                rows.append([backend, "-", "-", "-", "-", "-", "-", "-"])
                continue
            rows.append([backend, r["trials_per_s"], r["ms_per_trial"], r["model_ms_per_trial"],
                         r["mlflow_ms_per_trial"], r["rest_ms_per_trial"], r.get("optuna_alone_ms_per_trial"),
                         r.get("beyond_optuna_ms_per_trial")])
        first = next((r for r in bk["run_trials"].values() if "n_rows" in r), None)
        if first:
            out.append(f"\n   alphaforge run_trials_on, ml.ridge on {first['n_rows']} rows x {first['n_columns']} "
                       f"columns, 5 folds, pruner none, MLflow child run per trial (median of {first['repeats']} x "
                       f"{first['n_trials']} trials):")
            out.append(table(rows, ["backend", "trials/s", "ms/trial", "model ms", "MLflow ms", "rest ms",
                                    "Optuna alone ms", "beyond Optuna+model ms"]))
            out.append("   (MLflow ms: time in tracker.log_trial, on a background thread since issue 17, so not on "
                       "the trial's path; Optuna alone: ask + ridge's 2 suggests + tell, same storage and sampler)")
        out.append(f"   load at start/end of section: {bk['loadavg_1_5_15']}")
        out.append("")
    par = result.get("parallel")
    if par:
        rows = []
        for n, s in par["per_workers"].items():
            for label, r in (("cold", s["cold"]), (f"warm (median of {par['repeats']})", s["warm_median"])):
                rows.append([n, label, r["wall_s"], r["startup_s"], r["trial_span_s"], r["finalize_s"],
                             r["trial_duration_sum_s"], r["trial_duration_median_s"], r["busy_share"]])
        out.append(f"2. async tune, ml.lightgbm, {par['n_trials']} trials, pruner none, "
                   f"{par['dataset']['n_rows']} rows "
                   f"x {par['dataset']['n_columns']} columns (seconds):")
        out.append(table(rows, ["workers", "pool", "wall", "start-up", "trial span", "finalize", "sum trials",
                                "median trial", "busy"]))
        out.append(f"   speed-up 1 -> 2 workers: warm wall {par['speedup_warm_wall']:.2f} (compared with the target "
                   f">= {TARGET_SPEEDUP}: {'MET' if par['meets_target'] else 'NOT MET'}; per repeat "
                   f"{', '.join(f'{x:.2f}' for x in par['speedup_warm_paired'])}), warm trial span "
                   f"{par['speedup_warm_trial_span']:.2f}, cold wall {par['speedup_cold_wall']:.2f}, cold trial span "
                   f"{par['speedup_cold_trial_span']:.2f}; sum of trial durations 2 workers / 1 worker "
                   f"{par['trial_duration_inflation']:.2f}")
        out.append(f"   load at start/end of section: {par['loadavg_1_5_15']}")
        out.append("")
    pr = result.get("pruning")
    if pr:
        rows = [[label, f"{pr[label]['wall_ratio_median']:.2f}", f"{pr[label]['wall_ratio_total']:.2f}",
                 ", ".join(f"{x:.2f}" for x in pr[label]["wall_ratio_per_seed"]),
                 f"{pr[label]['cpu_ratio_median']:.2f}" if "cpu_ratio_median" in pr[label] else "-",
                 ", ".join(f"{r['best_score']:.5g}" for r in pr[label]["runs"]),
                 f"{pr[label]['same_best_seeds']}/{len(pr['seeds'])}", pr[label]["n_pruned_median"],
                 pr[label]["folds_evaluated_total"]] for label in pr["pruners"]]
        out.append(f"3. sync tune, ml.lightgbm, {pr['n_trials']} trials, seeds {pr['seeds']}: wall time / no pruning's "
                   f"(target <= {pr['target_ratio']}):")
        out.append(table(rows, ["pruner", "ratio median", "ratio total", "per seed", "CPU ratio median",
                                "best per seed", "same best",
                                "pruned (median)", "folds run"]))
        out.append(f"   load at start/end of section: {pr['loadavg_1_5_15']}")
        rows = [[r["rule"], r["n_pruned"], f"{r['folds_run']}/{r['folds_total']}",
                 f"{100 * r['fold_share_saved']:.0f}%",
                 "yes" if r["best_trial_survives"] else "NO"] for r in pr["replay_on_unpruned_study"].values()]
        out.append("   the median rule replayed on the first seed's unpruned study's per-fold scores (optuna = MedianPruner, "
                   "which compares the trial's best value over its steps; per_step = its value at the step):")
        out.append(table(rows, ["rule", "pruned", "folds run", "folds saved", "best trial survives"]))
    li = result.get("listing")
    if li:
        labels = list(next((b for b in li["backends"].values() if "skipped" not in b), {}))
        rows = [[label] + [f"{b[label]['median_ms']:.1f}" if "skipped" not in b else "-" for b in li["backends"].values()]
                for label in labels]
        out.append(f"\n4. a study of {li['n_trials']:,} trials (seeded into Optuna's tables), tuning.catalog, ms "
                   f"(median of {li['repeats']}):")
        out.append(table(rows, ["call", *li["backends"]]))
    sc = result.get("scale")
    if sc and "skipped" not in sc:
        rows = [[n, r["wall_s"], r["trials_per_s"], r["trial_span_s"], r["trials_per_s_in_span"], r["finalize_s"],
                 r["n_complete"]] for n, r in sc["runs"].items()]
        out.append(f"\n5. a {sc['n_trials']}-trial ml.ridge tune (defaults) on {sc.get('n_rows')} rows, async path, "
                   "PostgreSQL:")
        out.append(table(rows, ["workers", "wall s", "trials/s", "trial span s", "trials/s in span", "finalize s",
                                "complete"]))
    return "\n".join(out)


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    bk = result.get("bookkeeping")
    if bk:
        for key in ("memory/random", "sqlite/random", "postgresql/random"):
            r = bk["trivial"].get(key)
            if r and "trials_per_s" in r:
                rows.append([NAME, f"trivial trial, {key}", f"{r['trials_per_s']:,.0f} trials/s "
                             f"({r['ms_per_trial']:.1f} ms)", "-", None])
        for backend, r in bk["run_trials"].items():
            if "ms_per_trial" in r:
                rows.append([NAME, f"run_trials ridge, {backend}", f"{r['ms_per_trial']:.0f} ms/trial", "-", None])
    par = result.get("parallel")
    if par:
        rows.append([NAME, "async tune 1 -> 2 workers (warm wall)", f"{par['speedup_warm_wall']:.2f}x",
                     f">= {TARGET_SPEEDUP}", par["meets_target"]])
        rows.append([NAME, "async tune 1 -> 2 workers (cold wall)", f"{par['speedup_cold_wall']:.2f}x", "-", None])
    pr = result.get("pruning")
    if pr:
        for label in pr["pruners"][1:]:
            rows.append([NAME, f"pruning {label}/none wall (median of {len(pr['seeds'])} seeds)",
                         f"{pr[label]['wall_ratio_median']:.2f}", f"<= {pr['target_ratio']}", pr[label]["meets_target"]])
    return rows


SECTIONS = ("bookkeeping", "parallel", "pruning", "listing", "scale")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tuning", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repeat, no load wait")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--trivial-trials", type=int, help="trials per trivial-objective study (default 200)")
    parser.add_argument("--repeats", type=int, help="repeats of the trivial-objective random-sampler rows (default 3)")
    parser.add_argument("--tpe-repeats", type=int, help="repeats of the trivial-objective TPE rows (default 1)")
    parser.add_argument("--ridge-trials", type=int, help="trials per run_trials ridge study (default 30)")
    parser.add_argument("--ridge-repeats", type=int, help="repeats of the run_trials ridge figure (default 2)")
    parser.add_argument("--parallel-trials", type=int, help="trials per async tune (default 24)")
    parser.add_argument("--parallel-repeats", type=int, help="warm-pool tunes per worker count (default 3)")
    parser.add_argument("--pruning-trials", type=int, help="trials per pruning study (default 30)")
    parser.add_argument("--pruning-seeds", type=int, help="seeds per pruner, order rotating (default 5)")
    parser.add_argument("--pruning-seed-start", type=int, default=0, help="first seed of the pruning section (default 0)")
    parser.add_argument("--listing-trials", type=int, help="trials seeded into the listed study (default 10,000)")
    parser.add_argument("--scale-trials", type=int, help="trials of the end-to-end ridge study (default 1,000)")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for the load average to drop")
    parser.add_argument("--max-wait", type=float, default=900.0,
                        help=f"longest wait (s) for the 1-minute load average < {LOAD_THRESHOLD} (default 900)")
    args = parser.parse_args(argv)
    q = args.quick
    log(f"machine: {machine_line(machine_info())}")
    result = run(
        quick=q, wait=not (args.no_wait or q), max_wait_s=args.max_wait, sections=list(args.only or SECTIONS),
        trivial_trials_n=args.trivial_trials or (30 if q else 200), repeats=args.repeats or (1 if q else 3),
        tpe_repeats=args.tpe_repeats or 1,
        ridge_trials=args.ridge_trials or (5 if q else 30), ridge_repeats=args.ridge_repeats or (1 if q else 2),
        parallel_trials=args.parallel_trials or (4 if q else 24),
        parallel_repeats=args.parallel_repeats or (1 if q else 3),
        pruning_trials=args.pruning_trials or (8 if q else 30), pruning_seeds=args.pruning_seeds or (1 if q else 5),
        listing_trials=args.listing_trials or (1000 if q else 10_000), scale_trials=args.scale_trials or (50 if q else 1000),
        pruning_seed_start=args.pruning_seed_start,
    )
    path = write_results(NAME, result, quick=q)
    print(report(result))
    log(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
