"""What the database-backed market-data stores (macro, fundamentals, news) share: one store
per database per process (its read cache is then shared by every request), one write
lock per key (a series, a symbol), so concurrent uploads of one key queue instead of
racing to the unique constraint, and the shape of the quality gate's 422."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from alphaforge.errors import InvalidInput
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


class BadRow(Protocol):
    row: int  # 1-based position in the upload
    problems: list[str]

    def label(self) -> str:
        """What identifies the row in a message (its key fields)."""
        ...


R = TypeVar("R", bound=BadRow)


@dataclass(frozen=True)
class RecordsQualityReport(Generic[R]):
    """The data-quality gate's verdict on an upload of records: ok, or the bad rows."""

    bad_rows: list[R]
    what: str  # "record(s)", "news article(s)": how the 422 names the records

    @property
    def ok(self) -> bool:
        return not self.bad_rows

    def error(self, subject: str, limit: int = 20) -> InvalidInput:
        shown = self.bad_rows[:limit]
        lines = "; ".join(f"row {b.row} ({b.label()}): {', '.join(b.problems)}" for b in shown)
        more = f"; and {len(self.bad_rows) - limit} more" if len(self.bad_rows) > limit else ""
        return InvalidInput(
            f"{len(self.bad_rows)} {self.what} for {subject} failed the data-quality gate, nothing was "
            f"stored: {lines}{more}",
            bad_rows=[b.__dict__ for b in shown],
            n_bad_rows=len(self.bad_rows),
        )
