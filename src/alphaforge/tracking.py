"""MLflow tracking: every model training is logged as one MLflow run; every tuning study
as one parent run with one child run per trial.

The upstream system meant to log each training but only did so on a path no endpoint took
(see the reference, section 8.9). Here each training is one run with the model's params,
per-fold and summary CV metrics, the naive baseline, tags, the model bytes under ``model/``
and a ``lineage.json``.

Each ``Tracker`` holds its own ``MlflowClient`` bound to its tracking URI, and never the
global ``mlflow`` state, so several trackers (one per app or test) can live in one process.
A store that cannot be reached, or that fails, becomes ``DependencyUnavailable("mlflow")``
(503); its URI (without the password) and error go to the log, not to the client.

HTTP servers: retries and timeouts come from MLflow's own environment variables
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_TIMEOUT``). MLflow's defaults (7
retries with backoff, 120 s) would hold a training for minutes when the server is down, so
unless the deployment sets them we use 2 retries and 30 s.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from alphaforge.errors import DependencyUnavailable

if TYPE_CHECKING:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from alphaforge.settings import Settings

# MLflow's limits (mlflow.utils.validation); longer values would be refused.
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
_BAD_KEY_CHARS = re.compile(r"[^\w./\- :]")
_ELLIPSIS = "..."

# "Creating initial MLflow database tables..." and the like, on every fresh store.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)


def _backend_errors() -> tuple[type[BaseException], ...]:
    """What a failing store, server or artifact folder raises (the rest is our bug).

    mlflow is imported lazily throughout: its import alone takes seconds.
    """
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    return (MlflowException, SQLAlchemyError, OSError)  # requests' errors are OSErrors


@dataclass(frozen=True)
class TrainingRun:
    """What one training logs; see ``Tracker.log_training`` for the MLflow names."""

    run_name: str
    params: dict[str, Any]
    fold_metrics: list[dict[str, float | int | None]]
    summary: dict[str, float | int | None]
    baseline: dict[str, float | int | None]
    tags: dict[str, str]
    artifact: bytes
    artifact_name: str
    lineage: dict[str, Any]


@dataclass(frozen=True)
class StudyRun:
    """The parent run of a tuning study: its configuration; results come at ``finish_study``."""

    run_name: str
    params: dict[str, Any]
    tags: dict[str, str]


@dataclass(frozen=True)
class TrialRun:
    """One tuning trial, logged as a child of the study's run (possibly from another process)."""

    parent_run_id: str
    run_name: str
    params: dict[str, Any]
    #: Per evaluated fold, logged as ``fold_<name>`` with step = fold index.
    fold_metrics: list[dict[str, float | int | None]]
    #: Logged as they are (``score``, ``cv_mean_mse`` ...); None is skipped.
    metrics: dict[str, float | int | None]
    tags: dict[str, str]
    failed: bool = False


class Tracker:
    """Logs trainings to one MLflow experiment at one tracking URI.

    Nothing is contacted until the first ``log_training``: the client (for a database URI,
    the store and MLflow's own migrations) and the experiment id are then created once
    and kept.
    """

    def __init__(self, tracking_uri: str, experiment: str, artifact_location: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_location = artifact_location
        self._lock = threading.Lock()
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracker:
        return cls(
            settings.resolved_mlflow_tracking_uri,
            settings.mlflow_experiment,
            settings.mlflow_artifact_location,
        )

    def log_training(self, run: TrainingRun) -> str:
        """Log ``run`` as one FINISHED MLflow run and return its id.

        Params: ``run.params`` flattened (``a.b``), stringified with ``str`` like
        ``mlflow.log_params``, and cut to MLflow's length limits. Metrics: ``fold_<name>``
        with step = fold index, ``cv_<name>`` and ``baseline_<name>``; None is skipped.
        Tags: ``run_type=training`` plus ``run.tags``. Artifacts: ``model/<artifact_name>``
        and ``lineage.json``. If logging fails after the run exists, the run is marked
        FAILED before the error is raised.
        """
        # Everything that can be wrong with the input fails here, before a run exists.
        params, metrics, tags = _entities(run)
        lineage = json.dumps(
            run.lineage, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False, default=str
        )
        _check_file_name(run.artifact_name)

        client, experiment_id = self._connect()
        run_id: str | None = None
        try:
            run_id = client.create_run(experiment_id, run_name=run.run_name).info.run_id
            client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
            with tempfile.TemporaryDirectory(prefix="alphaforge-mlflow-") as tmp:
                path = Path(tmp) / run.artifact_name
                path.write_bytes(run.artifact)
                client.log_artifact(run_id, str(path), artifact_path="model")
            client.log_text(run_id, lineage, "lineage.json")
            client.set_terminated(run_id, "FINISHED")
        except BaseException as exc:
            if run_id is not None:
                _mark_failed(client, run_id)
            if isinstance(exc, _backend_errors()):
                raise self._unavailable("logging the training run failed", exc) from exc
            raise
        return run_id

    # -- tuning -----------------------------------------------------------------------
    def start_study(self, run: StudyRun) -> str:
        """Create the RUNNING parent run of a study, with its configuration as params."""
        params = _param_entities(run.params)
        tags = _tag_entities({"run_type": "tuning", **run.tags})
        client, experiment_id = self._connect()
        run_id: str | None = None
        try:
            run_id = client.create_run(experiment_id, run_name=run.run_name).info.run_id
            client.log_batch(run_id, params=params, tags=tags)
        except BaseException as exc:
            if run_id is not None:
                _mark_failed(client, run_id)
            if isinstance(exc, _backend_errors()):
                raise self._unavailable("creating the study run failed", exc) from exc
            raise
        return run_id

    def log_trial(self, run: TrialRun) -> str:
        """Log one trial as a finished child run (tag ``mlflow.parentRunId``); FAILED when ``run.failed``."""
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        params = _param_entities(run.params)
        now = int(time.time() * 1000)
        metrics = [m for i, fold in enumerate(run.fold_metrics) for m in _metric_entities("fold_", fold, now, i)]
        metrics += _metric_entities("", run.metrics, now)
        tags = _tag_entities({"run_type": "tuning_trial", **run.tags, MLFLOW_PARENT_RUN_ID: run.parent_run_id})
        client, experiment_id = self._connect()
        run_id: str | None = None
        try:
            run_id = client.create_run(experiment_id, run_name=run.run_name).info.run_id
            client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
            client.set_terminated(run_id, "FAILED" if run.failed else "FINISHED")
        except BaseException as exc:
            if run_id is not None:
                _mark_failed(client, run_id)
            if isinstance(exc, _backend_errors()):
                raise self._unavailable("logging a trial run failed", exc) from exc
            raise
        return run_id

    def log_trials(self, runs: list[TrialRun]) -> list[str]:
        """Log several trials as finished child runs, as ``log_trial`` logs each; their run ids,
        in order.

        On a database store (``sqlite:``, ``postgresql:`` ...) the runs are written in one
        transaction: the rows MLflow's ``create_run``, ``log_batch`` and ``set_terminated`` write
        for each (the run, its tags with ``mlflow.runName``, params, metrics and latest metrics),
        checked by MLflow's own validation, inserted a table at a time. Through MLflow's API a
        child run cost three transactions of MLflow's ORM (about 30 ms of CPU here), more than a
        cheap trial; a batch costs about a millisecond a run. Any other store (an HTTP server)
        gets ``log_trial`` per run.
        """
        if not runs:
            return []
        client, experiment_id = self._connect()
        store = _database_store(client)
        if store is None:
            return [self.log_trial(run) for run in runs]
        rows, ids = _TrialRows(), []
        try:
            experiment = store.get_experiment(experiment_id)
            if experiment.lifecycle_stage != "active":
                raise self._unavailable(f"experiment {self.experiment!r} is deleted")
            for run in runs:
                ids.append(rows.add(store, run, experiment.experiment_id, experiment.artifact_location))
            rows.insert(store.engine)
        except _backend_errors() as exc:
            raise self._unavailable("logging trial runs failed", exc) from exc
        return ids

    def finish_study(
        self, run_id: str, metrics: Mapping[str, float | int | None], tags: Mapping[str, str], status: str = "FINISHED"
    ) -> None:
        """Log the study's results as metrics and tags (params are immutable) and end its run."""
        entities = _metric_entities("", metrics, int(time.time() * 1000))
        client, _ = self._connect()
        try:
            client.log_batch(run_id, metrics=entities, tags=_tag_entities(dict(tags)))
            client.set_terminated(run_id, status)
        except _backend_errors() as exc:
            raise self._unavailable("finishing the study run failed", exc) from exc

    # -- reading ----------------------------------------------------------------------
    def run_stage(self, run_id: str) -> str | None:
        """The lifecycle stage of run ``run_id`` in the tracking store ("active" or
        "deleted"), in any experiment; None when the store holds no such run. Creates
        nothing (no experiment, no run)."""
        from mlflow.exceptions import MlflowException

        with self._lock:
            try:
                if self._client is None:
                    self._client = self._new_client()
            except _backend_errors() as exc:
                raise self._unavailable("cannot reach the tracking store", exc) from exc
            client = self._client
        try:
            return client.get_run(run_id).info.lifecycle_stage
        except MlflowException as exc:
            # No such run, or an id this store cannot hold: either way, not a run here.
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise self._unavailable("reading the run failed", exc) from exc
        except _backend_errors() as exc:
            raise self._unavailable("reading the run failed", exc) from exc

    # -- connection -------------------------------------------------------------------
    def _connect(self) -> tuple[MlflowClient, str]:
        with self._lock:
            try:
                if self._client is None:
                    self._client = self._new_client()
                if self._experiment_id is None:
                    self._experiment_id = self._get_or_create_experiment(self._client)
            except _backend_errors() as exc:
                raise self._unavailable("cannot reach the tracking store", exc) from exc
            return self._client, self._experiment_id

    def _new_client(self) -> MlflowClient:
        # A research backend should not phone home; a deployment can set it to false.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        # MLflow's HTTP defaults (7 retries with backoff, 120 s timeout) hold a training for
        # minutes when the server is down; a deployment can still set its own values.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        from mlflow.tracking import MlflowClient

        _probe_database(self.tracking_uri)
        # For a database URI the constructor builds the store and runs MLflow's migrations;
        # MLflow's mappers raise a SQLAlchemy deprecation warning we can do nothing about.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mlflow\.")
            return MlflowClient(tracking_uri=self.tracking_uri)

    def _get_or_create_experiment(self, client: MlflowClient) -> str:
        from mlflow.exceptions import MlflowException

        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is None:
            try:
                return client.create_experiment(self.experiment, artifact_location=self.artifact_location)
            except MlflowException:
                # Another process may have created it since we looked.
                experiment = client.get_experiment_by_name(self.experiment)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage != "active":
            raise self._unavailable(
                f"experiment {self.experiment!r} is deleted; restore it in MLflow "
                "or set ALPHAFORGE_MLFLOW_EXPERIMENT to another name"
            )
        return experiment.experiment_id

    def _unavailable(self, message: str, exc: BaseException | None = None) -> DependencyUnavailable:
        """The 503 a client sees names MLflow, not its URI or its error text: those go to
        the log (under the request or task id)."""
        detail = f": {_first_line(exc)}" if exc is not None else ""
        logging.getLogger(__name__).warning(
            "mlflow at %s: %s%s", redact_uri(self.tracking_uri), message, detail
        )
        return DependencyUnavailable("mlflow", message)


def _database_store(client: MlflowClient) -> Any:
    """The client's ``SqlAlchemyStore`` when its tracking URI is a database, else None."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = client._tracking_client.store
    return store if isinstance(store, SqlAlchemyStore) else None


class _TrialRows:
    """The rows of finished child runs, as MLflow's SQL store writes them (``Tracker.log_trials``)."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self.tags: list[dict[str, Any]] = []
        self.params: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.latest: list[dict[str, Any]] = []

    def add(self, store: Any, run: TrialRun, experiment_id: str, artifact_location: str) -> str:
        """Add one run (validated as ``log_batch`` validates its data); its new id."""
        import uuid

        from mlflow.entities import RunStatus, SourceType
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
        from mlflow.utils.uri import append_to_uri_path
        from mlflow.utils.validation import (
            _validate_batch_log_data, _validate_batch_log_limits, _validate_param_keys_unique, _validate_run_id,
        )

        params = _param_entities(run.params)
        now = int(time.time() * 1000)
        metrics = [m for i, fold in enumerate(run.fold_metrics) for m in _metric_entities("fold_", fold, now, i)]
        metrics += _metric_entities("", run.metrics, now)
        tags = _tag_entities({"run_type": "tuning_trial", **run.tags, MLFLOW_PARENT_RUN_ID: run.parent_run_id,
                              MLFLOW_RUN_NAME: run.run_name})
        metrics, params, tags = _validate_batch_log_data(metrics, params, tags)
        _validate_batch_log_limits(metrics, params, tags)
        _validate_param_keys_unique(params)
        run_id = uuid.uuid4().hex
        _validate_run_id(run_id)
        self.runs.append({
            "run_uuid": run_id, "name": run.run_name, "source_type": SourceType.to_string(SourceType.UNKNOWN),
            "source_name": "", "entry_point_name": "", "user_id": "unknown",
            "status": RunStatus.to_string(RunStatus.FAILED if run.failed else RunStatus.FINISHED),
            "start_time": now, "end_time": now, "deleted_time": None, "source_version": "",
            "lifecycle_stage": "active", "experiment_id": int(experiment_id),
            "artifact_uri": append_to_uri_path(artifact_location, run_id, SqlAlchemyStore.ARTIFACTS_FOLDER_NAME),
        })
        self.tags += [{"key": t.key, "value": t.value, "run_uuid": run_id} for t in tags]
        self.params += [{"key": p.key, "value": p.value, "run_uuid": run_id} for p in params]
        latest: dict[str, dict[str, Any]] = {}
        for m in dict.fromkeys(metrics):  # MLflow drops a repeated metric of a batch
            is_nan, value = store.sanitize_metric_value(m.value)
            row = {"key": m.key, "value": value, "timestamp": m.timestamp, "step": m.step, "is_nan": is_nan,
                   "run_uuid": run_id}
            self.metrics.append(row)
            held = latest.get(m.key)
            if held is None or (row["step"], row["timestamp"], row["value"]) > (held["step"], held["timestamp"], held["value"]):
                latest[m.key] = row
        self.latest += latest.values()
        return run_id

    def insert(self, engine: Any) -> None:
        """Every row, in one transaction (the runs first: the rest point at them)."""
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
        from sqlalchemy import insert

        with engine.begin() as conn:
            for model, rows in ((SqlRun, self.runs), (SqlTag, self.tags), (SqlParam, self.params),
                                (SqlMetric, self.metrics), (SqlLatestMetric, self.latest)):
                if rows:
                    conn.execute(insert(model.__table__), rows)


# -- helpers -------------------------------------------------------------------------
def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; any other value (lists too) is a leaf."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        leaves = flatten_params(value, f"{name}.") if isinstance(value, Mapping) and value else {name: value}
        for leaf, leaf_value in leaves.items():
            if leaf in flat:
                raise ValueError(f"parameter {leaf!r} is given twice (as a dotted key and nested)")
            flat[leaf] = leaf_value
    return flat


def mlflow_key(raw: str) -> str:
    """A key MLflow accepts: allowed characters, not a path that normalises away, <= 250."""
    key = _BAD_KEY_CHARS.sub("_", raw) or "_"
    if posixpath.normpath(key) != key or key.startswith("/"):
        key = key.replace("/", "_")
    if key.startswith("."):
        key = f"_{key}"
    if len(key) > MAX_KEY_LENGTH:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
        key = f"{key[: MAX_KEY_LENGTH - 17]}-{digest}"
    return key


def _truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def _entities(run: TrainingRun) -> tuple[list[Param], list[Metric], list[RunTag]]:
    params = _param_entities(run.params)
    now = int(time.time() * 1000)
    metrics: list[Metric] = []
    for index, fold in enumerate(run.fold_metrics):
        metrics += _metric_entities("fold_", fold, now, index)
    metrics += _metric_entities("cv_", run.summary, now)
    metrics += _metric_entities("baseline_", run.baseline, now)
    return params, metrics, _tag_entities({"run_type": "training", **run.tags})


def _param_entities(raw_params: Mapping[str, Any]) -> list[Param]:
    """Flattened (``a.b``), stringified like ``mlflow.log_params``, cut to MLflow's limits."""
    from mlflow.entities import Param

    params: dict[str, str] = {}
    for raw, value in flatten_params(raw_params).items():
        key = mlflow_key(str(raw))
        if key in params:
            raise ValueError(f"parameters {raw!r} and another one both map to the MLflow key {key!r}")
        params[key] = _truncate(str(value), MAX_PARAM_VALUE_LENGTH)
    return [Param(k, v) for k, v in params.items()]


def _metric_entities(prefix: str, values: Mapping[str, float | int | None], now: int, step: int = 0) -> list[Metric]:
    from mlflow.entities import Metric

    return [
        Metric(mlflow_key(f"{prefix}{name}"), float(value), now, step) for name, value in values.items() if value is not None
    ]


def _tag_entities(values: Mapping[str, Any]) -> list[RunTag]:
    from mlflow.entities import RunTag

    return [RunTag(mlflow_key(k), _truncate(str(v), MAX_TAG_VALUE_LENGTH)) for k, v in values.items()]


def _check_file_name(name: str) -> None:
    if not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        raise ValueError(f"artifact_name must be a plain file name, got {name!r}")


def _mark_failed(client: MlflowClient, run_id: str) -> None:
    try:
        client.set_terminated(run_id, "FAILED")
    except Exception:  # noqa: BLE001 - the original error is the one to report
        logging.getLogger(__name__).warning("could not mark MLflow run %s FAILED", run_id)


def _probe_database(uri: str) -> None:
    """Fail fast on an unreachable database server.

    MLflow retries creating its engine ten times with backoff (about 100 s) before giving
    up; one quick connection of our own tells us sooner.
    """
    scheme = urlsplit(uri).scheme.split("+")[0]
    if scheme not in ("postgresql", "mysql", "mssql"):
        return
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    connect_args = {"connect_timeout": 10} if scheme in ("postgresql", "mysql") else {}
    engine = create_engine(uri, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def redact_uri(uri: str) -> str:
    """The URI with its password masked and its query dropped, fit for messages and logs."""
    base = uri.split("?", 1)[0].split("#", 1)[0]
    parts = urlsplit(base)
    if parts.password is None:
        return base
    host = parts.netloc.rsplit("@", 1)[1]
    return base.replace(parts.netloc, f"{parts.username or ''}:***@{host}", 1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return _truncate(text[0] if text else type(exc).__name__, 300)
