"""``/api/v1/features``: definitions, generated datasets and panels. Datasets come back as
DataFrames read from their stored Parquet (the whole dataset, not the 10-row preview),
with the API's description of the dataset in ``frame.attrs``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from alphaforge.client.definitions import Definitions
from alphaforge.client.http import TimeLike, iso, time_limit, without_none
from alphaforge.client.tasks import Task, submitted


class Features(Definitions):
    path = "/features"

    # -- definitions --------------------------------------------------------------------
    def create(self, name: str, plugin_key: str, parameters: dict[str, Any] | None = None, *,
               type: str | None = None, description: str | None = None) -> dict[str, Any]:
        """Define a feature, e.g. ``create("RSI 14", "technical.rsi", {"period": 14})``;
        ``type`` defaults to the plugin key's family (``technical``)."""
        body = {"name": name, "type": type or plugin_key.split(".")[0], "plugin_key": plugin_key,
                "parameters": parameters or {}, "description": description}
        return self._transport.json("POST", "/features", json=without_none(body))

    def plugins(self) -> dict[str, Any]:
        """Every feature plugin and its parameter schema, outputs and warm-up."""
        return self._transport.json("GET", "/features/plugins/available")

    def library(self) -> dict[str, Any]:
        """Ready-made definitions (e.g. Alpha158) and the expression language's operators."""
        return self._transport.json("GET", "/features/library")

    # -- one symbol's datasets ------------------------------------------------------------
    def generate(self, feature_id: str, symbol: str, start: TimeLike, end: TimeLike, *, timeframe: str = "1d",
                 time_limit_s: float | None = None) -> pd.DataFrame:
        """The dataset for ``[start, end)`` (computed by a worker, or the stored one), whole."""
        body = _range(symbol, start, end, timeframe)
        result = self._transport.json("POST", f"/features/{feature_id}/generate", json=body,
                                      params=time_limit(time_limit_s), long=True)
        return self._dataset_frame(result)

    def generate_async(self, feature_id: str, symbol: str, start: TimeLike, end: TimeLike, *, timeframe: str = "1d",
                       time_limit_s: float | None = None) -> Task[pd.DataFrame]:
        """``generate`` as a task: ``.wait()`` returns the same DataFrame."""
        body = _range(symbol, start, end, timeframe)
        response = self._transport.json("POST", f"/features/{feature_id}/generate/async", json=body,
                                        params=time_limit(time_limit_s))
        return submitted(self._transport, response, self._dataset_frame)

    def regenerate(self, feature_id: str, symbol: str, start: TimeLike, end: TimeLike, *,
                   timeframe: str = "1d") -> pd.DataFrame:
        """Re-read the bars and recompute: a new version only when the bars changed."""
        body = _range(symbol, start, end, timeframe)
        return self._dataset_frame(self._transport.json("POST", f"/features/{feature_id}/regenerate", json=body, long=True))

    def generate_batch(self, feature_ids: Sequence[str], symbols: Sequence[str], start: TimeLike, end: TimeLike, *,
                       timeframe: str = "1d") -> Task[dict[str, Any]]:
        """Every feature for every symbol, in parallel; the result lists each dataset (``items``)."""
        body = {"feature_ids": list(feature_ids), "symbols": list(symbols), "timeframe": timeframe,
                "start_date": iso(start), "end_date": iso(end)}
        return submitted(self._transport, self._transport.json("POST", "/features/generate", json=body), dict)

    def versions(self, feature_id: str, symbol: str, timeframe: str = "1d") -> list[dict[str, Any]]:
        """Every stored dataset of this feature for a symbol, oldest first."""
        return self._transport.json("GET", f"/features/{feature_id}/versions",
                                    params={"symbol": symbol, "timeframe": timeframe})

    def dataset(self, feature_id: str, dataset_id: str) -> pd.DataFrame:
        """A stored dataset (an id from ``versions``) as a DataFrame indexed by timestamp."""
        return self._transport.parquet(f"/features/{feature_id}/datasets/{dataset_id}/data")

    # -- panels: the feature over a universe ------------------------------------------------
    def panel(self, feature_id: str, start: TimeLike, end: TimeLike, *, universe: str | None = None,
              symbols: Sequence[str] | None = None, timeframe: str = "1d") -> pd.DataFrame:
        """The feature over a universe's members (name or id) or a list of symbols, keyed by
        (timestamp, symbol); ``frame.attrs["panel"]`` describes the stored panel."""
        body = _panel(start, end, universe, symbols, timeframe)
        return self._panel_frame(self._transport.json("POST", f"/features/{feature_id}/panels", json=body, long=True))

    def panel_async(self, feature_id: str, start: TimeLike, end: TimeLike, *, universe: str | None = None,
                    symbols: Sequence[str] | None = None, timeframe: str = "1d") -> Task[pd.DataFrame]:
        body = _panel(start, end, universe, symbols, timeframe)
        response = self._transport.json("POST", f"/features/{feature_id}/panels/async", json=body)
        return submitted(self._transport, response, self._panel_frame)

    def panel_many(self, feature_ids: Sequence[str], start: TimeLike, end: TimeLike, *, universe: str | None = None,
                   symbols: Sequence[str] | None = None, timeframe: str = "1d") -> dict[str, pd.DataFrame]:
        """Several features over the same members and range in one request (one task, each
        batch of members' bars read once for all): each feature's panel by its id, as
        ``panel`` gives it."""
        body = {"feature_ids": list(feature_ids), **_panel(start, end, universe, symbols, timeframe)}
        return self._panel_frames(self._transport.json("POST", "/features/panels", json=body, long=True))

    def panel_many_async(self, feature_ids: Sequence[str], start: TimeLike, end: TimeLike, *,
                         universe: str | None = None, symbols: Sequence[str] | None = None,
                         timeframe: str = "1d") -> Task[dict[str, pd.DataFrame]]:
        body = {"feature_ids": list(feature_ids), **_panel(start, end, universe, symbols, timeframe)}
        response = self._transport.json("POST", "/features/panels/async", json=body)
        return submitted(self._transport, response, self._panel_frames)

    def panels(self, feature_id: str) -> list[dict[str, Any]]:
        """Every stored panel of this feature, oldest first."""
        return self._transport.json("GET", f"/features/{feature_id}/panels")

    def panel_data(self, feature_id: str, panel_id: str) -> pd.DataFrame:
        return self._transport.parquet(f"/features/{feature_id}/panels/{panel_id}/data")

    # -- results as frames ----------------------------------------------------------------
    def _dataset_frame(self, result: dict[str, Any]) -> pd.DataFrame:
        dataset = result["dataset"]
        frame = self.dataset(dataset["feature_id"], dataset["id"])
        frame.attrs.update(dataset=dataset, cached=result.get("cached"))
        return frame

    def _panel_frame(self, result: dict[str, Any]) -> pd.DataFrame:
        panel = result["panel"]
        frame = self.panel_data(panel["feature_id"], panel["id"])
        frame.attrs.update(panel=panel, cached=result.get("cached"))
        return frame

    def _panel_frames(self, result: dict[str, Any]) -> dict[str, pd.DataFrame]:
        return {one["panel"]["feature_id"]: self._panel_frame(one) for one in result["panels"]}


def _range(symbol: str, start: TimeLike, end: TimeLike, timeframe: str) -> dict[str, Any]:
    return {"symbol": symbol, "timeframe": timeframe, "start_date": iso(start), "end_date": iso(end)}


def _panel(start: TimeLike, end: TimeLike, universe: str | None, symbols: Sequence[str] | None,
           timeframe: str) -> dict[str, Any]:
    body = {"universe": universe, "symbols": None if symbols is None else list(symbols), "timeframe": timeframe,
            "start_date": iso(start), "end_date": iso(end)}
    return without_none(body)
