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

Anything else (studies, their attributes, the best trial) is ``_CachedStorage``'s. The
storage serves one process's trials, one at a time or several (threads), of any number of
studies; it is not shared between processes (each has its own database connections).
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from optuna import distributions
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
from optuna.trial import FrozenTrial, TrialState

#: Seconds a snapshot of the study's trials serves the reads of one trial at most.
REFRESH_S = 0.5


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

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        del state["_buffer_lock"]
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._buffer_lock = threading.RLock()

    # -- trials created here ------------------------------------------------------------
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        if template_trial is not None:  # enqueue_trial / add_trial: written whole, as Optuna does
            trial_id = super().create_new_trial(study_id, template_trial)
            self._stale(study_id)
            return trial_id
        frozen = self._backend._create_new_trial(study_id, None)
        with self._lock:
            if study_id not in self._studies:
                self._studies[study_id] = _StudyInfo()
            self._add_trials_to_cache(study_id, [frozen])
        with self._buffer_lock:
            self._running[frozen._trial_id] = _Running(study_id, copy.deepcopy(frozen))
        return frozen._trial_id

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

    # -- reads ----------------------------------------------------------------------------
    def _stale(self, study_id: int) -> None:
        with self._buffer_lock:
            self._read_at.pop(study_id, None)

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
