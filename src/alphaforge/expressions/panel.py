"""The bars an expression runs on: several symbols, each with its own calendar.

Layout: every symbol's bars, in time order, one symbol after the other (the order of
``symbols``), in flat arrays; ``offsets[i]:offsets[i + 1]`` are symbol ``i``'s rows. Results
come back in the same order. This keeps a panel of symbols with different first bars and
gaps compact (no padding to a common calendar) and makes an element-wise operator one
numpy call over every symbol at once; time-series operators run over the flat arrays with
windows clipped at each symbol's first bar, so no window ever reaches into another symbol;
cross-sectional operators scatter values to a (timestamp x symbol) grid by each row's
timestamp, combine per timestamp, and gather back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from alphaforge.errors import InvalidInput


@dataclass(frozen=True, eq=False)
class PanelData:
    """Bars of several symbols; build it with ``from_arrays``, ``from_frames`` or ``from_long``.

    ``timestamps`` are int64 nanoseconds since the epoch (UTC), strictly increasing within
    each symbol; ``fields`` maps a name (``close``...) to a float64 array of one value per row.
    """

    symbols: tuple[str, ...]
    offsets: np.ndarray
    timestamps: np.ndarray
    fields: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        offsets = np.asarray(self.offsets, dtype=np.int64)
        stamps = np.asarray(self.timestamps, dtype=np.int64)
        if len(set(self.symbols)) != len(self.symbols):
            raise InvalidInput("a panel's symbols must be distinct")
        if offsets.shape != (len(self.symbols) + 1,) or offsets[0] != 0 or offsets[-1] != len(stamps):
            raise InvalidInput("offsets must run from 0 to the number of rows, one more than the symbols")
        if np.any(np.diff(offsets) < 0):
            raise InvalidInput("offsets must not decrease")
        backwards = np.diff(stamps) <= 0
        starts = offsets[1:-1]
        backwards[starts[(starts > 0) & (starts < len(stamps))] - 1] = False  # a symbol's first row may go back
        if backwards.any():
            row = int(np.flatnonzero(backwards)[0])
            symbol = self.symbols[int(np.searchsorted(offsets, row, "right")) - 1]
            raise InvalidInput(f"symbol {symbol!r}: timestamps must be strictly increasing (sorted, no duplicates)")
        fields = {}
        for name, values in self.fields.items():
            array = np.ascontiguousarray(values, dtype=np.float64)
            if array.shape != stamps.shape:
                raise InvalidInput(f"field {name!r} has {array.shape} values for {len(stamps)} rows")
            fields[name] = array
        object.__setattr__(self, "symbols", tuple(self.symbols))
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "timestamps", stamps)
        object.__setattr__(self, "fields", fields)

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        symbols: Sequence[str],
        timestamps: Sequence[np.ndarray],
        fields: Mapping[str, Sequence[np.ndarray]],
    ) -> PanelData:
        """One timestamp array per symbol and, per field, one value array per symbol."""
        if len(timestamps) != len(symbols) or any(len(v) != len(symbols) for v in fields.values()):
            raise InvalidInput("give one timestamp array and one array per field for each symbol")
        lengths = [len(t) for t in timestamps]
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        stamps = np.concatenate([np.asarray(t, dtype=np.int64) for t in timestamps]) if lengths else np.empty(0, np.int64)
        columns = {
            name: np.concatenate([np.asarray(a, dtype=np.float64) for a in arrays]) if lengths else np.empty(0)
            for name, arrays in fields.items()
        }
        return cls(tuple(symbols), offsets, stamps, columns)

    @classmethod
    def from_frames(cls, frames: Mapping[str, pd.DataFrame], fields: Sequence[str] | None = None) -> PanelData:
        """One frame per symbol, indexed by its bars' timestamps (a DatetimeIndex: naive means
        UTC), with a column per field (``fields`` picks some; default: the first frame's)."""
        names = list(fields) if fields is not None else list(next(iter(frames.values())).columns) if frames else []
        stamps = [_nanoseconds(frame.index) for frame in frames.values()]
        try:
            columns = {name: [frame[name].to_numpy(np.float64) for frame in frames.values()] for name in names}
        except KeyError as missing:
            raise InvalidInput(f"a frame has no column {missing}") from None
        return cls.from_arrays(list(frames), stamps, columns)

    @classmethod
    def from_long(cls, frame: pd.DataFrame, symbol: str = "symbol", timestamp: str = "timestamp") -> PanelData:
        """A long frame with a symbol and a timestamp column and one column per field; rows
        are sorted by (symbol, timestamp), symbols in order of first appearance."""
        codes, symbols = pd.factorize(frame[symbol], sort=False)
        stamps = _nanoseconds(pd.DatetimeIndex(frame[timestamp]))
        order = np.lexsort((stamps, codes))
        lengths = np.bincount(codes, minlength=len(symbols))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        names = [c for c in frame.columns if c not in (symbol, timestamp)]
        return cls(
            tuple(str(s) for s in symbols),
            offsets,
            stamps[order],
            {name: frame[name].to_numpy(np.float64)[order] for name in names},
        )

    # -- results -----------------------------------------------------------------------

    def to_frame(self, values: Mapping[str, np.ndarray], sort: bool = True) -> pd.DataFrame:
        """``evaluate``'s arrays as one frame indexed by (timestamp UTC, symbol), sorted by
        timestamp then symbol (``sort=False``: in the panel's row order)."""
        index = pd.MultiIndex.from_arrays(
            [
                pd.DatetimeIndex(self.timestamps.view("datetime64[ns]"), tz="UTC"),
                pd.Index(self.symbols, dtype=object).take(self.symbol_codes),
            ],
            names=["timestamp", "symbol"],
        )
        frame = pd.DataFrame(dict(values), index=index)
        if sort:
            order = np.lexsort((self.symbol_codes, self.timestamps))
            frame = frame.iloc[order]
        return frame

    # -- layout, derived once per panel -----------------------------------------------

    @property
    def n_rows(self) -> int:
        return len(self.timestamps)

    def rows(self, symbol: str) -> slice:
        """The rows of ``symbol``."""
        i = self.symbols.index(symbol)
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    @cached_property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @cached_property
    def symbol_codes(self) -> np.ndarray:
        """Each row's symbol (its index in ``symbols``)."""
        return np.repeat(np.arange(len(self.symbols), dtype=np.int64), self.lengths)

    @cached_property
    def first_rows(self) -> np.ndarray:
        """Each row's symbol's first row."""
        return np.repeat(self.offsets[:-1], self.lengths)

    @cached_property
    def bar_numbers(self) -> np.ndarray:
        """Each row's position in its symbol's history (0 for its first bar)."""
        return np.arange(self.n_rows, dtype=np.int64) - self.first_rows

    @cached_property
    def timestamp_codes(self) -> tuple[np.ndarray, int]:
        """Each row's position among the panel's distinct timestamps, and their number."""
        distinct, codes = np.unique(self.timestamps, return_inverse=True)
        return codes.astype(np.int64), len(distinct)

    @cached_property
    def _window_starts(self) -> dict[int, np.ndarray]:
        return {}

    def window_starts(self, n: int) -> np.ndarray:
        """For each row, the first row of its window of ``n`` bars, clipped at its symbol's first bar."""
        starts = self._window_starts.get(n)
        if starts is None:
            starts = np.maximum(np.arange(self.n_rows, dtype=np.int64) - (n - 1), self.first_rows)
            self._window_starts[n] = starts
        return starts


def _nanoseconds(index: pd.Index) -> np.ndarray:
    if isinstance(index, pd.DatetimeIndex):
        if index.tz is not None:
            index = index.tz_convert("UTC").tz_localize(None)
        return index.as_unit("ns").asi8.copy()
    return np.asarray(index, dtype=np.int64)
