"""Properties of random well-typed expressions (built from the operator table, small
windows) on random small panels whose symbols have different calendars:

- causality: changing every bar after a timestamp t (any symbol, any field) changes no
  value at or before t, for any symbol, bit for bit (this covers cross-sectional
  operators and any state carried from one symbol into the next in the flat layout); and
  dropping those later bars altogether gives the same values up to rounding;
- warm-up: a symbol's first ``warmup(expr)`` values are NaN, and with positive finite
  inputs every later value exists when each operator is total (no division, log, corr,
  rsquare or cs_zscore, which are undefined on some inputs).
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaforge.expressions import OPERATORS, Call, Expr, Name, Number, PanelData, canonical, check, evaluate, parse, warmup

DAY = 86_400_000_000_000
FIELDS = ("open", "high", "low", "close", "volume")
BOUNDS = {"lag": (1, 3), "window": (1, 4), "span": (1, 4)}
#: Operators undefined on some positive finite inputs (x / 0, log of a negative difference,
#: the correlation or R² of a constant window, the z-score of a lone value).
PARTIAL = {"div", "log", "corr", "rsquare", "cs_zscore"}


def expressions(allowed: frozenset[str]) -> st.SearchStrategy[Expr]:
    series_ops = sorted(name for name, op in OPERATORS.items() if name in allowed and op.returns == "number")
    condition_ops = sorted(name for name, op in OPERATORS.items() if name in allowed and op.returns == "boolean")
    fields = st.sampled_from(FIELDS).map(Name)
    leaves = st.one_of(fields, fields, fields, st.sampled_from([0.5, 1.0, 2.0, 3.0]).map(Number))

    def argument(param, series, condition):
        if param.kind == "series":
            return series
        if param.kind == "condition":
            return condition
        if param.kind == "probability":
            return st.sampled_from([0.0, 0.25, 0.5, 0.8, 1.0]).map(Number)
        low, high = BOUNDS[param.kind]
        return st.integers(max(low, param.minimum), max(high, param.minimum)).map(Number)

    def calls(names, series, condition):
        def build(name):
            args = [argument(p, series, condition) for p in OPERATORS[name].params]
            return st.tuples(*args).map(lambda a, n=name: Call(n, tuple(a)))

        return st.sampled_from(names).flatmap(build)

    def extend(children):
        # a condition built from the same children (comparisons of series, logic of conditions)
        condition = st.deferred(lambda: calls(condition_ops, children, condition))
        return calls(series_ops, children, condition)

    return st.recursive(leaves, extend, max_leaves=8)


@st.composite
def panels(draw) -> PanelData:
    symbols = draw(st.integers(1, 4))
    timestamps, fields = [], {f: [] for f in FIELDS}
    for _ in range(symbols):
        days = draw(st.lists(st.integers(0, 30), min_size=0, max_size=18, unique=True))
        days = np.sort(np.asarray(days, dtype=np.int64))
        timestamps.append(days * DAY)
        for f in FIELDS:
            values = draw(st.lists(st.floats(1.0, 100.0), min_size=len(days), max_size=len(days)))
            fields[f].append(np.asarray(values, dtype=np.float64))
    return PanelData.from_arrays([f"S{i}" for i in range(symbols)], timestamps, fields)


def redrawn_after(panel: PanelData, cutoff: int, seed: int) -> PanelData:
    """The panel with every value of every bar after ``cutoff`` replaced (same calendars)."""
    rng = np.random.default_rng(seed)
    later = panel.timestamps > cutoff
    fields = {}
    for name, values in panel.fields.items():
        changed = values.copy()
        changed[later] = rng.uniform(1.0, 100.0, later.sum())
        fields[name] = changed
    return PanelData(panel.symbols, panel.offsets, panel.timestamps, fields)


def cut_after(panel: PanelData, cutoff: int) -> PanelData:
    """The panel without its bars after ``cutoff``."""
    keep = panel.timestamps <= cutoff
    return PanelData.from_arrays(
        panel.symbols,
        [panel.timestamps[panel.rows(s)][keep[panel.rows(s)]] for s in panel.symbols],
        {f: [v[panel.rows(s)][keep[panel.rows(s)]] for s in panel.symbols] for f, v in panel.fields.items()},
    )


ALL = frozenset(OPERATORS)
TOTAL = ALL - PARTIAL
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(expr=expressions(ALL), panel=panels(), cut=st.integers(-1, 30), seed=st.integers(0, 2**32 - 1))
def test_later_bars_change_nothing_before_them(expr: Expr, panel: PanelData, cut: int, seed: int) -> None:
    check(expr)
    assert canonical(parse(canonical(expr))) == canonical(expr)
    cutoff = cut * DAY
    before = evaluate({"x": expr}, panel)["x"]
    past = panel.timestamps <= cutoff
    changed = evaluate({"x": expr}, redrawn_after(panel, cutoff, seed))["x"]
    np.testing.assert_array_equal(changed[past], before[past], err_msg=canonical(expr))
    truncated = evaluate({"x": expr}, cut_after(panel, cutoff))["x"]
    np.testing.assert_allclose(truncated, before[past], rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=canonical(expr))


@PROPERTY
@given(expr=expressions(TOTAL), panel=panels())
def test_values_exist_exactly_after_warmup(expr: Expr, panel: PanelData) -> None:
    result = evaluate({"x": expr}, panel)["x"]
    bars = warmup(expr)
    warming = panel.bar_numbers < bars
    assert np.isnan(result[warming]).all(), canonical(expr)
    assert not np.isnan(result[~warming]).any(), canonical(expr)


@PROPERTY
@given(expr=expressions(ALL), panel=panels())
def test_warmup_values_are_always_nan(expr: Expr, panel: PanelData) -> None:
    result = evaluate({"x": expr}, panel)["x"]
    assert np.isnan(result[panel.bar_numbers < warmup(expr)]).all(), canonical(expr)
