"""``/api/v1/models``: definitions, training (with purged walk-forward CV), predictions and
out-of-fold forecasts as DataFrames, and the tuning and AutoML studies over model plugins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from alphaforge.client.definitions import Definitions
from alphaforge.client.http import TimeLike, iso, time_limit, without_none
from alphaforge.client.tasks import Task, submitted


def dataset_spec(feature_ids: Sequence[str], start: TimeLike, end: TimeLike, *, symbol: str | None = None,
                 universe: str | None = None, symbols: Sequence[str] | None = None, timeframe: str = "1d",
                 target_horizon: int | None = None, **more: Any) -> dict[str, Any]:
    """The ``dataset`` a training, tune or AutoML request reads: the features as columns over
    one symbol (or a universe's members, or a list of symbols), target ``target_horizon``
    bars ahead. ``more``: other fields of the API's DatasetSpec (e.g. ``target_transform``)."""
    spec = {"feature_ids": [str(f) for f in feature_ids], "symbol": symbol, "universe": universe,
            "symbols": None if symbols is None else list(symbols), "timeframe": timeframe,
            "start_date": iso(start), "end_date": iso(end), "target_horizon": target_horizon, **more}
    return without_none(spec)


class Models(Definitions):
    path = "/models"

    # -- definitions --------------------------------------------------------------------
    def create(self, name: str, model_type: str, parameters: dict[str, Any] | None = None, *,
               family: str = "machine_learning") -> dict[str, Any]:
        """Define a model, e.g. ``create("GSPC lgbm", "lightgbm", {"num_leaves": 15})``."""
        body = {"name": name, "model_type": model_type, "family": family, "parameters": parameters or {}}
        return self._transport.json("POST", "/models", json=body)

    def plugins(self) -> dict[str, Any]:
        return self._transport.json("GET", "/models/plugins/available")

    def search_spaces(self) -> dict[str, Any]:
        return self._transport.json("GET", "/models/plugins/search-spaces")

    # -- training and forecasts ------------------------------------------------------------
    def train(self, model_id: str, dataset: dict[str, Any], cv: dict[str, Any] | None = None, *,
              seed: int | None = None, time_limit_s: float | None = None) -> dict[str, Any]:
        """Cross-validate, fit, store the artifact; the report (``cv_metrics``, ``artifact_uri``, ...).
        ``dataset``: see ``dataset_spec``; ``cv`` e.g. ``{"method": "expanding", "n_splits": 5}``."""
        return self._transport.json("POST", f"/models/{model_id}/train", json=_train(dataset, cv, seed),
                                    params=time_limit(time_limit_s), long=True)

    def train_async(self, model_id: str, dataset: dict[str, Any], cv: dict[str, Any] | None = None, *,
                    seed: int | None = None, time_limit_s: float | None = None) -> Task[dict[str, Any]]:
        """``train`` as a task: ``.wait()`` returns the same report."""
        return self._submit(f"/models/{model_id}/train/async", _train(dataset, cv, seed), time_limit_s)

    def predict(self, model_id: str, start: TimeLike, end: TimeLike, *, symbol: str | None = None,
                universe: str | None = None, symbols: Sequence[str] | None = None, timeframe: str = "1d",
                time_limit_s: float | None = None) -> pd.DataFrame:
        """Forecasts from the stored artifact: a ``prediction`` column (and ``volatility`` for
        stat.garch) indexed by timestamp, or by (timestamp, symbol) for a panel."""
        body = without_none({"symbol": symbol, "universe": universe, "symbols": None if symbols is None else list(symbols),
                             "timeframe": timeframe, "start_date": iso(start), "end_date": iso(end)})
        response = self._transport.json("POST", f"/models/{model_id}/predict", json=body, params=time_limit(time_limit_s),
                                        long=True)
        return predictions_frame(response)

    def out_of_fold(self, model_id: str | None = None, *, uri: str | None = None) -> pd.DataFrame:
        """The test-fold forecasts of a model's last training, or those a tuning trial or a
        leaderboard row points at (``uri``): timestamp, symbol, fold, prediction, target."""
        if (model_id is None) == (uri is None):
            raise ValueError("give a model_id or an out_of_fold uri, not both")
        if uri is not None:
            return self._transport.parquet("/models/out-of-fold", {"uri": uri})
        return self._transport.parquet(f"/models/{model_id}/out-of-fold")

    # -- studies over plugins ----------------------------------------------------------------
    def tune(self, *, time_limit_s: float | None = None, **request: Any) -> dict[str, Any]:
        """An Optuna study (fields of the API's TuneRequest: ``plugin_key``, ``dataset``,
        ``n_trials``, ``cv``, ``metric``, ...): best params and every trial."""
        return self._transport.json("POST", "/models/tune", json=request, params=time_limit(time_limit_s), long=True)

    def tune_async(self, *, time_limit_s: float | None = None, **request: Any) -> Task[dict[str, Any]]:
        """``tune`` as a task whose trials spread over the workers; progress: trials finished."""
        return self._submit("/models/tune/async", request, time_limit_s)

    def automl(self, *, time_limit_s: float | None = None, **request: Any) -> dict[str, Any]:
        """A leaderboard of candidate plugins (fields of the API's AutoMLRequest: ``dataset``,
        ``candidates``, ``n_trials``, ``create_model``, ...)."""
        return self._transport.json("POST", "/models/automl", json=request, params=time_limit(time_limit_s), long=True)

    def automl_async(self, *, time_limit_s: float | None = None, **request: Any) -> Task[dict[str, Any]]:
        """``automl`` as a task; progress moves candidate by candidate."""
        return self._submit("/models/automl/async", request, time_limit_s)

    def _submit(self, path: str, body: dict[str, Any], time_limit_s: float | None) -> Task[dict[str, Any]]:
        return submitted(self._transport, self._transport.json("POST", path, json=body, params=time_limit(time_limit_s)), dict)


def predictions_frame(response: dict[str, Any]) -> pd.DataFrame:
    """A PredictResponse as a DataFrame; the response's other fields in ``attrs``."""
    columns: dict[str, Any] = {"prediction": response["predictions"]}
    if response.get("volatility") is not None:
        columns["volatility"] = response["volatility"]
    index = pd.DatetimeIndex(pd.to_datetime(response["timestamps"], utc=True), name="timestamp")
    frame = pd.DataFrame(columns, index=index, dtype="float64")
    if response.get("symbols") is not None:
        frame = frame.set_index(pd.Index(response["symbols"], name="symbol"), append=True)
    frame.attrs.update({k: v for k, v in response.items() if k not in ("timestamps", "predictions", "volatility", "symbols")})
    return frame


def _train(dataset: dict[str, Any], cv: dict[str, Any] | None, seed: int | None) -> dict[str, Any]:
    return without_none({"dataset": dataset, "cv": cv, "seed": seed})
