"""The data-quality gate's verdict on an upload, for every kind of record (bars, macro,
fundamentals, news): ok, or a 422 that names each bad row and says nothing was stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from alphaforge.errors import InvalidInput


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
