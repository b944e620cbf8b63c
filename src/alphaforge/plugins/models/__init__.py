"""Model plugins. Importing this package registers every built-in plugin."""

from alphaforge.plugins.models.base import (
    DEFAULT_MIN_CORRELATION,
    MODEL_FAMILIES,
    ModelConformance,
    ModelPlugin,
    PanelIndex,
    ParamSpec,
    Prediction,
    Timeline,
    forecast_panel,
    model_plugins,
    resolve_model_type,
)
from alphaforge.plugins.models import deep_learning, ensemble, machine_learning, statistical  # noqa: F401 (registers)

__all__ = [
    "DEFAULT_MIN_CORRELATION",
    "MODEL_FAMILIES",
    "ModelConformance",
    "ModelPlugin",
    "PanelIndex",
    "ParamSpec",
    "Prediction",
    "Timeline",
    "forecast_panel",
    "model_plugins",
    "resolve_model_type",
]
