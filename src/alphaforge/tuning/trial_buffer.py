"""Optuna's RDB storage for trials run here: a running trial's writes kept in memory, written
in one transaction when it ends, and the study's trials read from the database once per trial.

Optuna's ``_CachedStorage`` (what ``optuna.load_study`` wraps an ``RDBStorage`` in) writes
each parameter, report, attribute and the final state of a trial in a transaction of its own,
and reads a running trial back from the database whenever it is asked for it (``Trial``'s
creation, every ``tell``); the samplers and the study re-read the study's new and unfinished
trials three times per ``ask``. On PostgreSQL that was about fifteen transactions per trial
with the seeded TPE, each costing more in SQLAlchemy than in the database: the bookkeeping,
not the model, set the pace of a study of cheap trials.

``BufferedTrialStorage`` is that same cached storage with two changes:

- **A running trial created here is written when it ends.** Its parameters, user and system
  attributes and intermediate values are kept (and read back) here, and ``tell`` writes them
  with its value and state in one transaction, the row locked as ``set_trial_state_values``
  locks it. Creating a trial is still its own transaction (it numbers the trial under the
  study's row lock, which keeps the trial budget exact across workers). Other processes see
  the trial RUNNING meanwhile, without its parameters until it ends; a process that dies
  leaves it RUNNING, as before. Trials popped from the queue (``enqueue_trial``: warm starts)
  and trials written from a template are written through, as Optuna writes them.
- **The study's trials are read from the database at most once per trial**: the first read
  after a trial of this process ended (or ``REFRESH_S`` after the last read) asks the
  database for the new and unfinished trials, as ``_CachedStorage`` does on every read; the
  other reads of the same trial (the queue check in ``ask``, TPE's search space and its
  constant-liar sample, the pruner's completed trials) see that snapshot, with this process's
  running trial as it is here.

- **A read asks first what changed.** One light query lists the new and unfinished trials'
  ids, states and parameter counts; only those that differ from what this process holds (a
  trial another worker ended or started, a new one) are read whole (on PostgreSQL in one
  statement, each trial's parts aggregated into arrays; elsewhere with Optuna's query). A
  sequential study's own trials never are: the process wrote them (a whole read took six
  queries and the trial's result attribute again, per trial). A running trial of another
  process is read again when its state or its parameters change (what TPE's constant liar
  uses), not for a new report or attribute while it runs (neither pruner nor sampler reads them).
- **On PostgreSQL a trial costs three round trips**, on a connection this storage holds while
  trials run (``close`` returns it; autocommit): its creation (the study's row locked, the
  trial numbered and inserted, committed: one pipelined exchange), the light read, and its end
  (state, values, parameters, attributes and reports in one statement, written only if the
  trial is still RUNNING). Through Optuna's ORM the same took about twelve, each with a ping
  of the pooled connection and SQLAlchemy's unit of work around it.

Anything else (studies, their attributes, the best trial) is ``_CachedStorage``'s. The
storage serves one process's trials, one at a time or several (threads), of any number of
studies; it is not shared between processes (each has its own database connections).
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
from collections.abc import Container, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from optuna import distributions
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
from optuna.trial import FrozenTrial, TrialState

#: Seconds a snapshot of the study's trials serves the reads of one trial at most.
REFRESH_S = 0.5
#: Tries of a trial's creation on PostgreSQL (a deadlock or lost connection), as Optuna's.
CREATE_TRIES = 5

# -- PostgreSQL: a trial's statements on one connection of this storage ---------------------
#: A trial created as Optuna creates one (``RDBStorage._create_new_trial``): the study's row
#: locked, then numbered by the trials counted after the lock (a statement of its own, so it
#: sees every trial committed by whoever held the lock before).
_PG_LOCK_STUDY = "SELECT study_id FROM studies WHERE study_id = %(study)s FOR UPDATE"
_PG_CREATE_TRIAL = (
    "INSERT INTO trials (number, study_id, state, datetime_start) "
    "SELECT count(*), %(study)s, 'RUNNING', %(start)s FROM trials WHERE study_id = %(study)s "
    "RETURNING trial_id, number"
)
#: Trials read whole in one statement (Optuna's read is six: the trials, then each table of
#: their parts), each part aggregated into arrays in the order Optuna reads it.
_PG_READ_TRIALS = """
SELECT t.trial_id, t.number, t.state::text, t.datetime_start, t.datetime_complete,
       p.names, p.internal, p.dists, v.objectives, v.stored, v.kinds,
       u.keys, u.json, s.keys, s.json, i.steps, i.stored, i.kinds
FROM trials t
LEFT JOIN LATERAL (
    SELECT array_agg(param_name ORDER BY param_id) AS names, array_agg(param_value ORDER BY param_id) AS internal,
           array_agg(distribution_json ORDER BY param_id) AS dists
    FROM trial_params WHERE trial_id = t.trial_id) p ON true
LEFT JOIN LATERAL (
    SELECT array_agg(objective) AS objectives, array_agg(value) AS stored, array_agg(value_type::text) AS kinds
    FROM trial_values WHERE trial_id = t.trial_id) v ON true
LEFT JOIN LATERAL (
    SELECT array_agg(key) AS keys, array_agg(value_json) AS json
    FROM trial_user_attributes WHERE trial_id = t.trial_id) u ON true
LEFT JOIN LATERAL (
    SELECT array_agg(key) AS keys, array_agg(value_json) AS json
    FROM trial_system_attributes WHERE trial_id = t.trial_id) s ON true
LEFT JOIN LATERAL (
    SELECT array_agg(step) AS steps, array_agg(intermediate_value) AS stored,
           array_agg(intermediate_value_type::text) AS kinds
    FROM trial_intermediate_values WHERE trial_id = t.trial_id) i ON true
WHERE t.study_id = %(study)s AND (t.trial_id > %(after)s OR t.trial_id = ANY(CAST(%(ids)s AS int[])))
ORDER BY t.trial_id
"""
#: A finished trial's state, value(s), parameters, attributes and reports in one statement:
#: nothing is written unless the trial was still RUNNING (the update returns no row).
_PG_FINISH_TRIAL = """
WITH t AS (
    UPDATE trials SET state = CAST(%(state)s AS trialstate), datetime_complete = %(complete)s
    WHERE trial_id = %(trial)s AND state = 'RUNNING' RETURNING trial_id
), p AS (
    INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json)
    SELECT t.trial_id, x.name, x.value, x.distribution FROM t,
        unnest(CAST(%(p_name)s AS text[]), CAST(%(p_value)s AS float8[]), CAST(%(p_dist)s AS text[]))
        AS x(name, value, distribution)
), u AS (
    INSERT INTO trial_user_attributes (trial_id, key, value_json)
    SELECT t.trial_id, x.key, x.value FROM t,
        unnest(CAST(%(u_key)s AS text[]), CAST(%(u_value)s AS text[])) AS x(key, value)
), s AS (
    INSERT INTO trial_system_attributes (trial_id, key, value_json)
    SELECT t.trial_id, x.key, x.value FROM t,
        unnest(CAST(%(s_key)s AS text[]), CAST(%(s_value)s AS text[])) AS x(key, value)
), i AS (
    INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type)
    SELECT t.trial_id, x.step, x.value, CAST(x.kind AS trialintermediatevaluetype) FROM t,
        unnest(CAST(%(i_step)s AS int[]), CAST(%(i_value)s AS float8[]), CAST(%(i_kind)s AS text[]))
        AS x(step, value, kind)
), v AS (
    INSERT INTO trial_values (trial_id, objective, value, value_type)
    SELECT t.trial_id, x.objective, x.value, CAST(x.kind AS trialvaluetype) FROM t,
        unnest(CAST(%(v_objective)s AS int[]), CAST(%(v_value)s AS float8[]), CAST(%(v_kind)s AS text[]))
        AS x(objective, value, kind)
)
SELECT trial_id FROM t
"""


@dataclass
class _Running:
    """A running trial created here: its view (what ``get_trial`` answers) and its unwritten parts."""

    study_id: int
    trial: FrozenTrial
    params: dict[str, tuple[float, distributions.BaseDistribution]] = field(default_factory=dict)
    user_attrs: dict[str, str] = field(default_factory=dict)  # key -> JSON
    system_attrs: dict[str, str] = field(default_factory=dict)
    intermediate_values: dict[int, float] = field(default_factory=dict)


class BufferedTrialStorage(_CachedStorage):
    def __init__(self, backend: RDBStorage, refresh_s: float = REFRESH_S) -> None:
        super().__init__(backend)
        self._refresh_s = refresh_s
        self._running: dict[int, _Running] = {}
        self._read_at: dict[int, float] = {}  # study id -> monotonic time of the last read of its trials
        self._buffer_lock = threading.RLock()
        engine = backend.engine
        self._postgres = engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
        self._conn: Any = None  # a SQLAlchemy Connection (autocommit) while trials run here
        self._conn_lock = threading.Lock()

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        del state["_buffer_lock"], state["_conn_lock"]
        state["_conn"] = None
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._buffer_lock = threading.RLock()
        self._conn_lock = threading.Lock()

    def close(self) -> None:
        """Return the connection this storage held to the pool (it opens another if used again)."""
        with self._conn_lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @contextmanager
    def _driver(self) -> Iterator[Any]:
        """The psycopg connection (autocommit) of this storage's own PostgreSQL statements, held
        from its first use to ``close``: checked out (and pinged) once, not per statement. One
        that raised is dropped (never reused in an unknown state)."""
        import psycopg

        with self._conn_lock:
            if self._conn is None:
                self._conn = self._backend.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                yield self._conn.connection.driver_connection
            except psycopg.Error:
                conn, self._conn = self._conn, None
                conn.invalidate()
                conn.close()
                raise

    # -- trials created here ------------------------------------------------------------
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        if template_trial is not None:  # enqueue_trial / add_trial: written whole, as Optuna does
            trial_id = super().create_new_trial(study_id, template_trial)
            self._stale(study_id)
            return trial_id
        frozen = self._create_pg(study_id) if self._postgres else self._backend._create_new_trial(study_id, None)
        with self._lock:
            if study_id not in self._studies:
                self._studies[study_id] = _StudyInfo()
            self._add_trials_to_cache(study_id, [frozen])
        with self._buffer_lock:
            self._running[frozen._trial_id] = _Running(study_id, copy.deepcopy(frozen))
        return frozen._trial_id

    def _create_pg(self, study_id: int) -> FrozenTrial:
        """A new RUNNING trial, numbered as Optuna numbers it, in one pipelined exchange."""
        import psycopg

        start = datetime.now()
        for attempt in range(1, CREATE_TRIES + 1):
            try:
                with self._driver() as conn:
                    # pipelined where libpq can (14+): BEGIN, the lock, the insert and COMMIT in one exchange
                    with conn.pipeline() if psycopg.Pipeline.is_supported() else nullcontext(), conn.transaction():
                        conn.execute(_PG_LOCK_STUDY, {"study": study_id})
                        created = conn.execute(_PG_CREATE_TRIAL, {"study": study_id, "start": start})
                row = created.fetchone()
                break
            except psycopg.errors.ForeignKeyViolation:
                raise KeyError(f"No study with study_id {study_id} exists.") from None
            except psycopg.OperationalError:
                if attempt == CREATE_TRIES:
                    raise
                time.sleep(random.random() * 2.0)  # a deadlock: back off as Optuna does
        assert row is not None
        trial_id, number = row
        return FrozenTrial(
            number=number, state=TrialState.RUNNING, value=None, values=None, datetime_start=start,
            datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs={},
            intermediate_values={}, trial_id=trial_id,
        )

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float,
        distribution: distributions.BaseDistribution,
    ) -> None:
        with self._buffer_lock:
            running = self._running.get(trial_id)
            if running is None:
                return super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
            with self._lock:
                known = self._studies[running.study_id].param_distribution.get(param_name)
            if known is not None:
                distributions.check_distribution_compatibility(known, distribution)
            if param_name in running.params:  # the database would ignore the second one too
                return
            running.params[param_name] = (param_value_internal, distribution)
            running.trial.params[param_name] = distribution.to_external_repr(param_value_internal)
            running.trial.distributions[param_name] = distribution

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._buffer_lock:
            running = self._running.get(trial_id)
            if running is None:
                return super().set_trial_user_attr(trial_id, key, value)
            running.user_attrs[key] = json.dumps(value)  # fails here, as it would in the database
            running.trial.user_attrs[key] = json.loads(running.user_attrs[key])

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._buffer_lock:
            running = self._running.get(trial_id)
            if running is None:
                return super().set_trial_system_attr(trial_id, key, value)
            running.system_attrs[key] = json.dumps(value)
            running.trial.system_attrs[key] = json.loads(running.system_attrs[key])

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        with self._buffer_lock:
            running = self._running.get(trial_id)
            if running is None:
                return super().set_trial_intermediate_value(trial_id, step, intermediate_value)
            running.intermediate_values[step] = intermediate_value
            running.trial.intermediate_values[step] = intermediate_value

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._buffer_lock:
            running = self._running.get(trial_id)
            if running is not None:
                return copy.deepcopy(running.trial)
        return super().get_trial(trial_id)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        with self._buffer_lock:
            running = self._running.get(trial_id)
            if running is None:
                try:
                    return super().set_trial_state_values(trial_id, state, values)
                finally:
                    study = self._trial_id_to_study_id_and_number.get(trial_id)
                    if study is not None:
                        self._stale(study[0])
            if state == TrialState.RUNNING:  # only a WAITING trial can start
                return False
            finished = self._write(trial_id, running, state, values)
            del self._running[trial_id]
        with self._lock:
            self._studies[running.study_id].trials[finished.number] = finished
            for name, (_, distribution) in running.params.items():
                self._studies[running.study_id].param_distribution.setdefault(name, distribution)
        self._stale(running.study_id)
        return True

    def _write(
        self, trial_id: int, running: _Running, state: TrialState, values: Sequence[float] | None
    ) -> FrozenTrial:
        """Everything the trial kept here, its values and its state, in one transaction; the
        finished trial as stored."""
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        backend = self._backend
        with self._lock:
            known = dict(self._studies[running.study_id].param_distribution)
        if self._postgres:
            return self._write_pg(trial_id, running, state, values, known)
        with _create_scoped_session(backend.scoped_session) as session:
            row = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
            backend.check_trial_is_updatable(trial_id, row.state)
            for name, (_, distribution) in running.params.items():
                if name not in known:  # as Optuna checks a study's first use of a name in this process
                    previous = (
                        session.query(models.TrialParamModel.distribution_json)
                        .join(models.TrialModel)
                        .filter(models.TrialModel.study_id == running.study_id)
                        .filter(models.TrialParamModel.param_name == name)
                        .first()
                    )
                    if previous is not None:
                        distributions.check_distribution_compatibility(
                            distributions.json_to_distribution(previous[0]), distribution
                        )
            rows: list[Any] = [
                models.TrialParamModel(
                    trial_id=trial_id, param_name=name, param_value=internal,
                    distribution_json=distributions.distribution_to_json(distribution),
                )
                for name, (internal, distribution) in running.params.items()
            ]
            rows += [models.TrialUserAttributeModel(trial_id=trial_id, key=k, value_json=v)
                     for k, v in running.user_attrs.items()]
            rows += [models.TrialSystemAttributeModel(trial_id=trial_id, key=k, value_json=v)
                     for k, v in running.system_attrs.items()]
            for step, value in running.intermediate_values.items():
                stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
                rows.append(models.TrialIntermediateValueModel(
                    trial_id=trial_id, step=step, intermediate_value=stored, intermediate_value_type=kind,
                ))
            for objective, value in enumerate(values or ()):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                rows.append(models.TrialValueModel(trial_id=trial_id, objective=objective, value=stored,
                                                   value_type=kind))
            session.add_all(rows)
            row.state = state
            completed = datetime.now() if state.is_finished() else None
            row.datetime_complete = completed
        finished = copy.deepcopy(running.trial)
        finished.state = state
        finished.values = list(values) if values is not None else None
        finished.datetime_complete = completed
        return finished

    def _write_pg(
        self, trial_id: int, running: _Running, state: TrialState, values: Sequence[float] | None,
        known: dict[str, distributions.BaseDistribution],
    ) -> FrozenTrial:
        """``_write`` on PostgreSQL: one statement (``_PG_FINISH_TRIAL``)."""
        from optuna.storages._rdb import models

        completed = datetime.now() if state.is_finished() else None
        with self._driver() as conn:
            for name, (_, distribution) in running.params.items():
                if name not in known:  # as Optuna checks a study's first use of a name in this process
                    previous = conn.execute(
                        "SELECT p.distribution_json FROM trial_params p JOIN trials t ON t.trial_id = p.trial_id "
                        "WHERE t.study_id = %(study)s AND p.param_name = %(name)s LIMIT 1",
                        {"study": running.study_id, "name": name},
                    ).fetchone()
                    if previous is not None:
                        distributions.check_distribution_compatibility(
                            distributions.json_to_distribution(previous[0]), distribution
                        )
            reports = [(step, *models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value))
                       for step, value in running.intermediate_values.items()]
            stored = [(k, *models.TrialValueModel.value_to_stored_repr(v)) for k, v in enumerate(values or ())]
            written = conn.execute(_PG_FINISH_TRIAL, {
                "trial": trial_id, "state": state.name, "complete": completed,
                "p_name": list(running.params),
                "p_value": [float(internal) for internal, _ in running.params.values()],
                "p_dist": [distributions.distribution_to_json(d) for _, d in running.params.values()],
                "u_key": list(running.user_attrs), "u_value": list(running.user_attrs.values()),
                "s_key": list(running.system_attrs), "s_value": list(running.system_attrs.values()),
                "i_step": [step for step, _, _ in reports], "i_value": [None if v is None else float(v) for _, v, _ in reports],
                "i_kind": [kind.name for _, _, kind in reports],
                "v_objective": [k for k, _, _ in stored], "v_value": [None if v is None else float(v) for _, v, _ in stored],
                "v_kind": [kind.name for _, _, kind in stored],
            }).fetchone()
            if written is None:  # not RUNNING any more: nothing was written
                found = conn.execute("SELECT number, state::text FROM trials WHERE trial_id = %(trial)s",
                                     {"trial": trial_id}).fetchone()
                if found is None:
                    raise KeyError(f"No trial with trial_id {trial_id} exists.")
                raise UpdateFinishedTrialError(
                    f"Trial#{found[0]} has already finished and can not be updated (it is {found[1]})."
                )
        finished = copy.deepcopy(running.trial)
        finished.state = state
        finished.values = list(values) if values is not None else None
        finished.datetime_complete = completed
        return finished

    # -- reads ----------------------------------------------------------------------------
    def _stale(self, study_id: int) -> None:
        with self._buffer_lock:
            self._read_at.pop(study_id, None)

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        """``_CachedStorage``'s read, asking first what changed (see the module docstring)."""
        with self._lock:
            if study_id not in self._studies:
                self._studies[study_id] = _StudyInfo()
            study = self._studies[study_id]
            rows = self._changed(study_id, study.last_finished_trial_id, sorted(study.unfinished_trial_ids))
            stale = set()
            for trial_id, number, state, n_params in rows:
                held = study.trials.get(number)
                if held is None or held._trial_id != trial_id or held.state != state or len(held.params) != n_params:
                    stale.add(trial_id)
            # the stale ones whole (and any trial created since the light query)
            fetched = self._read_whole(study_id, stale) if stale else []
            self._add_trials_to_cache(study_id, fetched)
            states = {trial_id: state for trial_id, _, state, _ in rows} | {t._trial_id: t.state for t in fetched}
            for trial_id, state in states.items():
                if not state.is_finished():
                    study.unfinished_trial_ids.add(trial_id)
                    continue
                study.last_finished_trial_id = max(study.last_finished_trial_id, trial_id)
                study.unfinished_trial_ids.discard(trial_id)

    def _read_whole(self, study_id: int, ids: set[int]) -> list[FrozenTrial]:
        """Trials ``ids`` and any created after the last of them, as Optuna builds them
        (``RDBStorage._build_frozen_trial_from_trial_model``); on PostgreSQL in one statement."""
        if not self._postgres:
            return self._backend._get_trials(study_id, None, ids, max(ids))
        from optuna.storages._rdb import models

        values_of = models.TrialValueModel.stored_repr_to_value
        report_of = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value
        value_kind, report_kind = models.TrialValueModel.TrialValueType, models.TrialIntermediateValueModel.TrialIntermediateValueType
        with self._driver() as conn:
            rows = conn.execute(_PG_READ_TRIALS, {"study": study_id, "after": max(ids), "ids": sorted(ids)}).fetchall()
        trials = []
        for (trial_id, number, state, start, complete, p_names, p_internal, p_dists, v_objectives, v_stored, v_kinds,
             u_keys, u_json, s_keys, s_json, i_steps, i_stored, i_kinds) in rows:
            values: list[float] | None = None
            if v_objectives:
                values = [0.0] * len(v_objectives)
                for objective, stored, kind in zip(v_objectives, v_stored, v_kinds):
                    values[objective] = values_of(stored, value_kind[kind])
            dists = {name: distributions.json_to_distribution(d) for name, d in zip(p_names or (), p_dists or ())}
            trials.append(FrozenTrial(
                number=number, state=TrialState[state], value=None, values=values, datetime_start=start,
                datetime_complete=complete,
                params={name: dists[name].to_external_repr(v) for name, v in zip(p_names or (), p_internal or ())},
                distributions=dists,
                user_attrs={k: json.loads(v) for k, v in zip(u_keys or (), u_json or ())},
                system_attrs={k: json.loads(v) for k, v in zip(s_keys or (), s_json or ())},
                intermediate_values={step: report_of(stored, report_kind[kind])
                                     for step, stored, kind in zip(i_steps or (), i_stored or (), i_kinds or ())},
                trial_id=trial_id,
            ))
        return trials

    def _changed(self, study_id: int, after: int, unfinished: list[int]) -> list[tuple[int, int, TrialState, int]]:
        """(trial id, number, state, parameter count) of the study's trials created after trial id
        ``after`` or among ``unfinished``: what ``_CachedStorage`` would read whole."""
        if self._postgres:
            with self._driver() as conn:
                rows = conn.execute(
                    "SELECT t.trial_id, t.number, t.state::text, "
                    "(SELECT count(*) FROM trial_params p WHERE p.trial_id = t.trial_id) FROM trials t "
                    "WHERE t.study_id = %(study)s AND (t.trial_id > %(after)s OR t.trial_id = ANY(CAST(%(ids)s AS int[])))",
                    {"study": study_id, "after": after, "ids": unfinished},
                ).fetchall()
            return [(trial_id, number, TrialState[state], n) for trial_id, number, state, n in rows]
        from optuna.storages._rdb import models
        from sqlalchemy import func, or_, select

        trials, params = models.TrialModel.__table__, models.TrialParamModel.__table__
        n_params = select(func.count()).where(params.c.trial_id == trials.c.trial_id).scalar_subquery()
        query = select(trials.c.trial_id, trials.c.number, trials.c.state, n_params).where(
            trials.c.study_id == study_id, or_(trials.c.trial_id > after, trials.c.trial_id.in_(unfinished))
        )
        with self._backend.engine.connect() as conn:
            return [(trial_id, number, state if isinstance(state, TrialState) else TrialState[state], n)
                    for trial_id, number, state, n in conn.execute(query)]

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        now = time.monotonic()
        with self._buffer_lock:
            read_at = self._read_at.get(study_id)
        if read_at is None or now - read_at >= self._refresh_s:
            self._read_trials_from_remote_storage(study_id)
            with self._buffer_lock:
                self._read_at[study_id] = now
        with self._buffer_lock:
            mine = {r.trial.number: r.trial for r in self._running.values() if r.study_id == study_id}
            with self._lock:
                cached = self._studies[study_id].trials
                trials = [mine.get(number, t) for number, t in cached.items()]
        if states is not None:
            trials = [t for t in trials if t.state in states]
        trials.sort(key=lambda t: t.number)
        return copy.deepcopy(trials) if deepcopy else trials
