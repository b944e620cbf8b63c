"""What every upload gate (bars, macro, fundamentals, news) shares: finding the columns it
needs, and its verdict: ok, or a 422 that names the first bad rows, counts all of them and
says nothing was stored.

A gate checks whole columns at once (one boolean mask per rule) and describes only the
first :data:`MAX_BAD_ROWS` bad rows: an upload of millions of bad rows costs a few masks,
never a Python object per bad row."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import pandas as pd

from alphaforge.errors import InvalidInput
from alphaforge.ingestion.records import Records

#: Bad rows a 422 describes (all of them are counted).
MAX_BAD_ROWS = 20


class BadRecord(Protocol):
    row: int  # 1-based position in the upload
    problems: list[str]

    def label(self) -> str:
        """What identifies the row in a message (its key fields)."""
        ...


R = TypeVar("R", bound=BadRecord)


@dataclass(frozen=True)
class RecordsQualityReport(Generic[R]):
    """The data-quality gate's verdict on an upload of records: ok, or the bad rows."""

    bad_rows: list[R]  # the first MAX_BAD_ROWS bad rows, in upload order
    n_bad_rows: int  # every bad row
    what: str  # "record(s)", "news article(s)": how the 422 names the records

    @property
    def ok(self) -> bool:
        return self.n_bad_rows == 0

    def error(self, subject: str, limit: int = MAX_BAD_ROWS) -> InvalidInput:
        shown = self.bad_rows[:limit]
        lines = "; ".join(f"row {b.row} ({b.label()}): {', '.join(b.problems)}" for b in shown)
        more = f"; and {self.n_bad_rows - len(shown)} more" if self.n_bad_rows > len(shown) else ""
        return InvalidInput(
            f"{self.n_bad_rows} {self.what} for {subject} failed the data-quality gate, nothing was "
            f"stored: {lines}{more}",
            bad_rows=[b.__dict__ for b in shown],
            n_bad_rows=self.n_bad_rows,
        )


#: A rule of a gate: the rows that break it, and its problem (a text, or the text for row i).
Rule = tuple[np.ndarray, str | Callable[[int], str]]


def first_true(mask: np.ndarray, limit: int, block: int = 1 << 16) -> list[int]:
    """The positions of the first ``limit`` True values, scanning block by block."""
    found: list[int] = []
    for start in range(0, len(mask), block):
        if len(found) >= limit:
            break
        hits = np.flatnonzero(mask[start : start + block])[: limit - len(found)]
        found.extend(int(i) + start for i in hits)
    return found


def find_bad_rows(
    n_rows: int, rules: Sequence[Rule], limit: int = MAX_BAD_ROWS
) -> tuple[list[tuple[int, list[str]]], int]:
    """The first ``limit`` rows that break a rule, each with its problems in rule order
    (rows 0-based), and the number of rows that break one."""
    bad = np.zeros(n_rows, dtype=bool)
    for mask, _ in rules:
        bad |= mask
    described = []
    for i in first_true(bad, limit):
        problems = [text if isinstance(text, str) else text(i) for mask, text in rules if mask[i]]
        described.append((i, problems))
    return described, int(np.count_nonzero(bad))


class FirstValues:
    """The uploaded values of the first ``limit`` rows where a mask holds, gathered chunk by
    chunk: what a 422 quotes (a timestamp as given) without keeping the whole column."""

    def __init__(self, limit: int = MAX_BAD_ROWS) -> None:
        self.limit = limit
        self.values: dict[int, Any] = {}  # 0-based row -> value as uploaded

    def offer(self, offset: int, mask: np.ndarray, values: pd.Series) -> None:
        """Rows ``offset + i`` for the True positions i of ``mask`` (a chunk's rows)."""
        for i in first_true(mask, self.limit - len(self.values)):
            self.values[offset + i] = values.iloc[i]

    def __getitem__(self, row: int) -> Any:
        return self.values[row]


def resolve_columns(
    records: Records,
    what: str,
    required: Sequence[str],
    optional: Sequence[str] = (),
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The upload's column label for each required (and present optional) name, matched in
    any case and with surrounding spaces ignored; a name in ``aliases`` also matches its
    alternatives, in order. A missing required column is a 422 that lists what ``what``
    needs: "<what> need the columns a, b (optional: c); missing: b"."""
    given = {str(c).strip().lower(): c for c in records.columns}
    found: dict[str, Any] = {}
    for name in (*required, *optional):
        label = next((given[c] for c in (aliases or {}).get(name, (name,)) if c in given), None)
        if label is not None:
            found[name] = label
    missing = [name for name in required if name not in found]
    if missing:
        extra = f" (optional: {', '.join(optional)})" if optional else ""
        raise InvalidInput(f"{what} need the columns {', '.join(required)}{extra}; missing: {', '.join(missing)}")
    return found


def require_rows(n_rows: int, what: str) -> None:
    """An upload without a single row is a 422 (an empty file is a mistake, not a no-op)."""
    if n_rows == 0:
        raise InvalidInput(f"the upload holds no {what}")
