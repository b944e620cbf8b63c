"""Every registered feature plugin passes the conformance kit (alphaforge.plugins.testing.features):
one test per (check, plugin).

Causality is a property: Hypothesis draws t, the perturbation of the bars after t and the
seed of everything else changed after t (macro and fundamentals records, news articles),
and the kit's check_feature_causality_at holds the plugin to it. Cross-sectional plugins
(per_symbol False) have no per-symbol values: they get the kit's CROSS_SECTION_CHECKS, and
the panel causality property (every symbol changed after date t, a symbol added after t).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.plugins.features import FeaturePlugin, feature_plugins
from alphaforge.plugins.testing import (
    CROSS_SECTION_CHECKS,
    FEATURE_CHECKS,
    ConformanceError,
    check_cross_section_causality,
    check_cross_section_causality_at,
    check_feature_causality,
    check_feature_causality_at,
    check_feature_plugin,
)
from alphaforge.plugins.testing.features import N_BARS, PERTURBATIONS

PLUGINS = [cls for cls in feature_plugins if cls.per_symbol]
CROSS_SECTIONAL = [cls for cls in feature_plugins if not cls.per_symbol]
#: The property tests below draw causality cases instead of the kit's fixed ones.
PER_PLUGIN = [c for c in FEATURE_CHECKS if c is not check_feature_causality]
PER_CROSS_SECTIONAL = [c for c in CROSS_SECTION_CHECKS if c is not check_cross_section_causality]


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
@pytest.mark.parametrize("check", PER_PLUGIN, ids=lambda c: c.__name__)
def test_feature_check(check: Any, cls: type[FeaturePlugin]) -> None:
    check(cls)


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
@settings(max_examples=12, deadline=None)
@given(t=st.integers(min_value=0, max_value=N_BARS - 2), how=st.sampled_from(PERTURBATIONS), seed=st.integers(0, 2**32 - 1))
def test_values_up_to_t_ignore_every_input_after_t(cls: type[FeaturePlugin], t: int, how: str, seed: int) -> None:
    check_feature_causality_at(cls, t, how, seed)


@pytest.mark.parametrize("cls", CROSS_SECTIONAL, ids=lambda c: c.key)
@pytest.mark.parametrize("check", PER_CROSS_SECTIONAL, ids=lambda c: c.__name__)
def test_cross_sectional_check(check: Any, cls: type[FeaturePlugin]) -> None:
    check(cls)


@pytest.mark.parametrize("cls", CROSS_SECTIONAL, ids=lambda c: c.key)
@settings(max_examples=12, deadline=None)
@given(t=st.integers(min_value=0, max_value=N_BARS - 2), how=st.sampled_from(PERTURBATIONS), seed=st.integers(0, 2**32 - 1))
def test_cross_sectional_values_up_to_t_ignore_every_row_after_t(cls: type[FeaturePlugin], t: int, how: str, seed: int) -> None:
    check_cross_section_causality_at(cls, t, how, seed)


def test_the_panel_causality_check_catches_a_look_ahead() -> None:
    """A rank over the whole panel at once (every date together) reads later dates: refused."""
    base = CROSS_SECTIONAL[0]

    class PooledRank(base):  # type: ignore[valid-type, misc]
        def compute_panel(self, panel: Any, groups: Any = None) -> Any:
            column = panel.columns[0]
            return panel[[column]].rank(pct=True).set_axis([self.operator], axis=1)

    with pytest.raises(ConformanceError, match="check_cross_section_causality"):
        check_cross_section_causality(PooledRank, examples=3)
    assert {check.__name__ for check in CROSS_SECTION_CHECKS} <= {"check_feature_metadata", "check_cross_section_causality"}
    check_feature_plugin(base)  # the whole kit, as a plugin author runs it, picks the panel checks
