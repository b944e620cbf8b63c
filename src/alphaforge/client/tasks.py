"""Task handles: what the ``/async`` routes return, so a notebook can submit long work,
keep going, and later ``wait()`` with a progress bar instead of polling by hand."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Any, Generic, TypeVar

from alphaforge.client.errors import TaskCancelled, TaskFailed, WaitTimeout
from alphaforge.client.http import Transport, without_none

T = TypeVar("T")
FINISHED = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
#: Longest pause between two polls of a running task.
MAX_POLL_S = 1.0


def _raw(result: dict[str, Any]) -> Any:
    return result


class Task(Generic[T]):
    """A task on the server. ``wait()`` returns its result, made into what the submitting
    call promises (a DataFrame for a generated dataset, the training's report, ...)."""

    def __init__(self, transport: Transport, task_id: str, kind: str = "", status: str = "PENDING",
                 finish: Callable[[dict[str, Any]], T] = _raw) -> None:
        self._transport, self._finish = transport, finish
        self.id, self.kind, self.status = str(task_id), kind, status
        #: The last ``GET /api/v1/tasks/{id}`` document (empty before the first refresh).
        self.info: dict[str, Any] = {}

    @property
    def progress(self) -> float:
        return float(self.info.get("progress") or 0.0)

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    def refresh(self) -> dict[str, Any]:
        """Read the task's status, progress and result now."""
        return self._remember(self._transport.json("GET", f"/tasks/{self.id}"))

    def cancel(self) -> dict[str, Any]:
        """Revoke it if pending, stop it if running (a Conflict once it has finished)."""
        return self._remember(self._transport.json("POST", f"/tasks/{self.id}/cancel"))

    def result(self) -> T:
        """The finished task's result; raises TaskFailed or TaskCancelled as ``wait`` does."""
        if self.info.get("status") not in FINISHED:
            self.refresh()
        if self.status == "SUCCESS":
            return self._finish(self.info.get("result") or {})
        if self.status == "REVOKED":
            raise TaskCancelled(self.info)
        if self.status == "FAILURE":
            raise TaskFailed(self.info)
        raise WaitTimeout(f"task {self.id} is still {self.status}: wait() for it")

    def wait(self, progress: bool = True, timeout: float | None = None, file: IO[str] | None = None) -> T:
        """Poll until the task finishes and return its result, showing a progress bar
        (tqdm: a text bar in a terminal, a widget in a notebook) driven by the task's
        progress and message; ``file`` is where a text bar is written (default stderr).
        Raises TaskFailed or TaskCancelled, or WaitTimeout after ``timeout`` seconds (the
        task goes on). Interrupting the wait leaves the task running too."""
        from tqdm.auto import tqdm

        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.1
        bar = tqdm(total=100, desc=self.kind or "task", file=file, disable=not progress, leave=True,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}")
        try:
            while True:
                self.refresh()
                bar.n = round(self.progress * 100)
                bar.set_postfix_str(self.info.get("progress_message") or self.status.lower(), refresh=False)
                bar.refresh()
                if self.done:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise WaitTimeout(f"task {self.id} still {self.status} after {timeout} s; it goes on")
                time.sleep(pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic())))
                pause = min(pause * 1.5, MAX_POLL_S)
        finally:
            bar.close()
        return self.result()

    def _remember(self, info: dict[str, Any]) -> dict[str, Any]:
        self.info, self.status, self.kind = info, info["status"], info.get("kind", self.kind)
        return info

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.kind} {self.status} {self.progress:.0%}>"


class Tasks:
    """``/api/v1/tasks``: the tasks of everyone's work (admin keys) or your own."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def get(self, task_id: str) -> dict[str, Any]:
        return self._transport.json("GET", f"/tasks/{task_id}")

    def list(self, kind: str | None = None, status: str | None = None, include_children: bool = False,
             skip: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first; ``kind`` e.g. train, generate, tune; ``status`` e.g. STARTED."""
        params = without_none({"kind": kind, "status": status, "include_children": include_children,
                               "skip": skip, "limit": limit})
        return self._transport.json("GET", "/tasks", params=params)

    def cancel(self, task_id: str) -> dict[str, Any]:
        return self.handle(task_id).cancel()

    def handle(self, task_id: str) -> Task[dict[str, Any]]:
        """A handle on an existing task (e.g. one a colleague or the CLI submitted): its
        ``wait()`` returns the raw result document."""
        task: Task[dict[str, Any]] = Task(self._transport, task_id)
        task.refresh()
        return task


def submitted(transport: Transport, response: dict[str, Any], finish: Callable[[dict[str, Any]], T]) -> Task[T]:
    """The handle of a task an ``/async`` route just accepted (its 202 body)."""
    return Task(transport, response["task_id"], response.get("kind", ""), response.get("status", "PENDING"), finish)
