"""Out-of-fold predictions: every test-fold forecast of a training, with the target it was
scored against, kept as a dataset. They are what signal evaluation and overfitting
statistics read: a fold's scores summarise them, these are the forecasts themselves.

One row per test row of every fold: ``timestamp``, ``symbol`` (a one-series training's
symbol), ``fold``, ``prediction``, ``target`` (the label as trained: the forward return, or
its per-date demeaned or ranked form) and ``forward_return`` (the return itself, what signal
evaluation reads). Stored as Parquet under the model's prefix, keyed
by the SHA-256 of its bytes (content-addressed: the same forecasts, the same object), before
the row that links it is written.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.context import Context
from alphaforge.errors import InvalidInput, NotFound
from alphaforge.marketdata.bars import frame_to_records
from alphaforge.storage.object_store import ObjectNotFound
from alphaforge.storage.parquet import from_parquet_bytes, to_parquet_bytes

#: Rows a JSON answer may hold; more are read as Parquet.
JSON_MAX_ROWS = 200_000
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


def out_of_fold_frame(
    timestamps: pd.DatetimeIndex, symbols: np.ndarray, tests: list[np.ndarray], forecasts: list[np.ndarray],
    target: np.ndarray, forward_return: np.ndarray,
) -> pd.DataFrame:
    """The folds' test rows (``tests``: row positions per fold) with their forecasts, in
    fold order (walk-forward folds do not overlap, so each row appears once)."""
    rows = np.concatenate(tests) if tests else np.empty(0, dtype=np.int64)
    folds = np.concatenate([np.full(len(t), i, dtype=np.int64) for i, t in enumerate(tests)]) if tests else rows
    return pd.DataFrame({
        "timestamp": pd.DatetimeIndex(timestamps[rows]).tz_convert("UTC"),
        "symbol": np.asarray(symbols)[rows].astype(str),
        "fold": folds,
        "prediction": np.concatenate(forecasts).astype("float64") if forecasts else np.empty(0),
        "target": target[rows].astype("float64"),
        "forward_return": forward_return[rows].astype("float64"),
    })


def store(ctx: Context, prefix: str, frame: pd.DataFrame) -> str:
    """Write the predictions under ``prefix`` (a model's, a study's); their URI (the same
    bytes land on the same key)."""
    data = to_parquet_bytes(frame.set_index(["timestamp", "symbol"]))
    return ctx.objects.put(f"{prefix}/out_of_fold/{hashlib.sha256(data).hexdigest()}.parquet", data)


def model_key(ctx: Context, model_id: uuid.UUID, uri: str | None) -> str:
    """The object key of a model's forecasts (404 before a training stored them)."""
    if uri is None:
        raise NotFound(f"model {model_id} has no out-of-fold predictions: train it (POST /api/v1/models/{model_id}/train)")
    return ctx.objects.key_of(uri)


def uri_key(ctx: Context, uri: str) -> str:
    """The object key an ``out_of_fold_uri`` names (422 for any other URI)."""
    try:
        key: str | None = ctx.objects.key_of(uri)
    except ValueError:  # not of this store (or a key that climbs out of it)
        key = None
    if key is None or "/out_of_fold/" not in f"/{key}" or not key.endswith(".parquet"):
        raise InvalidInput(
            f"invalid uri {uri!r}: give an out_of_fold_uri this service gave (a tuning trial's or a leaderboard row's)",
            field="uri",
        )
    return key


def read(ctx: Context, key: str) -> bytes:
    """The stored forecasts (404 when they are gone from the object store)."""
    try:
        return ctx.objects.get(key)
    except ObjectNotFound:
        raise NotFound(_GONE) from None


def check_stored(ctx: Context, key: str) -> None:
    """404 when the forecasts are gone, without reading them (a refusal before a task)."""
    if not ctx.objects.exists(key):
        raise NotFound(_GONE)


_GONE = "these out-of-fold predictions are gone from the object store; train (or tune) again to store them anew"


def parquet(ctx: Context, model_id: uuid.UUID, uri: str | None) -> bytes:
    """A model's stored forecasts (404 before a training stored them, or when they were lost)."""
    return read(ctx, model_key(ctx, model_id, uri))


def parquet_at(ctx: Context, uri: str) -> bytes:
    """The forecasts an ``out_of_fold_uri`` names (422 for any other URI, 404 when gone)."""
    return read(ctx, uri_key(ctx, uri))


def records_of(data: bytes) -> list[dict[str, Any]]:
    """JSON records of stored forecasts, refused (422) above ``JSON_MAX_ROWS``: ask for Parquet."""
    frame = from_parquet_bytes(data)
    if len(frame) > JSON_MAX_ROWS:
        raise InvalidInput(
            f"the out-of-fold predictions hold {len(frame)} rows, over the {JSON_MAX_ROWS} a JSON answer may hold: "
            "ask for format=parquet", field="format",
        )
    return frame_to_records(frame)
