"""Ensembles of other model plugins: ``ensemble.mean`` and ``ensemble.stacking``.

Members are ``{"plugin_key": ..., "parameters": {...}}`` entries. Each is validated
against its own plugin's parameter model when the ensemble's parameters are validated
(an unknown key, an ensemble as a member, or bad member parameters is an error located at
``members.<index>``); member classes are looked up in the registry lazily, so the import
order of plugin modules does not matter.

- Member ``i`` is seeded with :func:`member_seed` ``(seed, i)`` (SHA-256 of both, 31 bits):
  deterministic, different per member, independent of the other members.
- The timeline is passed through to every member, so each forecasts causally by its own
  rule. Members' ``extras`` (e.g. GARCH volatility) are dropped: an ensemble forecasts the
  mean only.
- An ensemble pools symbols when every member does: on a panel (``fit_panel``) each member
  is fitted with the :class:`PanelIndex`, and stacking's inner folds split by date.
- The artifact is a zip: ``manifest.json`` (format, ensemble key, member keys, resolved
  parameters, seeds, artifact file names and SHA-256, combiner weights) and each member's
  own ``to_bytes()``. ``from_bytes`` checks the manifest against the parameters and every
  member's SHA-256 before handing its bytes to that member's ``from_bytes``; a mismatch
  raises :class:`ArtifactIntegrityError`.
- ``libraries`` lists the ensemble's own dependencies only; a member's are reported by
  :meth:`EnsemblePlugin.member_library_versions`.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from typing import Annotated, Any, ClassVar, Self

import numpy as np
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from alphaforge.errors import InvalidInput
from alphaforge.evaluation import cv
from alphaforge.evaluation.panel import PanelFold, panel_folds
from alphaforge.plugins.base import PluginParams, describe_validation_error, validate_params
from alphaforge.plugins.models.base import (
    ModelConformance,
    ModelPlugin,
    PanelIndex,
    ParamSpec,
    Prediction,
    Timeline,
    forecast_panel,
    model_plugins,
    rowwise_dot,
)

_MANIFEST = "manifest.json"
_ARTIFACT_FORMAT = "alphaforge.ensemble/1"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class ArtifactIntegrityError(ValueError):
    """An ensemble artifact does not match its manifest or its parameters."""


def fit_member(member: ModelPlugin, X: np.ndarray, y: np.ndarray, panel: PanelIndex | None) -> None:
    """Fit a member on one series (``panel`` None) or on a panel's rows."""
    if panel is None:
        member.fit(X, y)
    else:
        member.fit_panel(X, y, panel)


def member_seed(seed: int, index: int) -> int:
    """The seed of member ``index`` of an ensemble seeded with ``seed`` (0 … 2**31-1)."""
    digest = hashlib.sha256(f"alphaforge.ensemble.member:{int(seed)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF


class MemberSpec(PluginParams):
    plugin_key: str = Field(description="Key of a registered, non-ensemble model plugin", examples=["ml.ridge"])
    parameters: dict[str, Any] = Field({}, description="That plugin's parameters (its defaults fill the rest)")

    @model_validator(mode="after")
    def _check_member(self) -> MemberSpec:
        if self.plugin_key not in model_plugins:
            raise ValueError(
                f"unknown model plugin {self.plugin_key!r}; registered: {', '.join(model_plugins.keys())}"
            )
        cls = model_plugins.get(self.plugin_key)
        if cls.family == "ensemble":
            raise ValueError(f"{self.plugin_key!r} is an ensemble; ensembles cannot be members of an ensemble")
        try:
            cls.Params.model_validate(self.parameters)
        except ValidationError as exc:
            raise ValueError(
                f"invalid parameters for member {self.plugin_key}: {describe_validation_error(exc, cls.Params)}"
            ) from None
        return self

    def plugin(self) -> type[ModelPlugin]:
        return model_plugins.get(self.plugin_key)

    def validated(self) -> PluginParams:
        cls = self.plugin()
        return validate_params(cls.Params, self.parameters, cls.key)


DEFAULT_MEMBERS: list[dict[str, Any]] = [
    {"plugin_key": "ml.ridge", "parameters": {}},
    {"plugin_key": "ml.lightgbm", "parameters": {"n_estimators": 100}},
]

#: Members for the conformance checks: another list than the default (lists have no
#: automatic alternate), and, for the artifact-hash check, a CatBoost member: the library
#: whose saved model used to embed a random model_guid and the training finish time.
_ALTERNATE_MEMBERS: list[dict[str, Any]] = [
    {"plugin_key": "ml.ridge"},
    {"plugin_key": "ml.xgboost", "parameters": {"n_estimators": 30}},
]
_REPRODUCIBILITY_MEMBERS: list[dict[str, Any]] = [
    {"plugin_key": "ml.ridge"},
    {"plugin_key": "ml.lightgbm", "parameters": {"n_estimators": 30}},
    {"plugin_key": "ml.catboost", "parameters": {"iterations": 30}},
]

_MEMBERS_FIELD = Field(
    DEFAULT_MEMBERS,
    min_length=2,
    max_length=10,
    validate_default=True,
    description="Member models (2-10), each {plugin_key, parameters}; ensembles cannot be nested",
)


class EnsemblePlugin(ModelPlugin):
    """What both ensembles share: members, their seeds, fitting, the zip artifact."""

    family = "ensemble"
    artifact_ext = "zip"

    def __init__(self, params: PluginParams, seed: int = 0) -> None:
        super().__init__(params, seed)
        self.members: list[ModelPlugin] = []

    # ---------------------------------------------------------------- members

    @property
    def member_specs(self) -> list[MemberSpec]:
        return list(self.params.members)  # type: ignore[attr-defined]

    def member_seeds(self) -> list[int]:
        return [member_seed(self.seed, i) for i in range(len(self.member_specs))]

    def _new_members(self) -> list[ModelPlugin]:
        return [
            spec.plugin()(spec.validated(), seed=s) for spec, s in zip(self.member_specs, self.member_seeds(), strict=True)
        ]

    def resolved_parameters(self) -> dict[str, Any]:
        resolved = self.params.model_dump(mode="json")
        resolved["members"] = [
            {"plugin_key": spec.plugin_key, "parameters": spec.validated().model_dump(mode="json")}
            for spec in self.member_specs
        ]
        return resolved

    def member_library_versions(self) -> dict[str, dict[str, str]]:
        return {spec.plugin_key: spec.plugin().library_versions() for spec in self.member_specs}

    def lineage_libraries(self) -> dict[str, str]:
        merged = dict(self.library_versions())
        for versions in self.member_library_versions().values():
            merged.update(versions)
        return merged

    def history_rows(self) -> int | None:
        rows = [m.plugin()(m.validated()).history_rows() for m in self.member_specs]
        return None if None in rows else max((r for r in rows if r is not None), default=0)

    def pools_symbols(self) -> bool:
        """Every member is fitted on the panel and forecasts by its own rule: all must pool."""
        return all(m.plugin()(m.validated()).pools_symbols() for m in self.member_specs)

    @staticmethod
    def _check_xy(key: str, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if X.ndim != 2 or len(X) != len(y):
            raise InvalidInput(f"{key}: X must be (n, k) with n = len(y); got {X.shape} and {y.shape}")
        return X, y

    def _member_predictions(self, members: list[ModelPlugin], timeline: Timeline) -> np.ndarray:
        """(n, n_members) point forecasts; members' extras are dropped."""
        columns, n = [], timeline.n_forecast
        for i, member in enumerate(members):
            mean = np.asarray(member.predict(timeline).mean, dtype=np.float64).reshape(-1)
            if len(mean) != n:
                raise ValueError(f"{self.key}: member {i} ({member.key}) returned {len(mean)} forecasts for {n} rows")
            columns.append(mean)
        return np.column_stack(columns) if columns else np.zeros((n, 0))

    # ---------------------------------------------------------------- combiner (per subclass)

    def _combiner_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_combiner(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- artifact

    def to_bytes(self) -> bytes:
        if not self.members:
            raise InvalidInput(f"{self.key}: the model is not fitted")
        entries = []
        blobs: list[tuple[str, bytes]] = []
        for i, (spec, member, seed) in enumerate(zip(self.member_specs, self.members, self.member_seeds(), strict=True)):
            data = member.to_bytes()
            name = f"member_{i}.{member.artifact_ext}"
            blobs.append((name, data))
            entries.append({
                "index": i,
                "plugin_key": spec.plugin_key,
                "plugin_version": member.version,
                "parameters": member.resolved_parameters(),
                "seed": seed,
                "artifact": name,
                "sha256": hashlib.sha256(data).hexdigest(),
            })
        manifest = {
            "format": _ARTIFACT_FORMAT,
            "ensemble": self.key,
            "version": self.version,
            "seed": self.seed,
            "members": entries,
            "combiner": self._combiner_state(),
        }
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in [(_MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode()), *blobs]:
                info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)  # fixed time: same model, same bytes
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, params: PluginParams, seed: int = 0) -> Self:
        model = cls(params, seed)
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            manifest = json.loads(archive.read(_MANIFEST))
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise ArtifactIntegrityError(f"{cls.key}: not a readable ensemble artifact ({exc})") from exc
        with archive:
            if manifest.get("format") != _ARTIFACT_FORMAT or manifest.get("ensemble") != cls.key:
                raise ArtifactIntegrityError(
                    f"{cls.key}: artifact is {manifest.get('ensemble')!r} in format {manifest.get('format')!r}"
                )
            entries = manifest.get("members") or []
            specs = model.member_specs
            if len(entries) != len(specs):
                raise ArtifactIntegrityError(f"{cls.key}: artifact has {len(entries)} members, parameters name {len(specs)}")
            members = []
            for i, (entry, spec) in enumerate(zip(entries, specs, strict=True)):
                member_params = spec.validated()
                if entry.get("plugin_key") != spec.plugin_key or entry.get("parameters") != member_params.model_dump(mode="json"):
                    raise ArtifactIntegrityError(
                        f"{cls.key}: member {i} of the artifact ({entry.get('plugin_key')}) does not match "
                        f"the parameters ({spec.plugin_key} {member_params.model_dump(mode='json')})"
                    )
                try:
                    blob = archive.read(entry["artifact"])
                except KeyError as exc:
                    raise ArtifactIntegrityError(f"{cls.key}: member {i} artifact {entry['artifact']!r} is missing") from exc
                digest = hashlib.sha256(blob).hexdigest()
                if digest != entry.get("sha256"):
                    raise ArtifactIntegrityError(
                        f"{cls.key}: member {i} ({spec.plugin_key}) artifact {entry['artifact']!r} fails its SHA-256 "
                        f"check (manifest {entry.get('sha256')}, file {digest}); refusing to load it"
                    )
                members.append(spec.plugin().from_bytes(blob, member_params, member_seed(seed, i)))
        model.members = members
        model._load_combiner(manifest.get("combiner") or {})
        return model


# ==================================================================== mean


class MeanParams(PluginParams):
    members: list[MemberSpec] = _MEMBERS_FIELD
    weights: list[Annotated[float, Field(ge=0.0)]] | None = Field(
        None, description="One non-negative weight per member (normalised to sum 1); default: equal weights"
    )

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, weights: list[float] | None, info: ValidationInfo) -> list[float] | None:
        if weights is None:
            return None
        members = info.data.get("members")  # absent when the members failed validation
        if members is not None and len(weights) != len(members):
            raise ValueError(f"weights has {len(weights)} entries for {len(members)} members: give one per member")
        if not all(math.isfinite(w) for w in weights) or not math.fsum(weights) > 0:
            raise ValueError("weights must be finite and not all zero")
        return weights


@model_plugins.register
class MeanEnsemble(EnsemblePlugin):
    key = "ensemble.mean"
    short_name = "mean"
    description = (
        "Weighted average of the member models' forecasts (equal weights by default); "
        "each member fitted on all training rows with its own derived seed."
    )
    version = "2"
    Params = MeanParams
    libraries = ("numpy",)
    conformance = ModelConformance(
        alternates={"members": _ALTERNATE_MEMBERS, "weights": [3.0, 1.0]},
        artifact_parameters={"members": _REPRODUCIBILITY_MEMBERS},
    )
    search_space: ClassVar[dict[str, ParamSpec]] = {}

    params: MeanParams

    @property
    def weights(self) -> np.ndarray:
        w = np.ones(len(self.member_specs)) if self.params.weights is None else np.asarray(self.params.weights, float)
        return w / w.sum()

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._fit(X, y, None)

    def fit_panel(self, X: np.ndarray, y: np.ndarray, panel: PanelIndex) -> None:
        self._fit(X, y, panel)

    def _fit(self, X: np.ndarray, y: np.ndarray, panel: PanelIndex | None) -> None:
        X, y = self._check_xy(self.key, X, y)
        members = self._new_members()
        for member in members:
            fit_member(member, X, y, panel)
        self.members = members

    def predict(self, timeline: Timeline) -> Prediction:
        if not self.members:
            raise InvalidInput(f"{self.key}: the model is not fitted")
        return Prediction(mean=rowwise_dot(self._member_predictions(self.members, timeline), self.weights))

    def _combiner_state(self) -> dict[str, Any]:
        return {"weights": self.weights.tolist()}

    def _load_combiner(self, state: dict[str, Any]) -> None:
        if not np.allclose(state.get("weights", []), self.weights, rtol=0, atol=1e-12):
            raise ArtifactIntegrityError(f"{self.key}: artifact weights {state.get('weights')} do not match the parameters")


# ==================================================================== stacking


#: The splitter's min_train_size: any positive fraction that asks for one row; the two
#: rows stacking's first fold needs are checked by StackingEnsemble.oof_folds.
_ANY_TRAIN_ROWS = 1e-12


class StackingParams(PluginParams):
    members: list[MemberSpec] = _MEMBERS_FIELD
    n_folds: int = Field(
        3, ge=2, le=10,
        description="Walk-forward folds inside the training rows that produce the out-of-fold forecasts",
    )
    purge: int = Field(
        1, ge=0, le=10_000,
        description="Rows (on a panel: dates) dropped from the end of each fold's training rows (set it to the "
        "target horizon: their labels reach into the out-of-fold block; on a panel at least the dates the "
        "longest label spans)",
    )
    fit_intercept: bool = Field(True, description="Fit an intercept beside the non-negative member weights")


@model_plugins.register
class StackingEnsemble(EnsemblePlugin):
    key = "ensemble.stacking"
    short_name = "stacking"
    description = (
        "Stacking: walk-forward out-of-fold forecasts of the members inside the training rows, "
        "a non-negative least-squares meta-learner (optional intercept) on them, members refitted on all rows."
    )
    version = "3"  # 3: out-of-fold folds from evaluation.cv (back-anchored blocks, purge >= 1)
    Params = StackingParams
    libraries = ("numpy", "scipy")
    conformance = ModelConformance(
        alternates={"members": _ALTERNATE_MEMBERS},
        artifact_parameters={"members": _REPRODUCIBILITY_MEMBERS},
    )
    search_space: ClassVar[dict[str, ParamSpec]] = {
        "n_folds": ParamSpec(type="int", low=2, high=5),
    }

    params: StackingParams

    def __init__(self, params: PluginParams, seed: int = 0) -> None:
        super().__init__(params, seed)
        self.meta_weights = np.zeros(0)
        self.meta_intercept = 0.0
        #: The out-of-fold folds of the last fit (:meth:`oof_folds`, on a panel
        #: :meth:`panel_oof_folds`): members fitted on ``fold.train`` forecast ``fold.test``.
        self.folds: list[cv.Fold] | list[PanelFold] = []
        self.oof_predictions = np.zeros((0, 0))

    def check_target_horizon(self, horizon: int) -> None:
        if self.params.purge < horizon:
            raise InvalidInput(
                f"{self.key}: parameters.purge={self.params.purge} is shorter than target_horizon={horizon}: "
                "the members' out-of-fold training labels would reach into the blocks they forecast; "
                f"set parameters.purge to at least {horizon}"
            )

    @property
    def fold_purge(self) -> int:
        """Rows withheld before each out-of-fold block: ``purge``, at least 1 (the splitter's
        rule: every label reaches at least one row ahead, so ``purge`` 0 would leak)."""
        return max(self.params.purge, 1)

    def oof_folds(self, n: int) -> list[cv.Fold]:
        """The walk-forward folds of the out-of-fold forecasts, made by the splitter
        training and tuning use (:func:`alphaforge.evaluation.cv.make_folds`, expanding, no
        embargo): the last ``n_folds`` blocks of ``n // (n_folds + 1)`` rows are forecast,
        each by members fitted on every row before it but the ``fold_purge`` right before
        it; the first block and any remainder rows only train."""
        k, purge = self.params.n_folds, self.fold_purge
        self._check_oof_size(n, purge, "rows")
        return cv.make_folds(
            n, method="expanding", n_splits=k, test_size=1 / (k + 1), min_train_size=_ANY_TRAIN_ROWS,
            horizon=purge, purge=purge,
        )

    def panel_oof_folds(self, panel: PanelIndex) -> list[PanelFold]:
        """:meth:`oof_folds` over a panel's dates (:func:`alphaforge.evaluation.panel.panel_folds`):
        every symbol of a date on one side, blocks and purge counted in dates, the purge at
        least the dates the longest label spans (``panel.horizon``)."""
        k, purge = self.params.n_folds, max(self.fold_purge, panel.horizon)
        self._check_oof_size(len(np.unique(panel.dates)), purge, "dates")
        return panel_folds(
            panel.dates, method="expanding", n_splits=k, test_size=1 / (k + 1), min_train_size=_ANY_TRAIN_ROWS,
            horizon=purge, purge=purge, symbols=panel.series,
        )

    def _check_oof_size(self, n: int, purge: int, unit: str) -> None:
        """422 unless the first out-of-fold fold trains on >= 2 rows (dates)."""
        k = self.params.n_folds
        block = n // (k + 1)
        first_train = n - k * block - purge
        if block < 1 or first_train < 2:
            raise InvalidInput(
                f"{self.key}: {n} training {unit} are too few for n_folds={k} with purge={purge}: the first fold "
                f"would train on {max(first_train, 0)} {unit} (needs >= 2). Use fewer folds, a smaller purge or "
                f"more {unit}."
            )

    def _oof_forecasts(
        self, members: list[ModelPlugin], X: np.ndarray, y: np.ndarray, fold: cv.Fold | PanelFold,
        panel: PanelIndex | None,
    ) -> np.ndarray:
        """(test rows, members) forecasts, as training's fold forecasts: the rows forecast see
        the labels realised by them, never the purge gap's; on a panel each symbol its own."""
        start, stop = int(fold.test[0]), int(fold.test[-1]) + 1
        if panel is None:
            assert isinstance(fold, cv.Fold)
            return self._member_predictions(members, Timeline(X[:stop], fold.known_targets(y), fold.purge, start))
        assert isinstance(fold, PanelFold)
        known = fold.known_targets(y, panel.dates)
        index = PanelIndex(panel.dates[:stop], panel.series[:stop], horizon=fold.purge)
        return np.column_stack([forecast_panel(m, X[:stop], known, index, start=start) for m in members])

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._fit(X, y, None)

    def fit_panel(self, X: np.ndarray, y: np.ndarray, panel: PanelIndex) -> None:
        """As :meth:`fit`, the out-of-fold folds split by date (:meth:`panel_oof_folds`) and
        each member fitted on the panel and forecasting each symbol from its own rows."""
        self._fit(X, y, panel)

    def _fit(self, X: np.ndarray, y: np.ndarray, panel: PanelIndex | None) -> None:
        from scipy.optimize import nnls

        X, y = self._check_xy(self.key, X, y)
        folds: list[cv.Fold] | list[PanelFold] = self.oof_folds(len(X)) if panel is None else self.panel_oof_folds(panel)
        oof_start = int(folds[0].test[0])
        oof = np.zeros((len(X) - oof_start, len(self.member_specs)))
        for fold in folds:
            members = self._new_members()
            train = None if panel is None else panel.take(fold.train)
            for member in members:
                fit_member(member, X[fold.train], y[fold.train], train)
            start, stop = int(fold.test[0]), int(fold.test[-1]) + 1
            oof[start - oof_start : stop - oof_start] = self._oof_forecasts(members, X, y, fold, panel)
        target = y[oof_start:]

        if self.params.fit_intercept:
            p_mean, y_mean = oof.mean(axis=0), float(target.mean())
            A, b = oof - p_mean, target - y_mean
        else:
            p_mean, y_mean = np.zeros(oof.shape[1]), 0.0
            A, b = oof, target
        try:
            weights, _ = nnls(A, b)
        except RuntimeError:  # did not converge: fall back to the plain average
            weights = np.full(oof.shape[1], 1.0 / oof.shape[1])
        self.meta_weights = np.asarray(weights, dtype=np.float64)
        self.meta_intercept = float(y_mean - p_mean @ self.meta_weights)
        self.folds = folds
        self.oof_predictions = oof

        members = self._new_members()
        for member in members:
            fit_member(member, X, y, panel)
        self.members = members

    def predict(self, timeline: Timeline) -> Prediction:
        if not self.members:
            raise InvalidInput(f"{self.key}: the model is not fitted")
        members = self._member_predictions(self.members, timeline)
        return Prediction(mean=self.meta_intercept + rowwise_dot(members, self.meta_weights))

    def _combiner_state(self) -> dict[str, Any]:
        return {"weights": self.meta_weights.tolist(), "intercept": self.meta_intercept}

    def _load_combiner(self, state: dict[str, Any]) -> None:
        weights = np.asarray(state.get("weights", []), dtype=np.float64)
        if weights.shape != (len(self.member_specs),) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ArtifactIntegrityError(f"{self.key}: artifact meta weights {state.get('weights')} are invalid")
        self.meta_weights = weights
        self.meta_intercept = float(state.get("intercept", 0.0))
