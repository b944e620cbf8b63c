"""What every conformance check shares: its failure, how it names itself, how a suite runs."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., None])


class ConformanceError(AssertionError):
    """One or more conformance checks failed for a plugin.

    ``failures`` maps each failing check's name to what it found; ``str()`` names every
    one of them, and the plugin.
    """

    def __init__(self, plugin: str, failures: dict[str, str]) -> None:
        self.plugin = plugin
        self.failures = dict(failures)
        if len(failures) == 1:
            ((check, message),) = failures.items()
            text = f"{check} failed for {plugin}: {message}"
        else:
            lines = "\n".join(f"- {check}: {message}" for check, message in failures.items())
            text = f"{len(failures)} conformance checks failed for {plugin}:\n{lines}"
        super().__init__(text)


def require(condition: object, message: str) -> None:
    """``assert`` that survives ``python -O``: an AssertionError saying ``message``."""
    if not condition:
        raise AssertionError(message)


def plugin_name(cls: type) -> str:
    return str(getattr(cls, "key", None) or cls.__qualname__)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AssertionError):
        return str(exc).strip() or "an assertion failed"
    return f"{type(exc).__name__} raised: {exc}"


def conformance_check(func: F) -> F:
    """Mark a check ``func(cls, ...)``: whatever it raises (a failed expectation, or an
    error from the plugin itself) becomes a :class:`ConformanceError` naming the check."""

    @functools.wraps(func)
    def wrapper(cls: type, *args: Any, **kwargs: Any) -> None:
        try:
            func(cls, *args, **kwargs)
        except ConformanceError:
            raise
        except Exception as exc:  # a plugin error fails the check too, named
            raise ConformanceError(plugin_name(cls), {func.__name__: _describe(exc)}) from exc

    return wrapper  # type: ignore[return-value]


def run_checks(cls: type, checks: Sequence[Callable[..., None]], **kwargs: Any) -> None:
    """Run every check on ``cls`` (each gets ``kwargs``); one :class:`ConformanceError`
    listing every check that failed, or nothing."""
    failures: dict[str, str] = {}
    first: ConformanceError | None = None
    for check in checks:
        try:
            check(cls, **kwargs)
        except ConformanceError as exc:
            failures.update(exc.failures)
            first = first or exc
    if failures:
        raise ConformanceError(plugin_name(cls), failures) from first
