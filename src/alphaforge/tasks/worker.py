"""The worker process: runs one task at a time for the pool that started it (``tasks.pool``).

It never outlives that pool's process: on Linux the kernel kills it when its parent dies
(``PR_SET_PDEATHSIG``), and a watchdog thread exits when its parent changes (any OS). The
libraries every task needs are imported once, in the fork server that workers are forked
from (``preload``), so a new worker is ready in milliseconds.
"""

from __future__ import annotations

import ctypes
import faulthandler
import logging
import os
import signal
import sys
import threading
import uuid
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alphaforge.settings import Settings

log = logging.getLogger(__name__)

#: Imported by the fork server before it forks any worker (shared, copy-on-write).
PRELOAD = (
    "numpy", "pandas", "pyarrow.parquet", "scipy.stats", "sklearn.linear_model", "sklearn.ensemble", "lightgbm",
    "xgboost", "optuna", "mlflow", "talib", "statsmodels.tsa.statespace.sarimax", "arch",
    "alphaforge.tasks.kinds", "alphaforge.tasks.runner", "alphaforge.training.trainer",
    "alphaforge.tuning.tuner", "alphaforge.tuning.automl", "alphaforge.training.prediction",
    "alphaforge.features.generation", "alphaforge.tasks.worker", "alphaforge.tasks.preload",
)
_PR_SET_PDEATHSIG = 1
WATCHDOG_INTERVAL_S = 0.5


def main(settings: Settings, conn: Connection, owner: int, stacks: str | None = None) -> None:
    """Serve ``("run", task_id)`` messages until the pipe closes; answer ``("done", task_id)``.
    ``owner``: the pid of the process whose pool this worker serves; ``stacks``: the file
    this worker writes its threads' stacks to on SIGUSR1 (the pool asks when it hangs)."""
    _release_fork_server()
    _die_with_parent(os.getppid(), owner)
    if stacks is not None and hasattr(signal, "SIGUSR1"):
        # faulthandler keeps the file open; it writes from its C handler, GIL or not.
        faulthandler.register(signal.SIGUSR1, file=open(stacks, "w"), all_threads=True)  # noqa: SIM115
    from alphaforge import logs
    from alphaforge.context import Context
    from alphaforge.tasks.runner import run_task

    logs.configure()
    ctx = Context.from_settings(settings)
    conn.send(("ready", os.getpid()))
    try:
        while True:
            try:
                kind, task_id = conn.recv()
            except (EOFError, OSError):
                return  # the pool closed the pipe: stop
            if kind != "run":
                continue
            token = logs.request_id.set(f"task-{task_id}")
            try:
                run_task(ctx, uuid.UUID(task_id))
            except Exception:  # noqa: BLE001 - run_task records outcomes; this is a bug in it
                log.exception("task %s could not be run", task_id)
            finally:
                logs.request_id.reset(token)
            conn.send(("done", task_id))
    finally:
        ctx.close()


def _release_fork_server() -> None:
    """Close this worker's copy of the fork server's keep-alive pipe. Every process forked
    by the fork server inherits it (so it could fork through it too); while any worker holds
    it, the fork server cannot notice that the pool's process died, and so never exits."""
    from multiprocessing import forkserver

    server = forkserver._forkserver  # noqa: SLF001 - no public way to drop the inherited end
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
        server._forkserver_alive_fd = None  # noqa: SLF001


def _die_with_parent(parent: int, owner: int) -> None:
    """Exit when the fork server (our parent: it exits with the pool's process) or the pool's
    process itself is gone: the kernel's parent-death signal on Linux, a watchdog anywhere."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # pragma: no cover - other libcs
            pass
    if os.getppid() != parent or not _alive(owner):  # gone before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent and _alive(owner):
            threading.Event().wait(WATCHDOG_INTERVAL_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
