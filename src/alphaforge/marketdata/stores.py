"""What the database-backed market-data stores (macro, fundamentals, news) share: one write
lock per key (a series, a symbol), so concurrent uploads of one key queue instead of racing
to the unique constraint. (One store of each per process lives on the Context, so its read
cache is shared by every request.)"""

from __future__ import annotations

import threading
from collections.abc import Hashable


class KeyedLocks:
    """A lock per key, created on first use."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, key: Hashable) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())
