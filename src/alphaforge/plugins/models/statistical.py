"""Statistical models: regression with ARIMA errors (statsmodels) and GARCH (arch).

Both are time-series models, so ``predict`` reads the new rows as the steps that follow
the end of training, in order (1 step ahead, 2 steps ahead, ...). They condition on the
training data only: no target value after training is ever used. Far from the training
end the dynamic part decays to its unconditional level, leaving the regression on the
features. Both fit deterministically (fixed optimiser and iteration cap, warnings
silenced) on internally rescaled data, since daily returns (~1e-2) and raw features
(prices, volumes) are badly scaled for the optimisers; predictions are unscaled.

Artifacts are JSON (no pickle): the specification's fitted parameters plus the state the
forecast starts from. statsmodels and arch are imported lazily (seconds to import).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Literal, Self

import numpy as np
from pydantic import Field

from alphaforge.errors import InvalidInput
from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.models.base import ModelPlugin, ParamSpec, Prediction, model_plugins

MAX_ITERATIONS = 200


@contextmanager
def _quiet() -> Iterator[None]:
    """Convergence and start-value warnings are noise here; the result is checked instead.

    Enter it only after statsmodels is imported: its import prepends "always" filters."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _column_scale(X: np.ndarray) -> np.ndarray:
    """Per-column standard deviation (1 where constant). Dividing by it only rescales the
    coefficients, so the model is unchanged while the optimiser sees unit-sized inputs."""
    scale = np.std(X, axis=0)
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)


def _finite(values: np.ndarray, key: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise InvalidInput(f"{key} produced non-finite values; try a lower order or other features")
    return values


class StatefulModel(ModelPlugin):
    """Fitted state is a JSON-ready dict of arrays, shared by the fresh and reloaded model."""

    family = "statistical"
    libraries = ("numpy", "scipy")
    artifact_ext = "json"
    _state: dict[str, Any] | None = None

    def _fitted(self) -> dict[str, Any]:
        if self._state is None:
            raise RuntimeError(f"{self.key} is not fitted")
        return self._state

    def to_bytes(self) -> bytes:
        state = {k: np.asarray(v).tolist() for k, v in self._fitted().items()}
        return json.dumps(state, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, params: PluginParams, seed: int = 0) -> Self:
        plugin = cls(params, seed)
        plugin._state = {k: np.asarray(v, dtype=np.float64) for k, v in json.loads(data).items()}
        return plugin


# --- ARIMA ---------------------------------------------------------------------------


class ArimaParams(PluginParams):
    p: int = Field(1, ge=0, le=5, description="Autoregressive order of the errors")
    d: int = Field(0, ge=0, le=2, description="Differencing order of the errors")
    q: int = Field(0, ge=0, le=5, description="Moving-average order of the errors")
    trend: Literal["n", "c", "t", "ct"] = Field(
        "c", description="Deterministic trend: none, constant, linear in time, or both"
    )


@model_plugins.register
class Arima(StatefulModel):
    """Regression on the features with ARIMA(p, d, q) errors (statsmodels SARIMAX).

    Prediction: the Kalman filter's state at the training end (its one-step prediction and
    covariance) starts a model on the new rows whose target is all missing, filtered with
    the fitted parameters: exactly ``forecast(steps=len(X), exog=X)`` from the training end
    (a time trend continues from there), but needing only that state, so a reloaded model
    forecasts the same. The target is fitted in units of its standard deviation.
    """

    key = "stat.arima"
    short_name = "arima"
    description = "Linear regression on the features with ARIMA(p,d,q) errors (statsmodels SARIMAX)."
    Params = ArimaParams
    libraries = ("statsmodels", "numpy", "scipy")
    # Time trends make each likelihood evaluation ~10x slower and rarely suit returns.
    search_space: ClassVar[dict[str, ParamSpec]] = {
        "p": ParamSpec(type="int", low=0, high=3),
        "d": ParamSpec(type="int", low=0, high=1),
        "q": ParamSpec(type="int", low=0, high=3),
        "trend": ParamSpec(type="categorical", choices=["n", "c"]),
    }

    def _sarimax(self, y: np.ndarray, exog: np.ndarray, trend_offset: int = 1) -> Any:
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        spec: Any = self.params
        order = (spec.p, spec.d, spec.q)
        # validate_exog would refuse a constant column beside a constant trend: it is merely
        # collinear (the split between the two does not change forecasts), and every column
        # of a single new row is "constant".
        return SARIMAX(y, exog=exog, order=order, trend=spec.trend, trend_offset=trend_offset, validate_exog=False)

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        x_scale = _column_scale(X)
        y_scale = float(np.std(y)) or 1.0
        model = self._sarimax(y / y_scale, X / x_scale)
        with _quiet():
            result = model.fit(method="lbfgs", maxiter=MAX_ITERATIONS, disp=False)
        self._state = {
            "params": _finite(result.params, self.key),
            "x_scale": x_scale,
            "y_scale": np.float64(y_scale),
            "n_train": np.float64(result.nobs),
            "state": result.predicted_state[:, -1],
            "state_cov": result.predicted_state_cov[:, :, -1],
        }

    def predict(self, X: np.ndarray, history: np.ndarray | None = None) -> Prediction:
        s = self._fitted()
        if len(X) == 0:
            return Prediction(np.empty(0))
        model = self._sarimax(np.full(len(X), np.nan), X / s["x_scale"], trend_offset=int(s["n_train"]) + 1)
        model.ssm.initialize_known(s["state"], s["state_cov"])
        with _quiet():
            forecasts = model.filter(s["params"]).forecasts[0]
        return Prediction(_finite(forecasts * s["y_scale"], self.key))


# --- GARCH ---------------------------------------------------------------------------

#: arch's optimiser wants returns in percent.
RETURN_SCALE = 100.0


class GarchParams(PluginParams):
    mean: Literal["LS", "Constant", "Zero"] = Field(
        "LS", description="Conditional mean: regression on the features, a constant, or zero"
    )
    p: int = Field(1, ge=1, le=5, description="ARCH order (lagged squared shocks)")
    q: int = Field(1, ge=0, le=5, description="GARCH order (lagged variances)")
    dist: Literal["normal", "t", "skewt", "ged"] = Field("normal", description="Distribution of the shocks")


@model_plugins.register
class Garch(StatefulModel):
    """A mean model with GARCH(p, q) errors (arch), fitted jointly by maximum likelihood.

    ``Prediction.mean`` is the conditional mean of each new row (const + X @ beta for "LS").
    ``extras["volatility"]`` is the square root of the analytic variance forecast from the
    training end, h steps ahead for the h-th new row, in return units. The forecast needs
    the training residuals (the variance recursion and its backcast run over them), so the
    artifact stores them beside the parameters.
    """

    key = "stat.garch"
    short_name = "garch"
    description = "Conditional mean (features, constant or zero) with GARCH(p,q) volatility (arch)."
    Params = GarchParams
    libraries = ("arch", "numpy", "scipy")
    search_space: ClassVar[dict[str, ParamSpec]] = {
        "mean": ParamSpec(type="categorical", choices=["LS", "Constant", "Zero"]),
        "p": ParamSpec(type="int", low=1, high=3),
        "q": ParamSpec(type="int", low=0, high=3),
        "dist": ParamSpec(type="categorical", choices=["normal", "t", "skewt", "ged"]),
    }

    def _mean_model(self) -> str:
        return self.params.mean  # type: ignore[attr-defined,no-any-return]

    def _arch(self, y: np.ndarray, x: np.ndarray | None, mean: str) -> Any:
        from arch import arch_model

        spec: Any = self.params
        return arch_model(y, x=x, mean=mean, vol="GARCH", p=spec.p, q=spec.q, dist=spec.dist, rescale=False)

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        x_scale = _column_scale(X)
        mean = self._mean_model()
        model = self._arch(y * RETURN_SCALE, X / x_scale if mean == "LS" else None, mean)
        with _quiet():
            result = model.fit(disp="off", show_warning=False, options={"maxiter": MAX_ITERATIONS})
        params = _finite(np.asarray(result.params), self.key)
        n_mean = result.model.num_params
        self._state = {
            "mean_params": params[:n_mean],
            "vol_params": params[n_mean:],
            "x_scale": x_scale,
            "resid": np.asarray(result.resid, dtype=np.float64),
        }

    def predict(self, X: np.ndarray, history: np.ndarray | None = None) -> Prediction:
        s = self._fitted()
        n = len(X)
        if n == 0:
            return Prediction(np.empty(0), {"volatility": np.empty(0)})
        beta = s["mean_params"]
        if self._mean_model() == "LS":
            mean = beta[0] + (X / s["x_scale"]) @ beta[1:]
        else:  # "Constant" has one parameter, "Zero" none
            mean = np.full(n, beta[0] if len(beta) else 0.0)
        # The variance recursion depends only on the residuals: a zero-mean model on them
        # with the fitted volatility parameters forecasts what the full model would.
        residual_model = self._arch(s["resid"], None, "Zero")
        with _quiet():
            forecast = residual_model.forecast(params=s["vol_params"], horizon=n, reindex=False)
        variance = np.asarray(forecast.variance, dtype=np.float64)[-1]
        return Prediction(
            _finite(mean / RETURN_SCALE, self.key),
            {"volatility": _finite(np.sqrt(variance) / RETURN_SCALE, self.key)},
        )
