"""The model-plugin contract.

A model plugin is a regressor of the forward return on a matrix of feature rows. It is
built from validated parameters and a seed, and is deterministic given both. It declares
its parameters (a pydantic model: types, defaults, bounds), a default search space for
tuning, the libraries whose versions go into the training lineage, and how its fitted
state is stored: ``to_bytes`` / ``from_bytes`` in the library's native format where one
exists. Bytes are only handed to ``from_bytes`` after their SHA-256 has been verified.

Feature rows are float64 matrices in the order of the training's ``feature_columns``.

Prediction is causal, one rule for every plugin: ``predict`` gets a :class:`Timeline` (the
feature rows of one series from a fixed first row on, and the targets known so far) and
forecasts rows ``start …``; the forecast for row ``t`` reads feature rows up to ``t`` and
targets of rows up to ``t - horizon`` (the ones realised by ``t``), nothing else. So a
forecast never depends on what comes after its row, nor on the range asked for: the
conformance checks (:mod:`alphaforge.plugins.testing`) perturb everything after ``t`` and
split ranges to hold every plugin to it. What a plugin needs from those checks beyond their
defaults it declares on itself, in :class:`ModelConformance`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
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


@dataclass(frozen=True)
class Timeline:
    """What is known of one series when forecasting its rows ``start …``.

    ``X`` holds the series' feature rows in time order from a fixed first row on, ``y`` the
    forward return of each row over ``horizon`` rows, NaN where the caller does not know it
    (``None``: no target known at all). The forecast for row ``t`` may read ``X[: t + 1]``
    and ``y[s]`` for ``s <= t - horizon`` only: the label of row ``s`` is realised by row
    ``s + horizon``. A caller may withhold more labels (NaN), e.g. cross-validation's purge
    gap; models then filter across them on features alone.
    """

    X: np.ndarray
    y: np.ndarray | None = None
    horizon: int = 1
    start: int = 0

    def __post_init__(self) -> None:
        if self.X.ndim != 2:
            raise ValueError(f"a timeline's X must be (n, k), got shape {self.X.shape}")
        if self.y is not None and self.y.shape != (len(self.X),):
            raise ValueError(f"a timeline's y must have one value per row of X, got {self.y.shape} for {len(self.X)}")
        if self.horizon < 1 or not 0 <= self.start <= len(self.X):
            raise ValueError(f"horizon {self.horizon} must be >= 1 and start {self.start} within 0..{len(self.X)}")

    @classmethod
    def rows(cls, X: np.ndarray, history: np.ndarray | None = None, horizon: int = 1) -> Timeline:
        """Forecast every row of ``X`` after the feature rows ``history``; no target known."""
        X = np.asarray(X, dtype=np.float64)
        if history is None or len(history) == 0:
            return cls(X, horizon=horizon)
        return cls(np.concatenate([np.asarray(history, dtype=np.float64), X]), horizon=horizon, start=len(history))

    @property
    def n_forecast(self) -> int:
        return len(self.X) - self.start

    @property
    def forecast_rows(self) -> np.ndarray:
        """The feature rows forecast, ``X[start:]``."""
        return self.X[self.start :]

    def known_targets(self) -> np.ndarray:
        """``y`` with every label that no forecast row may read set to NaN: rows after
        ``len(X) - 1 - horizon`` are not realised by the last row forecast."""
        y = np.full(len(self.X), np.nan) if self.y is None else np.array(self.y, dtype=np.float64)
        y[max(len(y) - self.horizon, 0) :] = np.nan
        return y


@dataclass
class Prediction:
    """Point forecasts of the forward return, plus any extra series a model forecasts
    beside them (``{"volatility": ...}`` for GARCH). Every array has one value per row
    forecast (``Timeline.n_forecast``)."""

    mean: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)


def check_width(key: str, X: np.ndarray, fitted: int) -> None:
    """Refuse feature rows of another width than the model was fitted on (numpy would
    broadcast one column across all of them and predict nonsense without a word)."""
    if X.ndim != 2 or X.shape[1] != fitted:
        raise ValueError(f"{key}: the model was fitted on {fitted} feature columns, got rows of shape {X.shape}")


def rowwise_dot(A: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``A @ w`` with each row's sum in one fixed order, so a row's value never depends on
    which other rows share the batch (BLAS picks kernels, and roundings, by the matrix
    shape: a forecast must not change with the range asked)."""
    out = np.zeros(len(A), dtype=np.float64)
    for j, weight in enumerate(np.asarray(w, dtype=np.float64)):
        out += A[:, j] * weight
    return out


#: Out-of-sample correlation with a strong linear signal that the conformance checks expect
#: of a plugin, by family, unless its :class:`ModelConformance` says otherwise.
DEFAULT_MIN_CORRELATION: Mapping[str, float] = MappingProxyType(
    {"statistical": 0.2, "machine_learning": 0.5, "deep_learning": 0.2, "ensemble": 0.5}
)


@dataclass(frozen=True)
class ModelConformance:
    """How the conformance checks (:mod:`alphaforge.plugins.testing`) exercise a model plugin:
    the plugin's declared exceptions to their defaults, as its ``conformance`` tag. Read by
    the checks only, never by training or prediction, and no part of any hash.

    - ``fast``: parameters that keep the checks' fits small (fewer trees, epochs); every
      check starts from them.
    - ``alternates``: parameter -> the value the "every parameter changes the predictions"
      check sets, where its automatic choice (another enum value, the flipped bool, a
      nearby number) would not bind on 300 rows of 4 features, or does not exist (lists).
    - ``contexts``: parameter -> settings, beyond ``fast``, under which it can bind at all
      (applied to both sides of that comparison).
    - ``min_correlation``: the out-of-sample correlation with a strong linear signal the
      plugin must reach; ``None``: its family's (:data:`DEFAULT_MIN_CORRELATION`).
    - ``artifact_parameters``: parameters, beyond ``fast``, of the identical-artifact
      (SHA-256) check: e.g. ensemble members whose libraries used to stamp their files.
    """

    fast: Mapping[str, Any] = field(default_factory=dict)
    alternates: Mapping[str, Any] = field(default_factory=dict)
    contexts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    min_correlation: float | None = None
    artifact_parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("fast", "alternates", "artifact_parameters"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        contexts = {k: MappingProxyType(dict(v)) for k, v in self.contexts.items()}
        object.__setattr__(self, "contexts", MappingProxyType(contexts))

    def expected_correlation(self, family: str) -> float:
        """The minimum correlation for a plugin of ``family`` carrying this tag."""
        if self.min_correlation is not None:
            return self.min_correlation
        return DEFAULT_MIN_CORRELATION.get(family, min(DEFAULT_MIN_CORRELATION.values()))


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
    #: What the conformance checks need beyond their defaults (tests only; see the class).
    conformance: ClassVar[ModelConformance] = ModelConformance()

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
    def predict(self, timeline: Timeline) -> Prediction:
        """Forecast the forward return of rows ``timeline.start …`` causally (see
        :class:`Timeline`); all values finite."""

    @abstractmethod
    def to_bytes(self) -> bytes:
        """The fitted state, in the library's native format where one exists."""

    @classmethod
    @abstractmethod
    def from_bytes(cls, data: bytes, params: PluginParams, seed: int = 0) -> Self:
        """Rebuild a fitted model from ``to_bytes`` output (already SHA-256 verified)."""

    def history_rows(self) -> int | None:
        """Rows before the first forecast row that ``predict`` reads; ``None``: every row
        from the series' first (filters that carry a state from the beginning)."""
        return 0

    def pools_symbols(self) -> bool:
        """Whether the model can fit a panel (many symbols' rows at once, sorted by date):
        true when each forecast reads its own row's features alone."""
        return self.history_rows() == 0

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
