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

Panels (many symbols' rows, sorted by date then symbol): a plugin that ``pools_symbols``
is fitted on all of them at once, ``fit_panel(X, y, panel)``, the :class:`PanelIndex` saying
each row's date and series, so a model that reads a series' earlier rows (the LSTM's
windows) or splits by time (stacking's inner folds) can do so per series and per date; a
model that reads its own row alone needs nothing more than ``fit``. Prediction stays one
series at a time: :func:`forecast_panel` hands each series its own :class:`Timeline`.
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


@dataclass(frozen=True)
class PanelIndex:
    """Where each row of a panel sits: its date and its series (symbol), as integer codes.

    Rows are sorted by date, then series (the panel's (timestamp, symbol) order), so each
    series' rows are in time order. ``horizon`` is the most dates any row's label spans (a
    symbol missing dates spans more than the target horizon): what a split by date must
    purge at least. Plugins that pool read it to keep each series' rows apart (windows) and
    each date on one side of a split (inner folds); models that read one row alone ignore it.
    """

    dates: np.ndarray  # (n,) int64, non-decreasing: each row's position in the panel's calendar
    series: np.ndarray  # (n,) int64: each row's series code
    horizon: int = 1

    def __post_init__(self) -> None:
        dates = np.asarray(self.dates, dtype=np.int64)
        series = np.asarray(self.series, dtype=np.int64)
        if dates.ndim != 1 or series.shape != dates.shape:
            raise ValueError(f"a panel index needs one date and one series per row, got {dates.shape} and {series.shape}")
        if np.any(np.diff(dates) < 0):
            raise ValueError("a panel's rows must be sorted by date (then series)")
        if self.horizon < 1:
            raise ValueError(f"a panel's label horizon must be >= 1, got {self.horizon}")
        object.__setattr__(self, "dates", dates)
        object.__setattr__(self, "series", series)

    @classmethod
    def one_series(cls, n: int, horizon: int = 1) -> PanelIndex:
        """A single series of ``n`` rows, one date each: the panel view of a plain fit."""
        return cls(np.arange(n), np.zeros(n, dtype=np.int64), horizon)

    def __len__(self) -> int:
        return len(self.dates)

    def take(self, rows: np.ndarray) -> PanelIndex:
        """The index of a subset of rows (ascending), e.g. a fold's training rows."""
        return PanelIndex(self.dates[rows], self.series[rows], self.horizon)

    def by_series(self) -> list[np.ndarray]:
        """Each series' rows, ascending (so in time order), series in code order."""
        order = np.argsort(self.series, kind="stable")
        bounds = np.flatnonzero(np.diff(self.series[order])) + 1
        return [part for part in np.split(order, bounds) if len(part)]


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
        """Fit on feature rows ``X`` (n, k) and forward returns ``y`` (n,) of one series."""

    def fit_panel(self, X: np.ndarray, y: np.ndarray, panel: PanelIndex) -> None:
        """Fit on a panel's rows (sorted by date, then symbol; ``panel`` says each row's date
        and symbol). Called only when :meth:`pools_symbols`. The default serves models whose
        forecasts read their own row alone: the rows' layout cannot matter, so they are
        fitted as one matrix. A model that reads a series' earlier rows overrides it."""
        if self.history_rows() != 0:
            raise NotImplementedError(
                f"{self.key} reads a series' earlier rows: it must override fit_panel (and pools_symbols) to pool symbols"
            )
        self.fit(X, y)

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
        """Whether the model can fit a panel (:meth:`fit_panel`: many symbols' rows at once)
        and forecast each symbol by its own timeline (:func:`forecast_panel`). True by
        default when each forecast reads its own row alone (the panel's layout cannot
        matter); a plugin that reads a series' earlier rows says True itself when its
        ``fit_panel`` keeps the series apart. Per-series filters (their state runs through
        one series from its first row) say False."""
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


def forecast_panel(
    model: ModelPlugin, X: np.ndarray, y: np.ndarray | None, panel: PanelIndex, *, start: int
) -> np.ndarray:
    """Point forecasts of a panel's rows ``start …`` (``start`` the first row of a date), each
    symbol by its own :class:`Timeline`: that symbol's rows from its first up to its last,
    its labels from ``y`` (NaN: withheld), horizon ``panel.horizon`` counted in its rows (a
    label spanning at most ``horizon`` dates is realised ``horizon`` of its rows later). A
    forecast so reads only its own symbol's rows up to its date. A model that reads its own
    row alone (``history_rows() == 0``) forecasts every row in one call: the same values,
    one batch.
    """
    X = np.asarray(X, dtype=np.float64)
    if model.history_rows() == 0:
        return np.asarray(model.predict(Timeline.rows(X[start:], horizon=panel.horizon)).mean, dtype=np.float64)
    out = np.empty(len(X) - start, dtype=np.float64)
    for rows in panel.by_series():
        forecast = rows >= start
        if not forecast.any():
            continue
        known = None if y is None else np.asarray(y, dtype=np.float64)[rows]
        first = int(np.argmax(forecast))  # the series' rows from start on are its tail
        timeline = Timeline(X[rows], known, horizon=panel.horizon, start=first)
        out[rows[first:] - start] = np.asarray(model.predict(timeline).mean, dtype=np.float64)
    return out


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
