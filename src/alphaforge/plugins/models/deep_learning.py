"""Deep-learning model plugins (PyTorch, CPU).

``dl.lstm`` replaces the LSTM of the system alphaforge replaces and fixes its flaws:

- **Windows include row t.** The forecast for row ``t`` reads feature rows
  ``t-seq_len+1 … t`` (features at ``t`` are known at ``t``). Upstream read
  ``t-seq_len … t-1`` and returned null for the first ``seq_len`` rows, which broke CV.
- **Every row gets a finite forecast.** The first windows reach back into the timeline's
  rows before ``start``; where fewer than ``seq_len - 1`` rows precede a row, the window
  is padded by repeating the timeline's first row. Training windows are padded the same
  way, so the network has seen such windows. Non-finite standardised inputs are read as 0
  (the training mean). Hence a forecast depends only on its window: the same over any
  range that contains it. Targets are never read.
- **Seeded and deterministic.** Weight initialisation and dropout draw from torch's global
  RNG inside ``torch.random.fork_rng`` seeded with ``seed`` (the caller's RNG state is
  restored afterwards); batches are shuffled with a seeded ``torch.Generator``; fitting
  and predicting run with one intra-op thread and deterministic algorithms, restoring the
  process-wide settings afterwards. (These torch settings are process-global: do not fit
  torch models concurrently in threads of one process; use processes.)
- **Early stopping.** The most recent ``validation_fraction`` of the training dates (of a
  series: its rows) is held out; training stops once the validation loss has not improved
  for ``patience`` epochs and the best epoch's weights are restored (``epochs_run`` /
  ``best_epoch`` tell).
- **Panels.** Fitted on many symbols' rows (``fit_panel(X, y, panel)``), the window of row
  ``(t, s)`` holds symbol ``s``'s own rows ending at ``t``, padded with ``s``'s first row
  (:class:`SeriesWindows`): never another symbol's row. The held-out dates hold every
  symbol of those dates. Forecasts are per symbol, as for one series
  (:func:`~alphaforge.plugins.models.base.forecast_panel`). With one series all of this is
  the single-series rule, value for value.
- **Standardisation** of inputs and of the target uses the mean/std of the rows actually
  trained on (the validation tail excluded); a zero std is read as 1.
- **Safe artifact.** ``torch.save`` of a dict of tensors and plain numbers, loaded with
  ``torch.load(weights_only=True)`` (no arbitrary pickle); ``hidden_size`` is an int in
  the search space (upstream offered strings).

torch is imported lazily, so the plugin registers (and describes itself) without it.
"""

from __future__ import annotations

import copy
import io
import warnings
from contextlib import contextmanager
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
from pydantic import Field

from alphaforge.errors import InvalidInput
from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.models.base import (
    ModelConformance,
    ModelPlugin,
    PanelIndex,
    ParamSpec,
    Prediction,
    Timeline,
    model_plugins,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Intra-op threads while fitting/predicting: fixed so results do not depend on the host.
TORCH_THREADS = 1
#: Windows per forward pass when predicting (fixed: see ``predict``).
_PREDICT_CHUNK = 256
_ARTIFACT_FORMAT = "alphaforge.dl.lstm/1"


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise InvalidInput("dl.lstm needs PyTorch: install alphaforge[dl]") from exc
    return torch


@contextmanager
def _torch_session(seed: int | None = None) -> Iterator[Any]:
    """One thread, deterministic algorithms, and (when ``seed`` is given) a forked,
    seeded global RNG; every process-wide setting is restored on exit."""
    torch = _torch()
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(TORCH_THREADS)
    torch.use_deterministic_algorithms(True)
    try:
        if seed is None:
            yield torch
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                yield torch
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_num_threads(threads)


class SeriesWindows:
    """The row indices of each row's window: the ``seq_len`` rows of its own series ending at
    it, oldest first, the series' first row repeated where fewer precede it. Rows of one
    series must be in time order; a window never holds another series' row."""

    def __init__(self, series: np.ndarray, seq_len: int) -> None:
        series = np.asarray(series)
        n = len(series)
        self._order = np.argsort(series, kind="stable")  # rows grouped by series, time order within
        self._position = np.empty(n, dtype=np.int64)
        self._position[self._order] = np.arange(n)
        grouped = series[self._order]
        block_start = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]]) if n else np.zeros(0, np.int64)
        starts = np.zeros(n, dtype=np.int64)
        starts[block_start] = block_start
        self._first = np.maximum.accumulate(starts)[self._position] if n else starts  # per row: its series' start
        self._offsets = np.arange(seq_len, dtype=np.int64) - (seq_len - 1)

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), seq_len) row indices: window ``i`` is the window of ``rows[i]``."""
        rows = np.asarray(rows, dtype=np.int64)
        at = np.maximum(self._position[rows][:, None] + self._offsets, self._first[rows][:, None])
        return self._order[at]


class LSTMParams(PluginParams):
    seq_len: int = Field(20, ge=1, le=512, description="Feature rows per window (rows t-seq_len+1 … t)")
    epochs: int = Field(20, ge=1, le=1000, description="Most passes over the training rows")
    batch_size: int = Field(64, ge=1, le=65_536, description="Windows per optimiser step")
    hidden_size: int = Field(32, ge=1, le=1024, description="LSTM hidden units per layer")
    num_layers: int = Field(2, ge=1, le=4, description="Stacked LSTM layers")
    dropout: float = Field(
        0.1, ge=0.0, le=0.9,
        description="Dropout between stacked LSTM layers and on the last hidden state before the linear head",
    )
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="Adam learning rate")
    patience: int = Field(
        5, ge=1, le=1000,
        description="Early stopping: epochs without a better validation loss before training stops",
    )
    validation_fraction: float = Field(
        0.1, ge=0.0, le=0.5,
        description="Most recent fraction of the training rows held out for early stopping (0: no early stopping)",
    )


def _build_network(torch: Any, n_features: int, p: LSTMParams) -> Any:
    nn = torch.nn

    class LSTMRegressor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(
                input_size=n_features,
                hidden_size=p.hidden_size,
                num_layers=p.num_layers,
                dropout=p.dropout if p.num_layers > 1 else 0.0,
                batch_first=True,
            )
            self.dropout = nn.Dropout(p.dropout)
            self.head = nn.Linear(p.hidden_size, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(x)
            return self.head(self.dropout(out[:, -1, :])).squeeze(-1)

    return LSTMRegressor()


@model_plugins.register
class LSTMModel(ModelPlugin):
    key = "dl.lstm"
    family = "deep_learning"
    short_name = "lstm"
    description = (
        "LSTM over the last seq_len feature rows (t-seq_len+1 … t) with a linear head; "
        "inputs and target standardised on the training rows, Adam + MSE, early stopping on "
        "the most recent rows. Windows before the first row read `history`, else repeat the earliest row."
    )
    version = "1"
    Params = LSTMParams
    libraries = ("torch", "numpy")
    artifact_ext = "pt"
    conformance = ModelConformance(
        fast={"epochs": 5},
        alternates={"patience": 1},
        contexts={"patience": {"epochs": 20}},  # in 5 epochs the validation loss never stalls
    )
    search_space: ClassVar[dict[str, ParamSpec]] = {
        "seq_len": ParamSpec(type="int", low=5, high=60),
        "hidden_size": ParamSpec(type="categorical", choices=[16, 32, 64, 128]),
        "num_layers": ParamSpec(type="int", low=1, high=3),
        "dropout": ParamSpec(type="float", low=0.0, high=0.5),
        "lr": ParamSpec(type="float", low=1e-4, high=1e-2, log=True),
    }

    params: LSTMParams

    def __init__(self, params: PluginParams, seed: int = 0) -> None:
        super().__init__(params, seed)
        self._net: Any = None
        self._x_mean: np.ndarray | None = None
        self._x_std: np.ndarray | None = None
        self._y_mean = 0.0
        self._y_std = 1.0
        #: Epochs actually run, and the (1-based) epoch whose weights were kept.
        self.epochs_run = 0
        self.best_epoch = 0
        #: Validation loss (standardised target) per epoch run; empty without validation.
        self.validation_losses: list[float] = []

    def history_rows(self) -> int:
        return self.params.seq_len - 1

    def pools_symbols(self) -> bool:
        """Fitted on a panel, each window reads its own symbol's rows (:class:`SeriesWindows`)."""
        return True

    @property
    def feature_mean(self) -> np.ndarray | None:
        """Per-column mean the inputs are standardised with (from the rows trained on)."""
        return None if self._x_mean is None else self._x_mean.copy()

    @property
    def feature_std(self) -> np.ndarray | None:
        return None if self._x_std is None else self._x_std.copy()

    # ---------------------------------------------------------------- windows

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        assert self._x_mean is not None and self._x_std is not None
        Z = (np.asarray(X, dtype=np.float64) - self._x_mean) / self._x_std
        return np.nan_to_num(Z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def _check_X(self, X: np.ndarray, name: str = "X") -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise InvalidInput(f"dl.lstm: {name} must be a 2-D matrix of feature rows, got shape {X.shape}")
        if self._x_mean is not None and X.shape[1] != len(self._x_mean):
            raise InvalidInput(
                f"dl.lstm: {name} has {X.shape[1]} feature columns, the model was fitted on {len(self._x_mean)}"
            )
        return X

    # ---------------------------------------------------------------- fit

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._fit(X, y, None)

    def fit_panel(self, X: np.ndarray, y: np.ndarray, panel: PanelIndex) -> None:
        self._fit(X, y, panel)

    def _fit(self, X: np.ndarray, y: np.ndarray, panel: PanelIndex | None) -> None:
        """One series (``panel`` None) is the panel of one symbol, one row per date."""
        p = self.params
        X = self._check_X(X)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        n, k = X.shape
        if len(y) != n:
            raise InvalidInput(f"dl.lstm: X has {n} rows but y has {len(y)}")
        if n < 2 or k < 1:
            raise InvalidInput(f"dl.lstm needs at least 2 rows and 1 feature column, got shape {X.shape}")
        if not np.all(np.isfinite(y)):
            raise InvalidInput("dl.lstm: y (the forward return) has non-finite values")
        if panel is None:
            panel = PanelIndex.one_series(n)
        elif len(panel) != n:
            raise InvalidInput(f"dl.lstm: X has {n} rows but the panel index has {len(panel)}")

        n_train = self._training_rows(panel)
        n_val = n - n_train

        # Scalers from the rows trained on only (never the validation tail).
        rows = np.where(np.isfinite(X[:n_train]), X[:n_train], np.nan)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: handled below
            x_mean = np.nanmean(rows, axis=0)
            x_std = np.nanstd(rows, axis=0)
        x_mean = np.where(np.isfinite(x_mean), x_mean, 0.0)
        x_std = np.where(np.isfinite(x_std) & (x_std > 0), x_std, 1.0)
        self._x_mean, self._x_std = x_mean, x_std
        y_std = float(np.std(y[:n_train]))
        self._y_mean = float(np.mean(y[:n_train]))
        self._y_std = y_std if np.isfinite(y_std) and y_std > 0 else 1.0

        Z = self._standardise(X)
        target = ((y - self._y_mean) / self._y_std).astype(np.float32)
        series_windows = SeriesWindows(panel.series, p.seq_len)

        with _torch_session(self.seed) as torch:
            Zt = torch.from_numpy(Z)
            Yt = torch.from_numpy(target)

            def windows(rows: torch.Tensor) -> torch.Tensor:
                return Zt[torch.from_numpy(series_windows.rows(rows.numpy()))]  # (b, seq_len, k)

            net = _build_network(torch, k, p)
            optimiser = torch.optim.Adam(net.parameters(), lr=p.lr)
            loss_fn = torch.nn.MSELoss()
            generator = torch.Generator().manual_seed(self.seed)
            train_rows = torch.arange(n_train)
            val_rows = torch.arange(n_train, n)

            best_loss = float("inf")
            best_state: dict[str, Any] | None = None
            since_best = 0
            self.validation_losses = []
            self.epochs_run = self.best_epoch = 0
            for epoch in range(1, p.epochs + 1):
                net.train()
                order = train_rows[torch.randperm(n_train, generator=generator)]
                for start in range(0, n_train, p.batch_size):
                    rows = order[start : start + p.batch_size]
                    optimiser.zero_grad()
                    loss = loss_fn(net(windows(rows)), Yt[rows])
                    loss.backward()
                    optimiser.step()
                self.epochs_run = epoch
                if n_val == 0:
                    self.best_epoch = epoch
                    continue
                net.eval()
                with torch.no_grad():
                    val_loss = float(loss_fn(net(windows(val_rows)), Yt[val_rows]))
                self.validation_losses.append(val_loss)
                if val_loss < best_loss:
                    best_loss, since_best, self.best_epoch = val_loss, 0, epoch
                    best_state = copy.deepcopy(net.state_dict())
                else:
                    since_best += 1
                    if since_best >= p.patience:
                        break
            if best_state is not None:
                net.load_state_dict(best_state)
            net.eval()
        self._net = net

    def _training_rows(self, panel: PanelIndex) -> int:
        """Rows trained on: all but those of the most recent ``validation_fraction`` of the
        dates (rows are sorted by date, so they are a tail; one series: its last rows)."""
        dates = np.unique(panel.dates)
        n_val_dates = int(np.floor(len(dates) * self.params.validation_fraction + 1e-9))
        if len(dates) - n_val_dates < 1 or n_val_dates == 0:
            return len(panel)
        return int(np.searchsorted(panel.dates, dates[len(dates) - n_val_dates], side="left"))

    # ---------------------------------------------------------------- predict

    def predict(self, timeline: Timeline) -> Prediction:
        if self._net is None:
            raise InvalidInput("dl.lstm: the model is not fitted")
        n = timeline.n_forecast
        if n == 0:
            return Prediction(mean=np.zeros(0))
        pad = self.params.seq_len - 1
        first = max(timeline.start - pad, 0)
        Z = self._standardise(self._check_X(timeline.X[first:]))
        padded = np.concatenate([np.repeat(Z[:1], pad - (timeline.start - first), axis=0), Z])
        out = np.empty(n, dtype=np.float64)
        with _torch_session() as torch:
            Zt = torch.from_numpy(padded)
            offsets = torch.arange(self.params.seq_len)
            with torch.no_grad():
                # Every forward pass has exactly _PREDICT_CHUNK windows (the last one filled
                # up with copies): kernels, and so roundings, depend on the batch shape, and
                # a row's forecast must not depend on the range asked.
                for start in range(0, n, _PREDICT_CHUNK):
                    rows = torch.arange(start, start + _PREDICT_CHUNK).clamp(max=n - 1)
                    chunk = self._net(Zt[rows.unsqueeze(1) + offsets]).double().numpy()
                    out[start : start + _PREDICT_CHUNK] = chunk[: min(_PREDICT_CHUNK, n - start)]
        mean = out * self._y_std + self._y_mean
        return Prediction(mean=np.nan_to_num(mean, nan=self._y_mean, posinf=self._y_mean, neginf=self._y_mean))

    # ---------------------------------------------------------------- artifact

    def to_bytes(self) -> bytes:
        if self._net is None:
            raise InvalidInput("dl.lstm: the model is not fitted")
        torch = _torch()
        assert self._x_mean is not None and self._x_std is not None
        state = {
            "format": _ARTIFACT_FORMAT,
            "state_dict": {k: v.detach().clone() for k, v in self._net.state_dict().items()},
            "x_mean": torch.from_numpy(self._x_mean.copy()),
            "x_std": torch.from_numpy(self._x_std.copy()),
            "y_mean": self._y_mean,
            "y_std": self._y_std,
            "n_features": len(self._x_mean),
            "seq_len": self.params.seq_len,
            "hidden_size": self.params.hidden_size,
            "num_layers": self.params.num_layers,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, params: PluginParams, seed: int = 0) -> Self:
        torch = _torch()
        try:
            state = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        except Exception as exc:
            raise ValueError(f"dl.lstm: not a readable artifact ({exc})") from exc
        if not isinstance(state, dict) or state.get("format") != _ARTIFACT_FORMAT:
            raise ValueError(f"dl.lstm: artifact format is not {_ARTIFACT_FORMAT!r}")
        model = cls(params, seed)
        p = model.params
        for name in ("seq_len", "hidden_size", "num_layers"):
            if state[name] != getattr(p, name):
                raise ValueError(f"dl.lstm: artifact has {name}={state[name]}, parameters say {getattr(p, name)}")
        with _torch_session(seed):  # initial weights are overwritten; keep the caller's RNG untouched
            net = _build_network(torch, int(state["n_features"]), p)
        net.load_state_dict(state["state_dict"])
        net.eval()
        model._net = net
        model._x_mean = state["x_mean"].numpy().astype(np.float64)
        model._x_std = state["x_std"].numpy().astype(np.float64)
        model._y_mean = float(state["y_mean"])
        model._y_std = float(state["y_std"])
        model.epochs_run = int(state["epochs_run"])
        model.best_epoch = int(state["best_epoch"])
        return model
