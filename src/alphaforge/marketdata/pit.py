"""Point-in-time series: every value carries when it became known.

A record is (observation date, available at, value). Restatements are further records for
the same observation with a later ``available_at``; history is never overwritten. At a bar
stamped ``t`` a record is usable only when ``available_at <= t``; the value of an
observation at ``t`` is its latest vintage usable at ``t``.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PitSeries:
    """Records of one series as int64 UTC nanoseconds and float64 values, any order."""

    observation: np.ndarray
    available: np.ndarray
    value: np.ndarray

    @classmethod
    def empty(cls) -> PitSeries:
        return cls(np.empty(0, "int64"), np.empty(0, "int64"), np.empty(0, "float64"))

    def __len__(self) -> int:
        return len(self.value)

    def as_of(self, times: np.ndarray, lag: int = 0) -> np.ndarray:
        """For each time: the value of the observation ``lag`` places before the latest one
        usable then (its latest vintage usable then); NaN when there is none.

        ``times`` must be sorted (bar timestamps, int64 ns)."""
        out = np.full(len(times), np.nan)
        if len(self.value) == 0 or len(times) == 0:
            return out
        order = np.lexsort((self.observation, self.available))
        available, observation, value = self.available[order], self.observation[order], self.value[order]
        known: dict[int, float] = {}  # observation -> latest vintage seen so far
        dates: list[int] = []  # sorted observation dates known so far
        i, n = 0, len(available)
        for j, t in enumerate(times):
            while i < n and available[i] <= t:
                obs = int(observation[i])
                if obs not in known:
                    bisect.insort(dates, obs)
                known[obs] = float(value[i])
                i += 1
            if len(dates) > lag:
                out[j] = known[dates[-1 - lag]]
        return out

    def fingerprint(self) -> str:
        """SHA-256 of a canonical byte encoding (sorted records), independent of input order."""
        # The value's bit pattern is the last key, so that even duplicate (observation,
        # available) pairs sort the same whatever the input order (0.0 vs -0.0 included).
        bits = np.ascontiguousarray(self.value, dtype="<f8").view("<i8")
        order = np.lexsort((bits, self.available, self.observation))
        digest = hashlib.sha256()
        for array, dtype in ((self.observation, "<i8"), (self.available, "<i8"), (self.value, "<f8")):
            digest.update(np.ascontiguousarray(array[order], dtype=dtype).tobytes())
        return digest.hexdigest()
