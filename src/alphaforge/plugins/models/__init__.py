"""Model plugins. Importing this package registers every built-in plugin."""

from alphaforge.plugins.models.base import (
    MODEL_FAMILIES,
    ModelPlugin,
    ParamSpec,
    Prediction,
    Timeline,
    model_plugins,
    resolve_model_type,
)
from alphaforge.plugins.models import deep_learning, ensemble, machine_learning, statistical  # noqa: F401 (registers)

__all__ = ["MODEL_FAMILIES", "ModelPlugin", "ParamSpec", "Prediction", "Timeline", "model_plugins", "resolve_model_type"]
