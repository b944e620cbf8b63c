"""The point-in-time upload gate that macro series and fundamentals share: observation and
available times, values, and the rules every point-in-time record must pass."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alphaforge.ingestion.gate import FirstValues, Rule
from alphaforge.ingestion.records import ColumnBuffer, parse_numbers, parse_times
from alphaforge.marketdata.times import MAX_NS, MIN_NS

_LO, _HI = pd.Timestamp(MIN_NS, tz="UTC"), pd.Timestamp(MAX_NS, tz="UTC")


def parse_values(raw_value: pd.Series) -> np.ndarray:
    """Uploaded values as float64; anything not a number (booleans included) is NaN."""
    if pd.api.types.is_bool_dtype(raw_value.dtype):
        raw_value = pd.Series([None] * len(raw_value), dtype=object)  # true/false is no value
    elif raw_value.dtype == object:  # JSON: a true/false among the numbers (text has none)
        raw_value = raw_value.map(lambda v: None if isinstance(v, bool) else v)
    return parse_numbers(raw_value)


@dataclass(frozen=True)
class PitColumns:
    """An upload's point-in-time columns, parsed, and the gate's rules over them."""

    observation: np.ndarray  # int64 UTC ns
    available: np.ndarray
    value: np.ndarray  # float64
    obs_bad: np.ndarray  # the time is missing, unparseable or out of range
    avail_bad: np.ndarray
    rules: list[Rule]


class PitParser:
    """The point-in-time quality gate shared by macro series and fundamentals, fed chunk by
    chunk (:meth:`add`) so only the parsed arrays are kept.

    Parses observation / available times (int64 UTC ns) and values (float64); the rules
    (:meth:`finish`): unparseable or missing times, available before the observation,
    sub-microsecond times, non-finite values, and duplicate keys ((group,) observation,
    available_at)."""

    def __init__(self, observation_name: str = "observation_date") -> None:
        self.observation_name = observation_name
        self._times = ColumnBuffer(2, "int64")  # observation, available
        self._bad = ColumnBuffer(2, "bool")
        self._values = ColumnBuffer(1, "float64")
        self._given = (FirstValues(), FirstValues())  # unusable times as uploaded

    @property
    def n_rows(self) -> int:
        return self._times.n_rows

    def add(self, raw_obs: pd.Series, raw_avail: pd.Series, raw_value: pd.Series) -> None:
        (obs, obs_bad), (avail, avail_bad) = parse_times(raw_obs, _LO, _HI), parse_times(raw_avail, _LO, _HI)
        self._given[0].offer(self.n_rows, obs_bad, raw_obs)
        self._given[1].offer(self.n_rows, avail_bad, raw_avail)
        self._times.append(obs, avail)
        self._bad.append(obs_bad, avail_bad)
        self._values.append(parse_values(raw_value))

    def _time_problem(self, given_values: FirstValues, name: str) -> Callable[[int], str]:
        def problem(i: int) -> str:
            given = given_values[i]
            if given is None or (not isinstance(given, str) and pd.isna(given)):
                return f"{name} is missing"
            return f"{name} {given!r} is not a date/time (1678-2261)"

        return problem

    def finish(self, group: np.ndarray | None = None, group_name: str | None = None) -> PitColumns:
        """The parsed columns and the rules; ``group`` (int codes) joins the duplicate key."""
        (observation, available), (obs_bad, avail_bad) = self._times.values(), self._bad.values()
        value = self._values.values()[0]
        name = self.observation_name
        both = ~obs_bad & ~avail_bad
        rules: list[Rule] = [
            (obs_bad, self._time_problem(self._given[0], name)),
            (avail_bad, self._time_problem(self._given[1], "available_at")),
            (both & (available < observation), f"available_at is before {name}"),
            (~obs_bad & (observation % 1000 != 0), f"{name} is finer than a microsecond"),
            (~avail_bad & (available % 1000 != 0), "available_at is finer than a microsecond"),
            (~np.isfinite(value), "value is missing or not a finite number"),
        ]
        keys = pd.DataFrame({"o": observation, "a": available})
        label = f"{name}, available_at"
        if group is not None:
            keys["g"] = group
            label = f"{group_name}, {label}"
        rules.append((keys.duplicated(keep=False).to_numpy() & both, f"duplicate ({label})"))
        return PitColumns(observation, available, value, obs_bad, avail_bad, rules)
