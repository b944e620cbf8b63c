"""The plugin conformance kit: the contract every plugin honours, as checks anyone can run.

Run all of a kind's checks on one plugin class (each raises a :class:`ConformanceError`, an
AssertionError, naming every check that failed)::

    from alphaforge.plugins.testing import check_feature_plugin, check_model_plugin

    def test_my_model_conforms():
        check_model_plugin(MyModel)

or one check at a time (``MODEL_CHECKS``, ``FEATURE_CHECKS``, ``SCORER_CHECKS``: each a
function of the plugin class, for a test to parametrize over). What a plugin needs beyond
the checks' defaults it declares on itself, as its ``conformance`` tag:
:class:`~alphaforge.plugins.models.ModelConformance` (fast parameters, alternates, contexts,
expected correlation, artifact parameters) or
:class:`~alphaforge.plugins.sentiment.ScorerConformance` (the settings to build it with);
feature plugins need none (a cross-sectional one declares
``per_symbol = False`` and gets ``CROSS_SECTION_CHECKS``: ``feature_checks(cls)``).

The checks import no test framework; they read the bundled GSPC sample bars (arch) and, for
``finbert`` alone, need transformers and torch.
"""

from alphaforge.plugins.testing._core import ConformanceError
from alphaforge.plugins.testing.features import (
    CROSS_SECTION_CHECKS,
    FEATURE_CHECKS,
    check_batch_equals_one_by_one,
    check_cross_section_causality,
    check_cross_section_causality_at,
    check_feature_causality,
    check_feature_causality_at,
    check_feature_metadata,
    check_feature_outputs,
    check_feature_plugin,
    check_lookback_is_the_warm_up,
    check_reads_only_declared_bar_fields,
    check_same_bars_same_values,
    feature_checks,
)
from alphaforge.plugins.testing.models import (
    MODEL_CHECKS,
    check_artifact_round_trip,
    check_every_parameter_changes_predictions,
    check_fits_a_panel,
    check_forecasts_independent_of_range,
    check_identical_artifact_sha256,
    check_invalid_parameters_refused,
    check_learns_a_linear_signal,
    check_model_conformance_tags,
    check_model_metadata,
    check_model_plugin,
    check_no_forecast_reads_after_its_row,
    check_predictions_finite,
    check_rows_of_another_width_refused,
    check_same_seed_same_predictions,
    check_search_space,
)
from alphaforge.plugins.testing.sentiment import (
    SCORER_CHECKS,
    check_empty_input,
    check_get_scorer_builds_once,
    check_identity_is_stable,
    check_scorer_metadata,
    check_scores_deterministic_and_independent,
    check_scores_shape_dtype_and_ranges,
    check_sentiment_scorer,
    conformance_settings,
)

__all__ = [
    "CROSS_SECTION_CHECKS",
    "FEATURE_CHECKS",
    "MODEL_CHECKS",
    "SCORER_CHECKS",
    "ConformanceError",
    "check_artifact_round_trip",
    "check_empty_input",
    "check_every_parameter_changes_predictions",
    "check_fits_a_panel",
    "check_cross_section_causality",
    "check_cross_section_causality_at",
    "check_batch_equals_one_by_one",
    "check_feature_causality",
    "check_feature_causality_at",
    "check_feature_metadata",
    "check_feature_outputs",
    "check_feature_plugin",
    "check_forecasts_independent_of_range",
    "check_get_scorer_builds_once",
    "check_identical_artifact_sha256",
    "check_identity_is_stable",
    "check_invalid_parameters_refused",
    "check_learns_a_linear_signal",
    "check_lookback_is_the_warm_up",
    "check_reads_only_declared_bar_fields",
    "check_model_conformance_tags",
    "check_model_metadata",
    "check_model_plugin",
    "check_no_forecast_reads_after_its_row",
    "check_predictions_finite",
    "check_rows_of_another_width_refused",
    "check_same_bars_same_values",
    "check_same_seed_same_predictions",
    "check_scorer_metadata",
    "check_scores_deterministic_and_independent",
    "check_scores_shape_dtype_and_ranges",
    "check_search_space",
    "check_sentiment_scorer",
    "conformance_settings",
    "feature_checks",
]
