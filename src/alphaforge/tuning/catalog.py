"""Stored studies read and deleted page by page, straight from Optuna's tables.

A study of thousands of trials cannot be answered as one list (``Study.get_trials`` loads
every trial with every attribute: seconds for 10,000). So the routes under
``/api/v1/studies`` query Optuna's RDB tables (``optuna.storages._rdb.models``, the schema
Optuna migrates itself) with SQL that filters, sorts and pages in the database: a page costs
a count, the page's trial rows, and their params and result attributes (three ``IN`` queries
over the page's ids). Optuna's storage stays the only record of a study: there is no table
of ours to keep in step with it.

Studies are named by Optuna's integer ``study_id`` (the tune response gives it).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from alphaforge.context import Context
from alphaforge.errors import Conflict, NotFound
from alphaforge.schemas.tuning import StudyPage, StudyRead, TrialPage, TrialRead
from alphaforge.tuning import studies
from alphaforge.tuning.trial_records import (
    CONFIG, MLFLOW_RUNS, PARENT_RUN, RESULT, STOP_REASON, SURPLUS, mlflow_runs, trial_read,
)

if TYPE_CHECKING:
    from optuna.storages import RDBStorage
    from sqlalchemy import ColumnElement

TrialSort = Literal["number", "score"]
Order = Literal["asc", "desc"]
#: A study attribute set when its deletion starts: from then on it is gone to every reader,
#: and a DELETE that was interrupted can be sent again to finish it.
DELETING = "deleting"
#: Task kinds whose payload names a study they run trials of.
_STUDY_TASKS = ("tune", "tune_trials")


def _storage(ctx: Context) -> RDBStorage:
    return studies.storage(ctx.settings.resolved_optuna_storage_url)


def _tables() -> Any:
    from optuna.storages._rdb import models

    return models


# -- studies ------------------------------------------------------------------------------
def list_studies(ctx: Context, limit: int, offset: int) -> StudyPage:
    """Studies, newest first (by id), summarised as ``get_study`` does."""
    from sqlalchemy import func, select

    m = _tables()
    s = m.StudyModel.__table__
    visible = ~_study_deleting(s.c.study_id)
    with _storage(ctx).engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(s).where(visible)).scalar_one()
        rows = conn.execute(
            select(s.c.study_id, s.c.study_name).where(visible).order_by(s.c.study_id.desc()).limit(limit).offset(offset)
        ).all()
        items = _summaries(conn, [(r.study_id, r.study_name) for r in rows])
    return StudyPage(items=items, total=total, limit=limit, offset=offset)


def get_study(ctx: Context, study_id: int) -> StudyRead:
    """One study's summary (404 when there is none, or it is being deleted)."""
    with _storage(ctx).engine.connect() as conn:
        name = _name_of(conn, study_id)
        return _summaries(conn, [(study_id, name)])[0]


def delete_study(ctx: Context, study_id: int) -> None:
    """Delete the study: its trials (Optuna's rows) and its trials' stored forecasts.

    409 while a task still runs its trials. Marked first, so readers see it gone at once;
    the forecasts go next (deleting a missing object is no error) and the Optuna rows last,
    in one transaction: an interruption leaves a marked study that a second DELETE finishes,
    never a listed study whose trials point at deleted forecasts. MLflow runs are kept: they
    are the experiment's history (their ``study_name`` tag says which study they belonged to).
    """
    storage = _storage(ctx)
    with storage.engine.connect() as conn:
        name = _name_of(conn, study_id, include_deleting=True)
    _check_no_task_runs(ctx, name)
    storage.set_study_user_attr(study_id, DELETING, True)
    for key in ctx.objects.list(f"studies/{name}/"):
        ctx.objects.delete(key)
    try:
        storage.delete_study(study_id)
    except KeyError:
        pass  # a concurrent DELETE finished it


def _check_no_task_runs(ctx: Context, study_name: str) -> None:
    from sqlalchemy import select

    from alphaforge.storage.tables import Task
    from alphaforge.tasks.states import FINISHED

    with ctx.db.session() as session:
        requests = session.scalars(
            select(Task.request).where(Task.kind.in_(_STUDY_TASKS), Task.status.not_in(FINISHED))
        ).all()
    if any((r or {}).get("study_name") == study_name for r in requests):
        raise Conflict(
            f"study {study_name!r} is still running: cancel its task (POST /api/v1/tasks/{{task_id}}/cancel) "
            "and delete it once the task has finished"
        )


def _name_of(conn: Any, study_id: int, include_deleting: bool = False) -> str:
    from sqlalchemy import select

    s = _tables().StudyModel.__table__
    query = select(s.c.study_name).where(s.c.study_id == study_id)
    if not include_deleting:
        query = query.where(~_study_deleting(s.c.study_id))
    name = conn.execute(query).scalar_one_or_none()
    if name is None:
        raise NotFound(f"no study with id {study_id}: GET /api/v1/studies lists them")
    return str(name)


def _study_deleting(study_id: ColumnElement[Any]) -> ColumnElement[bool]:
    from sqlalchemy import exists

    a = _tables().StudyUserAttributeModel.__table__
    return exists().where(a.c.study_id == study_id, a.c.key == DELETING)


def _summaries(conn: Any, studies_: list[tuple[int, str]]) -> list[StudyRead]:
    """StudyReads of these studies with a fixed number of queries, whatever their count."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState
    from sqlalchemy import func, select

    if not studies_:
        return []
    m = _tables()
    ids = [i for i, _ in studies_]
    d, a, t = m.StudyDirectionModel.__table__, m.StudyUserAttributeModel.__table__, m.TrialModel.__table__
    directions = {r.study_id: r.direction for r in conn.execute(
        select(d.c.study_id, d.c.direction).where(d.c.study_id.in_(ids), d.c.objective == 0))}
    attrs: dict[int, dict[str, Any]] = defaultdict(dict)
    for r in conn.execute(select(a.c.study_id, a.c.key, a.c.value_json).where(a.c.study_id.in_(ids))):
        attrs[r.study_id][r.key] = json.loads(r.value_json)
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in conn.execute(
        select(t.c.study_id, t.c.state, func.count()).where(t.c.study_id.in_(ids), ~_surplus(t.c.trial_id))
        .group_by(t.c.study_id, t.c.state)
    ):
        counts[r.study_id][r.state.name] = r[2]
    best = _best_trials(conn, {i: directions.get(i) == StudyDirection.MAXIMIZE for i in ids})
    out = []
    for study_id, name in studies_:
        config = attrs[study_id].get(CONFIG) or {}
        request = config.get("request") or {}
        n = counts[study_id]
        requested = request.get("n_trials")
        finished = n["COMPLETE"] + n["PRUNED"] + n["FAIL"]
        reason = attrs[study_id].get(STOP_REASON)
        if reason is None and requested is not None and finished >= requested:
            reason = "n_trials"
        number, score = best.get(study_id, (None, None))
        best_params = None
        if number is not None:
            best_params = _trial_params(conn, study_id, number, request.get("fixed_params") or {})
        out.append(StudyRead(
            study_id=study_id, study_name=name, plugin_key=request.get("plugin_key"), metric=request.get("metric"),
            direction="maximize" if directions.get(study_id) == StudyDirection.MAXIMIZE else "minimize",
            n_trials_requested=requested, n_trials=finished, n_complete=n["COMPLETE"], n_pruned=n["PRUNED"],
            n_failed=n["FAIL"], n_running=n[TrialState.RUNNING.name], n_waiting=n[TrialState.WAITING.name],
            best_trial=number, best_score=score, best_params=best_params, stop_reason=reason,
            created_at=config.get("created_at"), mlflow_parent_run_id=attrs[study_id].get(PARENT_RUN),
            warm_start_from=config.get("warm_start_from"), warm_start_trials=config.get("warm_start_trials") or [],
        ))
    return out


def _best_trials(conn: Any, maximize: dict[int, bool]) -> dict[int, tuple[int, float]]:
    """Each study's best complete trial (number, score); ties go to the lower number, as in
    ``tuner.study_result``."""
    from optuna.trial import TrialState
    from sqlalchemy import and_, func, select

    m = _tables()
    t, v = m.TrialModel.__table__, m.TrialValueModel.__table__
    joined = t.join(v, and_(v.c.trial_id == t.c.trial_id, v.c.objective == 0))
    done = and_(t.c.study_id.in_(list(maximize)), t.c.state == TrialState.COMPLETE, v.c.value.is_not(None))
    extremes = {r.study_id: (r.lo, r.hi) for r in conn.execute(
        select(t.c.study_id, func.min(v.c.value).label("lo"), func.max(v.c.value).label("hi"))
        .select_from(joined).where(done).group_by(t.c.study_id))}
    if not extremes:
        return {}
    wanted = {i: (hi if maximize[i] else lo) for i, (lo, hi) in extremes.items()}
    best: dict[int, tuple[int, float]] = {}
    for r in conn.execute(
        select(t.c.study_id, t.c.number, v.c.value).select_from(joined)
        .where(done, v.c.value.in_(set(wanted.values()))).order_by(t.c.number)
    ):
        if r.study_id not in best and r.value == wanted[r.study_id]:
            best[r.study_id] = (r.number, r.value)
    return best


def _trial_params(conn: Any, study_id: int, number: int, fixed: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import select

    t = _tables().TrialModel.__table__
    trial_id = conn.execute(select(t.c.trial_id).where(t.c.study_id == study_id, t.c.number == number)).scalar_one()
    result = _results(conn, [trial_id]).get(trial_id) or {}
    return result.get("params") or {**_params(conn, [trial_id]).get(trial_id, {}), **fixed}


# -- trials -------------------------------------------------------------------------------
def list_trials(
    ctx: Context, study_id: int, limit: int, offset: int, sort: TrialSort = "number", order: Order = "asc",
    states: Iterable[str] = (),
) -> TrialPage:
    """A page of a study's trials: sorted by number or score (trials without a score last,
    ties by number), filtered by state; 404 for an unknown study."""
    from optuna.trial import TrialState
    from sqlalchemy import and_, func, select

    m = _tables()
    t, v = m.TrialModel.__table__, m.TrialValueModel.__table__
    with _storage(ctx).engine.connect() as conn:
        _name_of(conn, study_id)
        fixed, runs = _fixed_params_and_runs(conn, study_id)
        where = [t.c.study_id == study_id, ~_surplus(t.c.trial_id)]
        wanted = [TrialState[s] for s in states]
        if wanted:
            where.append(t.c.state.in_(wanted))
        total = conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one()
        key = t.c.number if sort == "number" else v.c.value
        primary = key.asc() if order == "asc" else key.desc()
        rows = conn.execute(
            select(t.c.trial_id, t.c.number, t.c.state, t.c.datetime_start, t.c.datetime_complete, v.c.value)
            .select_from(t.outerjoin(v, and_(v.c.trial_id == t.c.trial_id, v.c.objective == 0)))
            .where(*where).order_by(primary.nulls_last(), t.c.number.asc()).limit(limit).offset(offset)
        ).all()
        ids = [r.trial_id for r in rows]
        results, params = _results(conn, ids), _params(conn, ids)
    items: list[TrialRead] = [
        trial_read(r.number, r.state.name, r.value, _seconds(r.datetime_start, r.datetime_complete),
                   results.get(r.trial_id), params.get(r.trial_id, {}), fixed, runs)
        for r in rows
    ]
    after = offset + len(items)
    return TrialPage(items=items, total=total, limit=limit, offset=offset, next_offset=after if after < total else None)


def _fixed_params_and_runs(conn: Any, study_id: int) -> tuple[dict[str, Any], dict[int, str]]:
    """The study's fixed parameters and its trials' MLflow child runs (``trial_records.mlflow_runs``)."""
    from sqlalchemy import or_, select

    a = _tables().StudyUserAttributeModel.__table__
    attrs = {r.key: json.loads(r.value_json) for r in conn.execute(
        select(a.c.key, a.c.value_json).where(a.c.study_id == study_id, or_(a.c.key == CONFIG, a.c.key.startswith(
            f"{MLFLOW_RUNS}:"))))}
    fixed = ((attrs.get(CONFIG) or {}).get("request") or {}).get("fixed_params") or {}
    return fixed, mlflow_runs(attrs)


def _surplus(trial_id: ColumnElement[Any]) -> ColumnElement[bool]:
    from sqlalchemy import exists

    a = _tables().TrialUserAttributeModel.__table__
    return exists().where(a.c.trial_id == trial_id, a.c.key == SURPLUS)


def _results(conn: Any, ids: list[int]) -> dict[int, dict[str, Any]]:
    from sqlalchemy import select

    if not ids:
        return {}
    a = _tables().TrialUserAttributeModel.__table__
    rows = conn.execute(select(a.c.trial_id, a.c.value_json).where(a.c.trial_id.in_(ids), a.c.key == RESULT))
    return {r.trial_id: json.loads(r.value_json) for r in rows}


def _params(conn: Any, ids: list[int]) -> dict[int, dict[str, Any]]:
    from optuna.distributions import json_to_distribution
    from sqlalchemy import select

    if not ids:
        return {}
    p = _tables().TrialParamModel.__table__
    out: dict[int, dict[str, Any]] = defaultdict(dict)
    for r in conn.execute(
        select(p.c.trial_id, p.c.param_name, p.c.param_value, p.c.distribution_json).where(p.c.trial_id.in_(ids))
    ):
        out[r.trial_id][r.param_name] = json_to_distribution(r.distribution_json).to_external_repr(r.param_value)
    return out


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None
