"""Every registered feature plugin passes the conformance kit (alphaforge.plugins.testing.features):
one test per (check, plugin).

Causality is a property: Hypothesis draws t, the perturbation of the bars after t and the
seed of everything else changed after t (macro and fundamentals records, news articles),
and the kit's check_feature_causality_at holds the plugin to it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.plugins.features import FeaturePlugin, feature_plugins
from alphaforge.plugins.testing import FEATURE_CHECKS, check_feature_causality, check_feature_causality_at
from alphaforge.plugins.testing.features import N_BARS, PERTURBATIONS

PLUGINS = list(feature_plugins)
#: The property test below draws causality cases instead of the kit's fixed ones.
PER_PLUGIN = [c for c in FEATURE_CHECKS if c is not check_feature_causality]


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
@pytest.mark.parametrize("check", PER_PLUGIN, ids=lambda c: c.__name__)
def test_feature_check(check: Any, cls: type[FeaturePlugin]) -> None:
    check(cls)


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
@settings(max_examples=12, deadline=None)
@given(t=st.integers(min_value=0, max_value=N_BARS - 2), how=st.sampled_from(PERTURBATIONS), seed=st.integers(0, 2**32 - 1))
def test_values_up_to_t_ignore_every_input_after_t(cls: type[FeaturePlugin], t: int, how: str, seed: int) -> None:
    check_feature_causality_at(cls, t, how, seed)
