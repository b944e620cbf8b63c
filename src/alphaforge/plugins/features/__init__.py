"""Feature plugins. Importing this package registers every built-in plugin."""

from alphaforge.plugins.features import automated, fundamental, macro, statistical, technical  # noqa: F401  (registers)
from alphaforge.plugins.features.base import (
    FEATURE_CATEGORIES,
    Bars,
    FeatureInputs,
    FeaturePlugin,
    feature_plugins,
)

__all__ = ["FEATURE_CATEGORIES", "Bars", "FeatureInputs", "FeaturePlugin", "feature_plugins"]
