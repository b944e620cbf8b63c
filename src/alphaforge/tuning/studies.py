"""Where Optuna studies live: the service's own database, beside (not inside) our tables.

Optuna's RDB storage keeps its own ``alembic_version`` table, which would collide with
ours in the same schema. So embedded SQLite uses a separate ``optuna.db`` file in
``data_dir``, and PostgreSQL the same database with ``search_path=optuna`` (a schema
created here on first use); ``ALPHAFORGE_OPTUNA_STORAGE_URL`` overrides both
(``Settings.resolved_optuna_storage_url``). Every process with the same settings reaches
the same studies, which is what lets several workers share one.

Opening an RDB storage checks (and may create) Optuna's tables, so storages are cached per
URL and process (a forked worker must not reuse its parent's connections).
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
from typing import TYPE_CHECKING

from alphaforge.errors import DependencyUnavailable

if TYPE_CHECKING:
    from optuna.storages import BaseStorage, RDBStorage

#: Seconds a SQLite writer waits for another process's write lock before failing.
SQLITE_BUSY_TIMEOUT_S = 60

log = logging.getLogger(__name__)
_storages: dict[tuple[str, int], RDBStorage] = {}
_lock = threading.Lock()


def storage(url: str) -> RDBStorage:
    """The (cached) Optuna storage at ``url``; 503 when the database cannot be reached."""
    key = (url, os.getpid())
    with _lock:
        if key not in _storages:
            _storages[key] = _open(url)
        return _storages[key]


def _open(url: str) -> RDBStorage:
    import optuna
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parsed = make_url(url)
    engine_kwargs: dict[str, object] = {}
    try:
        if parsed.get_backend_name() == "sqlite":
            engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
            _prepare_sqlite(parsed.database)
        elif parsed.get_backend_name() == "postgresql":
            engine_kwargs["pool_pre_ping"] = True
            _ensure_schema(url)
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        if parsed.get_backend_name() == "sqlite":
            _relax_sqlite_sync(storage)
        return storage
    except (SQLAlchemyError, OSError, sqlite3.Error) as exc:
        from alphaforge.tracking import redact_uri

        # The client learns which dependency; its URL and the driver's text go to the log.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("optuna storage at %s: cannot open it: %s", redact_uri(url), first[:300])
        raise DependencyUnavailable("optuna storage", "cannot open it") from exc


def _prepare_sqlite(path: str | None) -> None:
    """Create the folder and switch the file to WAL once, so readers never block the writer."""
    if not path or path == ":memory:":
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def _relax_sqlite_sync(storage: RDBStorage) -> None:
    """synchronous=NORMAL: in WAL mode still safe from corruption, and one fsync per checkpoint
    instead of one per commit (a trial commits a dozen times)."""
    from sqlalchemy import event

    def _pragmas(dbapi_conn: object, _record: object) -> None:
        cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", _pragmas)
    storage.engine.dispose()  # connections opened before the listener get replaced


def _ensure_schema(url: str) -> None:
    """``CREATE SCHEMA IF NOT EXISTS`` for the schema named by ``-csearch_path=...`` in the URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.pool import NullPool

    options = str(make_url(url).query.get("options", ""))
    match = re.search(r"search_path=([A-Za-z_][A-Za-z0-9_]*)", options)
    if match is None:
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{match.group(1)}"'))
    except IntegrityError:
        pass  # another process created it between the check and the insert
    finally:
        engine.dispose()


def trial_storage(url: str) -> BaseStorage:
    """A storage for running trials of studies at ``url`` in this process (``run_trials``): Optuna's
    own cached storage over the (cached) ``storage(url)``, with this process's running trials
    written once, when they end (``BufferedTrialStorage``). One per ``run_trials`` call: its
    cache of the study's trials lives as long as the call."""
    from alphaforge.tuning.trial_buffer import BufferedTrialStorage

    return BufferedTrialStorage(storage(url))
