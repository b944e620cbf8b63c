"""The expression plugin held to the same conformance checks as every feature plugin, on
the formulas a user writes rather than its default: the whole Alpha158 library, and random
well-typed formulas drawn by Hypothesis (the operator table's every per-symbol operator),
each through the kit's causality property (bars after t perturbed: nothing up to t changes)."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit.test_expressions_causality import expressions

from alphaforge.expressions import OPERATORS, canonical
from alphaforge.expressions.alpha158 import ALPHA158
from alphaforge.plugins.features import Bars, FeatureInputs, feature_plugins, with_input_features
from alphaforge.plugins.features.expression import ExpressionFeature
from alphaforge.plugins.testing import (
    check_batch_equals_one_by_one,
    check_feature_causality_at,
    check_feature_outputs,
    check_lookback_is_the_warm_up,
    check_reads_only_declared_bar_fields,
    check_same_bars_same_values,
)
from alphaforge.plugins.testing.features import N_BARS, PERTURBATIONS, bars

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
#: The kit's per-symbol checks a formula's plugin is held to (causality: its own tests).
KIT = pytest.mark.parametrize(
    "check",
    [check_feature_outputs, check_same_bars_same_values, check_lookback_is_the_warm_up,
     check_reads_only_declared_bar_fields, check_batch_equals_one_by_one],
    ids=lambda c: c.__name__,
)


@KIT
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


RSI_ID = uuid.UUID(int=14)
RSI14 = {"plugin_key": "technical.rsi", "parameters": {"period": 14}}


def referencing_plugin(parameters: dict[str, Any]) -> type[ExpressionFeature]:
    """``formula_plugin`` whose input ``RSI_ID`` is bound, as resolving a stored definition binds it."""
    rsi = feature_plugins.get(RSI14["plugin_key"]).from_parameters(RSI14["parameters"])

    class Referencing(formula_plugin(parameters)):  # type: ignore[misc,valid-type]
        @classmethod
        def from_parameters(cls, raw: dict[str, Any] | None) -> Referencing:
            return super().from_parameters(raw).with_references({RSI_ID: rsi})

    return Referencing


BY_ID = referencing_plugin({"expression": "mean(rsi, 5) / 100", "features": {"rsi": {"feature_id": str(RSI_ID)}}})


@pytest.mark.parametrize(
    "check",
    [check_feature_outputs, check_same_bars_same_values, check_reads_only_declared_bar_fields,
     check_batch_equals_one_by_one],
    ids=lambda c: c.__name__,
)
def test_a_formula_over_macro_fundamentals_and_a_feature_passes_the_kit(check: Any) -> None:
    check(WITH_INPUTS)


@pytest.mark.parametrize("plugin", [WITH_INPUTS, BY_ID], ids=["by_key", "by_id"])
@settings(max_examples=8, deadline=None)
@given(t=st.integers(min_value=0, max_value=N_BARS - 2), how=st.sampled_from(PERTURBATIONS), seed=st.integers(0, 2**32 - 1))
def test_a_formula_over_point_in_time_inputs_ignores_every_record_after_t(
    plugin: type[ExpressionFeature], t: int, how: str, seed: int
) -> None:
    """The kit perturbs the bars and the macro and fundamentals records published after t
    (by_id: a feature named by id, bound as a stored definition's plugin)."""
    check_feature_causality_at(plugin, t, how, seed)


def test_a_formula_warms_up_over_its_input_features_warm_up() -> None:
    plugin = formula_plugin({"expression": "mean(rsi, 5)", "features": {"rsi": {"plugin_key": "technical.rsi",
                                                                              "parameters": {"period": 14}}}})
    assert plugin.from_parameters({}).lookback == 14 + 4
    check_lookback_is_the_warm_up(plugin)


@KIT
def test_a_formula_over_a_feature_named_by_id_passes_the_kit(check: Any) -> None:
    check(BY_ID)


def test_a_feature_named_by_id_reads_the_same_values_as_its_plugin_by_key() -> None:
    by_key = ExpressionFeature.from_parameters({"expression": "mean(rsi, 5) / 100", "features": {"rsi": RSI14}})
    by_id = BY_ID.from_parameters({})
    assert by_id.lookback == by_key.lookback == 14 + 4
    inputs = FeatureInputs(Bars.from_frame(bars()))
    np.testing.assert_array_equal(by_id.compute(with_input_features(by_id, inputs))["value"],
                                  by_key.compute(with_input_features(by_key, inputs))["value"])


def test_an_unbound_reference_is_a_programming_error_not_a_value() -> None:
    plugin = ExpressionFeature.from_parameters({"expression": "rsi", "features": {"rsi": {"feature_id": str(RSI_ID)}}})
    assert plugin.output_columns == ["value"] and plugin.referenced_features() == {"rsi": RSI_ID}
    with pytest.raises(RuntimeError, match="not bound"):
        plugin.input_features()
