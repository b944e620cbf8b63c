"""Statistical models: regression with ARIMA errors (statsmodels) and GARCH (arch).

Both are filters: with the fitted parameters frozen, they run through the timeline from
its first row, and the forecast for row ``t`` is the ``horizon``-step forecast made at row
``t - horizon``, the last row whose label (the return over the next ``horizon`` rows) is
realised by ``t``. Labels the timeline withholds (cross-validation's purge gap) are
filtered across as missing, on features alone. So a live model, a backtest and a
cross-validation fold make the same forecast for the same row, whatever range is asked.
Both fit deterministically (fixed optimiser and iteration cap, warnings silenced) on
internally rescaled data, since daily returns (~1e-2) and raw features (prices, volumes)
are badly scaled for the optimisers; predictions are unscaled.

Artifacts are JSON (no pickle): the fitted parameters and scales, nothing of the data
after training. statsmodels and arch are imported lazily (seconds to import).
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
from alphaforge.plugins.models.base import (
    ModelPlugin,
    ParamSpec,
    Prediction,
    Timeline,
    check_width,
    model_plugins,
    rowwise_dot,
)

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
    trend: Literal["n", "c"] = Field("c", description="Deterministic part of the errors: none or a constant")


def _at(matrix: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """A state-space matrix at time ``columns``: its last axis when it varies in time."""
    return matrix[..., columns] if matrix.shape[-1] > 1 else np.repeat(matrix[..., :1], len(columns), axis=-1)


@model_plugins.register
class Arima(StatefulModel):
    """Regression on the features with ARIMA(p, d, q) errors (statsmodels SARIMAX).

    Prediction: one Kalman filter with the fitted parameters over the whole timeline, the
    known labels observed and the rest missing. For row ``t`` the one-step predicted state
    at ``t - horizon + 1`` (it has seen the labels up to ``t - horizon``) is carried
    ``horizon - 1`` steps further with the transition and intercepts, then read through
    the design with row ``t``'s features: statsmodels' ``forecast(steps=horizon)`` made at
    ``t - horizon``, for every row at once. Rows before the first realised label start
    from the filter's initial (stationary or diffuse) state. The target is fitted in units
    of its standard deviation. (A time trend is not offered: it needs a calendar origin
    that a model applied to any range does not have, and returns have none.)
    """

    key = "stat.arima"
    short_name = "arima"
    description = "Linear regression on the features with ARIMA(p,d,q) errors (statsmodels SARIMAX)."
    version = "2"
    Params = ArimaParams
    libraries = ("statsmodels", "numpy", "scipy")
    search_space: ClassVar[dict[str, ParamSpec]] = {
        "p": ParamSpec(type="int", low=0, high=3),
        "d": ParamSpec(type="int", low=0, high=1),
        "q": ParamSpec(type="int", low=0, high=3),
        "trend": ParamSpec(type="categorical", choices=["n", "c"]),
    }

    def history_rows(self) -> int | None:
        return None

    def _sarimax(self, y: np.ndarray, exog: np.ndarray | None) -> Any:
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        spec: Any = self.params
        order = (spec.p, spec.d, spec.q)
        # validate_exog would refuse a constant column beside a constant trend: it is merely
        # collinear (the split between the two does not change forecasts).
        return SARIMAX(y, exog=exog, order=order, trend=spec.trend, validate_exog=False)

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
        }

    def predict(self, timeline: Timeline) -> Prediction:
        s = self._fitted()
        n, h = len(timeline.X), timeline.horizon
        rows = np.arange(timeline.start, n)
        if len(rows) == 0:
            return Prediction(np.empty(0))
        # The regression is taken out row by row (SARIMAX would form X @ beta with BLAS,
        # whose roundings depend on the number of rows) and the errors filtered alone:
        # the same model, y - X beta ~ ARIMA with the trend, written the other way round.
        check_width(self.key, timeline.X, len(s["x_scale"]))
        k_trend = 1 if self.params.trend == "c" else 0  # type: ignore[attr-defined]
        k_exog = timeline.X.shape[1]
        params = s["params"]
        regression = rowwise_dot(timeline.X / s["x_scale"], params[k_trend : k_trend + k_exog])
        errors = self._sarimax(timeline.known_targets() / s["y_scale"] - regression, None)
        with _quiet():
            # column j: the state at row j given the labels before j
            predicted = errors.filter(np.concatenate([params[:k_trend], params[k_trend + k_exog :]])).predicted_state
        ssm = errors.ssm  # its matrices as attributes keep the time axis last (length 1: constant)
        origin = np.maximum(rows - h + 1, 0)  # first state not informed by an unrealised label
        state = predicted[:, origin]
        for step in range(h - 1):
            time = np.minimum(origin + step, n - 1)
            advanced = np.einsum("ijm,jm->im", _at(ssm.transition, time), state) + _at(ssm.state_intercept, time)
            state = np.where(time < rows, advanced, state)
        design, intercept = _at(ssm.design, rows)[0], _at(ssm.obs_intercept, rows)[0]
        forecast = np.einsum("jm,jm->m", design, state) + intercept + regression[rows]
        return Prediction(_finite(forecast * s["y_scale"], self.key))


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

    ``Prediction.mean`` is the conditional mean of each row (const + X @ beta for "LS").
    ``extras["volatility"]`` is, for row ``t``, the square root of the analytic variance
    forecast made at row ``t - horizon`` for ``horizon`` steps ahead, in return units: the
    variance recursion runs from the timeline's first row (started, like arch's, at the
    backcast, here the one of the training residuals, frozen in the artifact) over the
    residuals of the realised labels; a missing shock (a label not realised by the origin,
    or withheld) counts at its expectation, the variance itself, which is arch's analytic
    multi-step rule.
    """

    key = "stat.garch"
    short_name = "garch"
    description = "Conditional mean (features, constant or zero) with GARCH(p,q) volatility (arch)."
    version = "2"
    Params = GarchParams
    libraries = ("arch", "numpy", "scipy")
    search_space: ClassVar[dict[str, ParamSpec]] = {
        "mean": ParamSpec(type="categorical", choices=["LS", "Constant", "Zero"]),
        "p": ParamSpec(type="int", low=1, high=3),
        "q": ParamSpec(type="int", low=0, high=3),
        "dist": ParamSpec(type="categorical", choices=["normal", "t", "skewt", "ged"]),
    }

    def history_rows(self) -> int | None:
        return None

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
        resid = np.asarray(result.resid, dtype=np.float64)
        self._state = {
            "mean_params": params[:n_mean],
            "vol_params": params[n_mean:],
            "x_scale": x_scale,
            "backcast": np.float64(result.model.volatility.backcast(resid)),
        }

    def _mean(self, X: np.ndarray) -> np.ndarray:
        """Conditional mean of each row, in percent."""
        s = self._fitted()
        beta = s["mean_params"]
        if self._mean_model() == "LS":
            return beta[0] + rowwise_dot(X / s["x_scale"], beta[1:])
        return np.full(len(X), beta[0] if len(beta) else 0.0)  # "Constant": one parameter, "Zero": none

    def predict(self, timeline: Timeline) -> Prediction:
        s = self._fitted()
        n, h, start = len(timeline.X), timeline.horizon, timeline.start
        if start == n:
            return Prediction(np.empty(0), {"volatility": np.empty(0)})
        check_width(self.key, timeline.X, len(s["x_scale"]))
        mean = self._mean(timeline.X)
        shocks = timeline.known_targets() * RETURN_SCALE - mean
        variance = garch_variance_forecasts(s["vol_params"], self.params.p, self.params.q, shocks, float(s["backcast"]), h)  # type: ignore[attr-defined]
        return Prediction(
            _finite(mean[start:] / RETURN_SCALE, self.key),
            {"volatility": _finite(np.sqrt(variance[start:]) / RETURN_SCALE, self.key)},
        )


def garch_variance_forecasts(
    params: np.ndarray, p: int, q: int, shocks: np.ndarray, backcast: float, horizon: int
) -> np.ndarray:
    """For every row t, E[sigma2_t | shocks of rows up to t - horizon], for GARCH(p, q) with
    ``params = (omega, alpha_1..p, beta_1..q)`` (arch's order); NaN shocks are missing.

    sigma2_j = omega + sum_i alpha_i e2_(j-i) + sum_k beta_k sigma2_(j-k), where e2_m is the
    squared shock, or sigma2_m when the shock is missing (its expectation: arch's analytic
    multi-step rule) and lags before the first row are the backcast, as in arch. One pass
    over all rows gives every origin's lags; each row then steps ``horizon`` times from its
    origin with the later shocks missing."""
    omega, alpha, beta = float(params[0]), np.asarray(params[1 : 1 + p]), np.asarray(params[1 + p : 1 + p + q])
    n, lags = len(shocks), max(p, q)
    a_weights, b_weights = alpha[::-1], beta[::-1]  # oldest lag first
    # Index m + lags holds row m; the first ``lags`` entries stand for rows before the first.
    sigma2 = np.full(n + lags, backcast)
    squares = np.full(n + lags, backcast)
    known = np.isfinite(shocks)
    a, b = a_weights.tolist(), b_weights.tolist()
    for j in range(lags, n + lags):
        value = omega
        for i, weight in enumerate(a):
            value += weight * squares[j - p + i]
        for i, weight in enumerate(b):
            value += weight * sigma2[j - q + i]
        sigma2[j] = value
        squares[j] = shocks[j - lags] ** 2 if known[j - lags] else value
    # Each row's lags at its origin t - horizon (rows before the first: backcast) ...
    window = np.arange(n)[:, None] - horizon + 1 + np.arange(-lags, 0)[None, :] + lags
    window = np.clip(window, 0, None)  # origins before the first row: the backcast entries
    past_squares, past_sigma2 = squares[window], sigma2[window]
    # ... then ``horizon`` steps, every shock after the origin missing.
    for _ in range(horizon):
        value = omega + rowwise_dot(past_squares[:, lags - p :], a_weights)
        if q:
            value = value + rowwise_dot(past_sigma2[:, lags - q :], b_weights)
        past_squares = np.concatenate([past_squares[:, 1:], value[:, None]], axis=1)
        past_sigma2 = np.concatenate([past_sigma2[:, 1:], value[:, None]], axis=1)
    return past_sigma2[:, -1]
