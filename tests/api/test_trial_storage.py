"""The storage trials run on (``tuning.trial_buffer``), on both backends, against Optuna's own.

Two ``BufferedTrialStorage`` instances over one database stand for two worker processes; what
they write is read back through Optuna's plain ``RDBStorage`` (what optuna-dashboard and the
studies routes read), field by field, and each one's view of the other's trials is checked as
it changes.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from alphaforge.tuning import studies
from alphaforge.tuning.trial_buffer import BufferedTrialStorage
from conftest import SettingsFactory, post_features

FIELDS = ("number", "state", "values", "params", "distributions", "user_attrs", "system_attrs",
          "intermediate_values", "datetime_start", "datetime_complete")


@pytest.fixture(scope="module")
def rdb(make_settings: SettingsFactory) -> optuna.storages.RDBStorage:
    return studies.storage(make_settings().resolved_optuna_storage_url)


@pytest.fixture()
def workers(rdb: optuna.storages.RDBStorage) -> Iterator[tuple[BufferedTrialStorage, BufferedTrialStorage]]:
    a, b = BufferedTrialStorage(rdb, refresh_s=0.0), BufferedTrialStorage(rdb, refresh_s=0.0)
    yield a, b
    a.close()
    b.close()


def _study(rdb: optuna.storages.RDBStorage) -> int:
    return optuna.create_study(storage=rdb, study_name=f"storage-{uuid.uuid4().hex}")._study_id


def _fields(t: FrozenTrial) -> dict[str, Any]:
    out = {f: getattr(t, f) for f in FIELDS}
    out["intermediate_values"] = {k: "nan" if math.isnan(v) else v for k, v in t.intermediate_values.items()}
    return out


def _run(storage: BufferedTrialStorage, study_id: int, label: str, state: TrialState,
         value: float | None = None) -> int:
    """One trial as the tuner runs it: parameters, attributes, reports, then its end."""
    trial_id = storage.create_new_trial(study_id)
    storage.set_trial_param(trial_id, "alpha", 0.25, FloatDistribution(1e-3, 10.0, log=True))
    storage.set_trial_param(trial_id, "depth", 3, IntDistribution(1, 8))
    storage.set_trial_param(trial_id, "kind", 1, CategoricalDistribution(["a", "b", None]))
    storage.set_trial_user_attr(trial_id, "result", {"label": label, "folds": [{"mse": 1e-4}]})
    storage.set_trial_system_attr(trial_id, "constant_liar", True)
    for step, reported in enumerate((0.5, float("inf"), float("-inf"), float("nan"), 0.125)):
        storage.set_trial_intermediate_value(trial_id, step, reported)
    assert storage.set_trial_state_values(trial_id, state, None if value is None else [value])
    return trial_id


def test_trials_of_two_workers_read_back_as_optuna_reads_them(rdb, workers) -> None:
    a, b = workers
    study_id = _study(rdb)
    ids = [_run(a, study_id, "a0", TrialState.COMPLETE, 1.5), _run(b, study_id, "b0", TrialState.PRUNED, 0.125),
           _run(a, study_id, "a1", TrialState.FAIL), _run(b, study_id, "b1", TrialState.COMPLETE, -2.0)]
    stored = {t._trial_id: t for t in rdb.get_all_trials(study_id)}
    assert [stored[i].number for i in ids] == [0, 1, 2, 3]
    assert [stored[i].state for i in ids] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                                              TrialState.COMPLETE]
    assert [stored[i].values for i in ids] == [[1.5], [0.125], None, [-2.0]]
    first = stored[ids[0]]
    assert first.params == {"alpha": 0.25, "depth": 3, "kind": "b"}
    assert first.user_attrs == {"result": {"label": "a0", "folds": [{"mse": 1e-4}]}}
    assert first.system_attrs == {"constant_liar": True}
    assert _fields(first)["intermediate_values"] == {0: 0.5, 1: math.inf, 2: -math.inf, 3: "nan", 4: 0.125}
    assert all(t.datetime_complete is not None for t in stored.values())
    # each worker's view (its own trials as written, the other's as read) equals the database's
    for worker in (a, b):
        view = worker.get_all_trials(study_id)
        assert [_fields(t) for t in view] == [_fields(stored[i]) for i in ids]
        assert [t._trial_id for t in view] == ids


def test_a_worker_sees_the_others_trials_as_they_start_change_and_end(rdb, workers) -> None:
    a, b = workers
    study_id = _study(rdb)
    _run(a, study_id, "a0", TrialState.COMPLETE, 1.0)
    assert [t.number for t in b.get_all_trials(study_id)] == [0]
    running = a.create_new_trial(study_id)  # a's running trial: RUNNING in b's view, no parameters yet
    a.set_trial_param(running, "alpha", 0.5, FloatDistribution(1e-3, 10.0, log=True))
    seen = b.get_all_trials(study_id)
    assert [(t.number, t.state, t.params) for t in seen] == [(0, TrialState.COMPLETE, seen[0].params),
                                                             (1, TrialState.RUNNING, {})]
    # a running trial written through by a plain Optuna process: its new parameter is read
    plain = rdb._create_new_trial(study_id)
    assert [t.params for t in b.get_all_trials(study_id)][2] == {}
    rdb.set_trial_param(plain._trial_id, "alpha", 2.0, FloatDistribution(1e-3, 10.0, log=True))
    assert b.get_all_trials(study_id, states=(TrialState.RUNNING,))[1].params == {"alpha": 2.0}
    a.set_trial_state_values(running, TrialState.COMPLETE, [0.5])
    rdb.set_trial_state_values(plain._trial_id, TrialState.PRUNED)
    view = {t.number: t for t in b.get_all_trials(study_id)}
    assert (view[1].state, view[1].values, view[1].params) == (TrialState.COMPLETE, [0.5], {"alpha": 0.5})
    assert view[2].state == TrialState.PRUNED
    assert [_fields(t) for t in b.get_all_trials(study_id)] == [_fields(t) for t in rdb.get_all_trials(study_id)]


def test_a_trial_ended_elsewhere_is_not_written_again(rdb, workers) -> None:
    a, _ = workers
    study_id = _study(rdb)
    trial_id = a.create_new_trial(study_id)
    a.set_trial_param(trial_id, "alpha", 0.5, FloatDistribution(1e-3, 10.0, log=True))
    a.set_trial_user_attr(trial_id, "result", {"x": 1})
    rdb.set_trial_state_values(trial_id, TrialState.FAIL)  # e.g. failed by a heartbeat elsewhere
    with pytest.raises(UpdateFinishedTrialError):
        a.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.5])
    stored = rdb.get_trial(trial_id)
    assert (stored.state, stored.values, stored.params, stored.user_attrs) == (TrialState.FAIL, None, {}, {})


def test_a_trial_of_a_missing_study_is_refused(rdb, workers) -> None:
    a, _ = workers
    with pytest.raises(KeyError):
        a.create_new_trial(2_000_000_000)


def test_a_parameter_that_changes_its_distribution_is_refused(rdb, workers) -> None:
    a, b = workers
    study_id = _study(rdb)
    _run(a, study_id, "a0", TrialState.COMPLETE, 1.0)
    trial_id = b.create_new_trial(study_id)
    b.set_trial_param(trial_id, "alpha", 1.0, IntDistribution(1, 8))  # b has not read the study yet
    with pytest.raises(ValueError):
        b.set_trial_state_values(trial_id, TrialState.COMPLETE, [1.0])
    assert rdb.get_trial(trial_id).state == TrialState.RUNNING


#: A sequential study's outcome as the tuner gave it before trials were written in one
#: statement and the study re-read by what changed (commit f1dde19, on SQLite and PostgreSQL
#: alike): ml.ridge, rsi(14) and returns on GSPC 2012-2018, 4 folds, 40 trials, seed 3.
REFERENCE = {
    "median": {"best_trial": 4, "best_params": {"alpha": 269.6475105107475, "fit_intercept": True},
               "best_score": 7.314672018106148e-05, "n_complete": 11, "n_pruned": 29,
               "states": "CCCCCPPPPPPPPPPPPCCCPPPCCPPPPPPPCPPPPPPP"},
    "none": {"best_trial": 36, "best_params": {"alpha": 847.1383323822209, "fit_intercept": True},
             "best_score": 7.304746515022898e-05, "n_complete": 40, "n_pruned": 0, "states": "C" * 40},
}


@pytest.mark.parametrize("pruner", sorted(REFERENCE))
def test_a_seeded_study_gives_the_trials_it_gave_before(client, pruner: str) -> None:
    ids = post_features(client, [("technical.rsi", {"period": 14}), ("statistical.returns", {})])
    dataset = {"feature_ids": ids, "symbol": "GSPC", "start_date": "2012-01-01", "end_date": "2019-01-01"}
    response = client.post("/api/v1/models/tune", json={
        "plugin_key": "ml.ridge", "dataset": dataset, "cv": {"n_splits": 4}, "n_trials": 40, "seed": 3, "pruner": pruner})
    assert response.status_code == 200, response.text
    body = response.json()
    got = {k: body[k] for k in ("best_trial", "best_params", "best_score", "n_complete", "n_pruned")}
    got["states"] = "".join(t["state"][0] for t in body["trials"])
    assert got == REFERENCE[pruner]
