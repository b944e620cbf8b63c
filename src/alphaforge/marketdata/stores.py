"""What the database-backed market-data stores (macro, fundamentals, news) share: one store
per database per process (its read cache is then shared by every request), and one write
lock per key (a series, a symbol), so concurrent uploads of one key queue instead of
racing to the unique constraint."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from alphaforge.storage.db import Database

S = TypeVar("S")


class KeyedLocks:
    """A lock per key, created on first use."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, key: Hashable) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


def one_per_database(store_class: Callable[[Database], S]) -> Callable[[Any], S]:
    """A getter of the one ``store_class`` of a Context's (or a Database's) database; a
    store given to it is returned as is."""
    stores: weakref.WeakKeyDictionary[Database, S] = weakref.WeakKeyDictionary()
    guard = threading.Lock()

    def get(ctx_or_db: Any) -> S:
        if isinstance(ctx_or_db, store_class):  # type: ignore[arg-type]
            return ctx_or_db
        db = ctx_or_db if isinstance(ctx_or_db, Database) else ctx_or_db.db
        with guard:
            store = stores.get(db)
            if store is None:
                store = stores[db] = store_class(db)
            return store

    return get
