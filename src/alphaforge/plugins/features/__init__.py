"""Feature plugins. Importing this package registers every built-in plugin."""

from alphaforge.plugins.features import (  # noqa: F401  (registers)
    automated,
    expression,
    cross_sectional,
    fundamental,
    macro,
    news,
    statistical,
    technical,
)
from alphaforge.plugins.features.base import (
    FEATURE_CATEGORIES,
    Bars,
    FeatureInputs,
    FeaturePlugin,
    feature_plugins,
    needs_full_history,
    required_bar_fields,
    with_input_features,
)

__all__ = [
    "FEATURE_CATEGORIES",
    "Bars",
    "FeatureInputs",
    "FeaturePlugin",
    "feature_plugins",
    "needs_full_history",
    "required_bar_fields",
    "with_input_features",
]
