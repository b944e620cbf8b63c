"""The model-plugin contract.

A model plugin is a regressor of the forward return on a matrix of feature rows. It is
built from validated parameters and a seed, and is deterministic given both. It declares
its parameters (a pydantic model: types, defaults, bounds), a default search space for
tuning, the libraries whose versions go into the training lineage, and how its fitted
state is stored: ``to_bytes`` / ``from_bytes`` in the library's native format where one
exists. Bytes are only handed to ``from_bytes`` after their SHA-256 has been verified.

Feature rows are float64 matrices in the order of the training's ``feature_columns``.
``history`` is the block of feature rows that immediately precede ``X`` in time (features
only, never labels); sequence models read their first windows from it, others ignore it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from alphaforge.plugins.base import PluginParams, Registry, library_version, validate_params

ModelFamily = Literal["statistical", "machine_learning", "deep_learning", "ensemble"]
MODEL_FAMILIES: tuple[str, ...] = ModelFamily.__args__  # type: ignore[attr-defined]

Scalar = int | float | str | bool | None


class ParamSpec(BaseModel):
    """One dimension of a search space (Optuna's suggest_int / suggest_float / suggest_categorical)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Scalar] | None = None

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"an {self.type} parameter needs 'low' and 'high'")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scaled range needs low > 0 (got {self.low})")
        if self.log and self.step is not None:
            raise ValueError("'step' and 'log' cannot be combined")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be positive (got {self.step})")
        return self


@dataclass
class Prediction:
    """Point forecasts of the forward return, plus any extra series a model forecasts
    beside them (``{"volatility": ...}`` for GARCH). Every array is as long as ``X``."""

    mean: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)


class ModelPlugin(ABC):
    key: ClassVar[str]
    family: ClassVar[ModelFamily]
    #: The seed's short name ("xgboost", "lstm", "arima"), read within the family.
    short_name: ClassVar[str]
    description: ClassVar[str]
    #: Bump when a change to the code changes fitted models or predictions.
    version: ClassVar[str] = "1"
    Params: ClassVar[type[PluginParams]] = PluginParams
    #: Distributions whose versions change the fitted model (recorded in the lineage).
    libraries: ClassVar[tuple[str, ...]] = ("numpy",)
    #: File extension of the stored artifact (``to_bytes``), without the dot.
    artifact_ext: ClassVar[str]
    #: Default tuning space; every name is a field of ``Params``.
    search_space: ClassVar[dict[str, ParamSpec]] = {}

    def __init__(self, params: PluginParams, seed: int = 0) -> None:
        self.params = params
        self.seed = seed

    @classmethod
    def from_parameters(cls, raw: dict[str, Any] | None, seed: int = 0) -> Self:
        return cls(validate_params(cls.Params, raw, cls.key), seed=seed)

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        """Fit on feature rows ``X`` (n, k) and forward returns ``y`` (n,)."""

    @abstractmethod
    def predict(self, X: np.ndarray, history: np.ndarray | None = None) -> Prediction:
        """Forecast the forward return for every row of ``X``; all values finite."""

    @abstractmethod
    def to_bytes(self) -> bytes:
        """The fitted state, in the library's native format where one exists."""

    @classmethod
    @abstractmethod
    def from_bytes(cls, data: bytes, params: PluginParams, seed: int = 0) -> Self:
        """Rebuild a fitted model from ``to_bytes`` output (already SHA-256 verified)."""

    def history_rows(self) -> int:
        """Feature rows before the first predicted row that ``predict`` reads from ``history``."""
        return 0

    def check_target_horizon(self, horizon: int) -> None:
        """Refuse (InvalidInput) parameters that would leak with labels ``horizon`` bars ahead."""

    def lineage_libraries(self) -> dict[str, str]:
        """Versions of every library this configured model uses (members included)."""
        return self.library_versions()

    def resolved_parameters(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json")

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        return {dist: library_version(dist) for dist in cls.libraries}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Discovery metadata: enough for a UI to build a form and a tuning space."""
        return {
            "key": cls.key,
            "family": cls.family,
            "short_name": cls.short_name,
            "description": cls.description,
            "version": cls.version,
            "parameters": cls.Params.model_json_schema(),
            "search_space": {k: v.model_dump(exclude_none=True) for k, v in cls.search_space.items()},
            "libraries": cls.library_versions(),
            "artifact_format": cls.artifact_ext,
        }


model_plugins: Registry[ModelPlugin] = Registry("model")


def resolve_model_type(model_type: str, family: str) -> type[ModelPlugin]:
    """A full key ("ml.xgboost") or a short name read within ``family`` ("xgboost")."""
    from alphaforge.errors import InvalidInput

    in_family = [cls for cls in model_plugins if cls.family == family]
    valid = ", ".join(sorted({c.key for c in in_family} | {c.short_name for c in in_family})) or "none"
    for cls in in_family:
        if model_type in (cls.key, cls.short_name):
            return cls
    if model_type in model_plugins:
        other = model_plugins.get(model_type)
        raise InvalidInput(
            f"model_type {model_type!r} belongs to family {other.family!r}, not {family!r}; "
            f"valid for {family}: {valid}"
        )
    raise InvalidInput(f"unknown model_type {model_type!r} for family {family!r}; valid: {valid}")
