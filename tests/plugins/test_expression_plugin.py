"""The expression plugin held to the same conformance checks as every feature plugin, on
the formulas a user writes rather than its default: the whole Alpha158 library, and random
well-typed formulas drawn by Hypothesis (the operator table's every per-symbol operator),
each through the kit's causality property (bars after t perturbed: nothing up to t changes)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit.test_expressions_causality import expressions

from alphaforge.expressions import OPERATORS, canonical
from alphaforge.expressions.alpha158 import ALPHA158
from alphaforge.plugins.features.expression import ExpressionFeature
from alphaforge.plugins.testing import (
    check_batch_equals_one_by_one,
    check_feature_causality_at,
    check_feature_outputs,
    check_lookback_is_the_warm_up,
    check_reads_only_declared_bar_fields,
    check_same_bars_same_values,
)
from alphaforge.plugins.testing.features import N_BARS, PERTURBATIONS

PER_SYMBOL = frozenset(name for name, op in OPERATORS.items() if op.kind != "cross_sectional")


def formula_plugin(parameters: dict[str, Any]) -> type[ExpressionFeature]:
    """ExpressionFeature whose parameters default to ``parameters`` (the kit builds a
    plugin from its defaults)."""

    class Formula(ExpressionFeature):
        @classmethod
        def from_parameters(cls, raw: dict[str, Any] | None) -> Formula:
            return super().from_parameters(raw or parameters)

    return Formula


ALPHA158_PLUGIN = formula_plugin({"expressions": ALPHA158})


@pytest.mark.parametrize(
    "check",
    [check_feature_outputs, check_same_bars_same_values, check_lookback_is_the_warm_up,
     check_reads_only_declared_bar_fields, check_batch_equals_one_by_one],
    ids=lambda c: c.__name__,
)
def test_alpha158_passes_the_kit(check: Any) -> None:
    check(ALPHA158_PLUGIN)


@settings(max_examples=6, deadline=None)
@given(t=st.integers(min_value=0, max_value=N_BARS - 2), how=st.sampled_from(PERTURBATIONS), seed=st.integers(0, 2**32 - 1))
def test_alpha158_values_up_to_t_ignore_every_bar_after_t(t: int, how: str, seed: int) -> None:
    check_feature_causality_at(ALPHA158_PLUGIN, t, how, seed)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    expr=expressions(PER_SYMBOL), t=st.integers(min_value=0, max_value=N_BARS - 2),
    how=st.sampled_from(PERTURBATIONS), seed=st.integers(0, 2**32 - 1),
)
def test_a_random_formula_through_the_plugin_is_causal(expr: Any, t: int, how: str, seed: int) -> None:
    plugin = formula_plugin({"expression": canonical(expr)})
    check_feature_causality_at(plugin, t, how, seed)
    check_batch_equals_one_by_one(plugin)


WITH_INPUTS = formula_plugin({
    "expressions": {"gap": "mean(rsi, 3) - level", "per_eps": "close / eps"},
    "macro": {"level": "VIX"}, "fundamentals": {"eps": "eps"},
    "features": {"rsi": {"plugin_key": "technical.rsi", "parameters": {"period": 14}}},
})


@pytest.mark.parametrize(
    "check",
    [check_feature_outputs, check_same_bars_same_values, check_reads_only_declared_bar_fields,
     check_batch_equals_one_by_one],
    ids=lambda c: c.__name__,
)
def test_a_formula_over_macro_fundamentals_and_a_feature_passes_the_kit(check: Any) -> None:
    check(WITH_INPUTS)


@settings(max_examples=8, deadline=None)
@given(t=st.integers(min_value=0, max_value=N_BARS - 2), how=st.sampled_from(PERTURBATIONS), seed=st.integers(0, 2**32 - 1))
def test_a_formula_over_point_in_time_inputs_ignores_every_record_after_t(t: int, how: str, seed: int) -> None:
    """The kit perturbs the bars and the macro and fundamentals records published after t."""
    check_feature_causality_at(WITH_INPUTS, t, how, seed)


def test_a_formula_warms_up_over_its_input_features_warm_up() -> None:
    plugin = formula_plugin({"expression": "mean(rsi, 5)", "features": {"rsi": {"plugin_key": "technical.rsi",
                                                                              "parameters": {"period": 14}}}})
    assert plugin.from_parameters({}).lookback == 14 + 4
    check_lookback_is_the_warm_up(plugin)
