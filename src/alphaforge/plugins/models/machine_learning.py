"""Machine-learning regressors: gradient-boosted trees, a random forest and a ridge baseline.

Every parameter in a schema reaches the estimator (upstream silently dropped several);
everything else is fixed here for reproducibility: the seed, a fixed thread count, and
the libraries' deterministic modes. Artifacts use each library's native format:

- XGBoost: the booster as UBJSON; LightGBM: the booster's text model; CatBoost: ``.cbm``.
- Random forest: scikit-learn has no native format, and pickle executes code on load. The
  artifact is instead a stream of three ``.npy`` arrays read back with
  ``allow_pickle=False`` (data only): a header (``[n_features, 0]`` then one
  ``[node_count, max_depth]`` row per tree), every tree's node table concatenated, and
  every tree's leaf values concatenated. Trees are rebuilt with ``Tree.__setstate__``,
  the state scikit-learn itself pickles, so predictions are bit-identical.
- Ridge: JSON of the scaler's mean/scale and the coefficients and intercept.

The libraries are imported lazily: they are an optional extra and take seconds to import.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from pydantic import Field

from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.models.base import (
    ModelConformance,
    ModelPlugin,
    ParamSpec,
    Prediction,
    Timeline,
    check_width,
    model_plugins,
    rowwise_dot,
)

#: Threads every library uses: fixed, so nothing depends on the host's core count. One, as
#: in the deep-learning plugins: parallelism comes from trainings and tuning trials running
#: side by side, and OpenMP pools oversubscribe badly when several share the cores.
THREADS = 1

LearningRate = Field(0.05, gt=0, le=1, description="Shrinkage applied to each tree")
NEstimators = Field(200, ge=1, le=5000, description="Boosting rounds (trees)")
Fraction = Field(1.0, gt=0, le=1)

LEARNING_RATE_SPACE = ParamSpec(type="float", low=0.005, high=0.3, log=True)
FRACTION_SPACE = ParamSpec(type="float", low=0.5, high=1.0)


class FittedModel(ModelPlugin):
    """A plugin whose fitted state lives in ``self._model`` (None until fit or load)."""

    family = "machine_learning"
    _model: Any = None

    def _fitted(self) -> Any:
        if self._model is None:
            raise RuntimeError(f"{self.key} is not fitted")
        return self._model


# --- XGBoost -------------------------------------------------------------------------


class XGBoostParams(PluginParams):
    max_depth: int = Field(6, ge=1, le=20, description="Maximum depth of a tree")
    learning_rate: float = LearningRate
    n_estimators: int = NEstimators
    subsample: float = Field(1.0, gt=0, le=1, description="Fraction of rows sampled per tree")
    colsample_bytree: float = Field(1.0, gt=0, le=1, description="Fraction of features sampled per tree")
    min_child_weight: float = Field(1.0, ge=0, le=1000, description="Minimum hessian sum in a leaf")
    reg_lambda: float = Field(1.0, ge=0, le=1000, description="L2 penalty on leaf weights")


@model_plugins.register
class XGBoost(FittedModel):
    key = "ml.xgboost"
    short_name = "xgboost"
    description = "XGBoost gradient-boosted trees (hist), squared error."
    Params = XGBoostParams
    libraries = ("xgboost-cpu", "numpy")
    artifact_ext = "ubj"
    conformance = ModelConformance(
        fast={"n_estimators": 30},
        alternates={"min_child_weight": 20.0},  # squared error: hessian 1 per row, 0.5 never binds
    )
    search_space: ClassVar[dict[str, ParamSpec]] = {
        "max_depth": ParamSpec(type="int", low=3, high=10),
        "learning_rate": LEARNING_RATE_SPACE,
        "n_estimators": ParamSpec(type="int", low=100, high=800),
        "subsample": FRACTION_SPACE,
        "colsample_bytree": FRACTION_SPACE,
        "min_child_weight": ParamSpec(type="float", low=1.0, high=10.0, log=True),
        "reg_lambda": ParamSpec(type="float", low=0.01, high=10.0, log=True),
    }

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        import xgboost

        model = xgboost.XGBRegressor(
            **self.params.model_dump(),
            objective="reg:squarederror",
            tree_method="hist",
            n_jobs=THREADS,
            random_state=self.seed,
        )
        model.fit(X, y)
        self._model = model.get_booster()

    def predict(self, timeline: Timeline) -> Prediction:
        return Prediction(np.asarray(self._fitted().inplace_predict(timeline.forecast_rows), dtype=np.float64))

    def to_bytes(self) -> bytes:
        return bytes(self._fitted().save_raw(raw_format="ubj"))

    @classmethod
    def from_bytes(cls, data: bytes, params: PluginParams, seed: int = 0) -> Self:
        import xgboost

        plugin = cls(params, seed)
        booster = xgboost.Booster(params={"nthread": THREADS})
        booster.load_model(bytearray(data))
        plugin._model = booster
        return plugin


# --- LightGBM ------------------------------------------------------------------------


class LightGBMParams(PluginParams):
    num_leaves: int = Field(31, ge=2, le=4096, description="Maximum leaves per tree")
    learning_rate: float = LearningRate
    n_estimators: int = NEstimators
    min_child_samples: int = Field(20, ge=1, le=10_000, description="Minimum rows in a leaf")
    subsample: float = Field(1.0, gt=0, le=1, description="Fraction of rows bagged per tree")
    colsample_bytree: float = Field(1.0, gt=0, le=1, description="Fraction of features sampled per tree")
    reg_lambda: float = Field(0.0, ge=0, le=1000, description="L2 penalty on leaf weights")


@model_plugins.register
class LightGBM(FittedModel):
    key = "ml.lightgbm"
    short_name = "lightgbm"
    description = "LightGBM gradient-boosted trees (leaf-wise), squared error, deterministic mode."
    Params = LightGBMParams
    libraries = ("lightgbm", "numpy")
    artifact_ext = "txt"
    conformance = ModelConformance(
        fast={"n_estimators": 30},
        alternates={"num_leaves": 4},  # min_child_samples=20 on 300 rows caps trees below 31 leaves
    )
    search_space: ClassVar[dict[str, ParamSpec]] = {
        "num_leaves": ParamSpec(type="int", low=16, high=256, log=True),
        "learning_rate": LEARNING_RATE_SPACE,
        "n_estimators": ParamSpec(type="int", low=100, high=800),
        "min_child_samples": ParamSpec(type="int", low=5, high=100),
        "subsample": FRACTION_SPACE,
        "colsample_bytree": FRACTION_SPACE,
        "reg_lambda": ParamSpec(type="float", low=0.0, high=10.0),
    }

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        import lightgbm

        model = lightgbm.LGBMRegressor(
            **self.params.model_dump(),
            subsample_freq=1,  # bag every round, so `subsample` takes effect
            objective="regression",
            deterministic=True,
            force_row_wise=True,
            n_jobs=THREADS,
            random_state=self.seed,
            verbosity=-1,
        )
        model.fit(X, y)
        self._model = model.booster_

    def predict(self, timeline: Timeline) -> Prediction:
        X = timeline.forecast_rows
        return Prediction(np.asarray(self._fitted().predict(X, num_threads=THREADS), dtype=np.float64))

    def to_bytes(self) -> bytes:
        return self._fitted().model_to_string().encode()

    @classmethod
    def from_bytes(cls, data: bytes, params: PluginParams, seed: int = 0) -> Self:
        import lightgbm

        plugin = cls(params, seed)
        plugin._model = lightgbm.Booster(model_str=data.decode())
        return plugin


# --- CatBoost ------------------------------------------------------------------------


class CatBoostParams(PluginParams):
    depth: int = Field(6, ge=1, le=16, description="Depth of the (symmetric) trees")
    learning_rate: float = LearningRate
    iterations: int = NEstimators
    l2_leaf_reg: float = Field(3.0, ge=0, le=100, description="L2 penalty on leaf values")


@model_plugins.register
class CatBoost(FittedModel):
    key = "ml.catboost"
    short_name = "catboost"
    description = "CatBoost gradient-boosted oblivious trees, RMSE loss."
    Params = CatBoostParams
    libraries = ("catboost", "numpy")
    artifact_ext = "cbm"
    conformance = ModelConformance(fast={"iterations": 30})
    search_space: ClassVar[dict[str, ParamSpec]] = {
        "depth": ParamSpec(type="int", low=3, high=10),
        "learning_rate": LEARNING_RATE_SPACE,
        "iterations": ParamSpec(type="int", low=100, high=800),
        "l2_leaf_reg": ParamSpec(type="float", low=1.0, high=10.0, log=True),
    }

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        import catboost

        model = catboost.CatBoostRegressor(
            **self.params.model_dump(),
            loss_function="RMSE",
            random_seed=self.seed,
            thread_count=THREADS,
            allow_writing_files=False,
            silent=True,
        )
        model.fit(X, y)
        # Training stamps the model's metadata with a random model_guid and the wall-clock
        # train_finish_time, and save_model writes both into the .cbm: drop them so that the
        # same fit gives the same bytes. Neither is needed to load or apply the model.
        metadata = model.get_metadata()
        for key in ("model_guid", "train_finish_time"):
            if key in metadata:
                del metadata[key]
        self._model = model

    def predict(self, timeline: Timeline) -> Prediction:
        X = timeline.forecast_rows
        return Prediction(np.asarray(self._fitted().predict(X, thread_count=THREADS), dtype=np.float64))

    def to_bytes(self) -> bytes:
        # CatBoost only saves to a path.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.cbm"
            self._fitted().save_model(str(path), format="cbm")
            return path.read_bytes()

    @classmethod
    def from_bytes(cls, data: bytes, params: PluginParams, seed: int = 0) -> Self:
        import catboost

        plugin = cls(params, seed)
        plugin._model = catboost.CatBoostRegressor().load_model(blob=data)
        return plugin


# --- Random forest -------------------------------------------------------------------


class RandomForestParams(PluginParams):
    n_estimators: int = Field(200, ge=1, le=2000, description="Trees in the forest")
    max_depth: int | None = Field(None, ge=1, le=100, description="Maximum depth; null grows trees fully")
    min_samples_leaf: int = Field(5, ge=1, le=10_000, description="Minimum rows in a leaf")
    max_features: float = Field(1.0, gt=0, le=1, description="Fraction of features tried at each split")


@model_plugins.register
class RandomForest(FittedModel):
    key = "ml.random_forest"
    short_name = "random_forest"
    description = "scikit-learn random forest of regression trees (bootstrap, squared error)."
    Params = RandomForestParams
    libraries = ("scikit-learn", "numpy")
    artifact_ext = "npy"
    conformance = ModelConformance(
        fast={"n_estimators": 20},
        alternates={"max_depth": 3},  # the default None has no "nearby" value
    )
    search_space: ClassVar[dict[str, ParamSpec]] = {
        "n_estimators": ParamSpec(type="int", low=100, high=600),
        "max_depth": ParamSpec(type="int", low=3, high=20),
        "min_samples_leaf": ParamSpec(type="int", low=1, high=20),
        "max_features": ParamSpec(type="float", low=0.3, high=1.0),
    }

    def _forest(self) -> Any:
        from sklearn.ensemble import RandomForestRegressor

        # One job also makes predict sum the trees in a fixed order: bit-identical output.
        return RandomForestRegressor(**self.params.model_dump(), random_state=self.seed, n_jobs=THREADS)

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._model = self._forest().fit(X, y)

    def predict(self, timeline: Timeline) -> Prediction:
        return Prediction(np.asarray(self._fitted().predict(timeline.forecast_rows), dtype=np.float64))

    def to_bytes(self) -> bytes:
        forest = self._fitted()
        states = [tree.tree_.__getstate__() for tree in forest.estimators_]
        header = [[forest.n_features_in_, 0]] + [[s["node_count"], s["max_depth"]] for s in states]
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(header, dtype=np.int64), allow_pickle=False)
        np.save(buffer, np.concatenate([s["nodes"] for s in states]), allow_pickle=False)
        np.save(buffer, np.concatenate([s["values"] for s in states]), allow_pickle=False)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, params: PluginParams, seed: int = 0) -> Self:
        from sklearn.tree import DecisionTreeRegressor
        from sklearn.tree._tree import Tree

        buffer = io.BytesIO(data)
        header, nodes, values = (np.load(buffer, allow_pickle=False) for _ in range(3))
        n_features, counts = int(header[0, 0]), header[1:]
        splits = np.cumsum(counts[:-1, 0])
        trees = []
        for (count, depth), tree_nodes, tree_values in zip(
            counts, np.split(nodes, splits), np.split(values, splits), strict=True
        ):
            tree = Tree(n_features, np.ones(1, dtype=np.intp), 1)
            tree.__setstate__(
                {"max_depth": int(depth), "node_count": int(count), "nodes": tree_nodes, "values": tree_values}
            )
            estimator = DecisionTreeRegressor()
            estimator.tree_, estimator.n_features_in_, estimator.n_outputs_ = tree, n_features, 1
            trees.append(estimator)
        plugin = cls(params, seed)
        forest = plugin._forest()
        forest.estimators_, forest.estimator_ = trees, DecisionTreeRegressor()
        forest.n_features_in_, forest.n_outputs_ = n_features, 1
        plugin._model = forest
        return plugin


# --- Ridge ---------------------------------------------------------------------------


class RidgeParams(PluginParams):
    alpha: float = Field(1.0, gt=0, le=1e6, description="L2 penalty on standardised coefficients")
    fit_intercept: bool = Field(True, description="Fit an intercept (else predictions are centred on 0)")


@model_plugins.register
class RidgeRegression(FittedModel):
    """Fitted state is plain arrays, so the fresh and the reloaded model share one predict."""

    key = "ml.ridge"
    short_name = "ridge"
    description = "Linear baseline: ridge regression on features standardised with training statistics."
    Params = RidgeParams
    libraries = ("scikit-learn", "numpy")
    artifact_ext = "json"
    search_space: ClassVar[dict[str, ParamSpec]] = {
        "alpha": ParamSpec(type="float", low=1e-3, high=1e3, log=True),
        "fit_intercept": ParamSpec(type="categorical", choices=[True, False]),
    }

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import Ridge
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(X)
        ridge = Ridge(**self.params.model_dump()).fit(scaler.transform(X), y)
        self._model = {
            "mean": scaler.mean_,
            "scale": scaler.scale_,
            "coef": ridge.coef_,
            "intercept": np.float64(ridge.intercept_),
        }

    def predict(self, timeline: Timeline) -> Prediction:
        s, X = self._fitted(), timeline.forecast_rows
        check_width(self.key, X, len(s["mean"]))
        return Prediction(rowwise_dot((X - s["mean"]) / s["scale"], s["coef"]) + s["intercept"])

    def to_bytes(self) -> bytes:
        return json.dumps({k: np.asarray(v).tolist() for k, v in self._fitted().items()}).encode()

    @classmethod
    def from_bytes(cls, data: bytes, params: PluginParams, seed: int = 0) -> Self:
        plugin = cls(params, seed)
        plugin._model = {k: np.asarray(v, dtype=np.float64) for k, v in json.loads(data).items()}
        return plugin
