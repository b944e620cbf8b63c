"""How a long service function reports progress, and learns it was cancelled.

Services call ``progress(fraction, message)`` between units of work (a fold, a trial, a
candidate). A task runner's callback records it and raises ``Cancelled`` when the task was
cancelled, so the service stops at the next unit boundary; synchronous callers pass
``no_progress``.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]


class Cancelled(Exception):
    """Raised by a progress callback: the task was cancelled; stop and write nothing more."""


def no_progress(fraction: float, message: str) -> None:
    """The callback of synchronous calls: nothing to report to."""
