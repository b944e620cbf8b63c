"""Who is acting: the API key on whose behalf this thread of work runs.

Set by the API's access middleware for a request and by the task runner for a task (the
key that submitted it), read as the default of every ``created_by`` column, so each row a
request creates records its key without every service passing it along."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

_current: ContextVar[uuid.UUID | None] = ContextVar("alphaforge_actor", default=None)


def current() -> uuid.UUID | None:
    """The acting key's id (None: the system itself, e.g. bundled data or the CLI)."""
    return _current.get()


def bind(key_id: uuid.UUID | None) -> Token[uuid.UUID | None]:
    """Act as ``key_id`` from here on in this context (and the threads it starts work in)."""
    return _current.set(key_id)


def unbind(token: Token[uuid.UUID | None]) -> None:
    _current.reset(token)


@contextmanager
def acting_as(key_id: uuid.UUID | None) -> Iterator[None]:
    token = bind(key_id)
    try:
        yield
    finally:
        unbind(token)
