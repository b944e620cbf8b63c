"""Sequence models and stacking on panels (issue 13): the LSTM's windows keep each symbol's
rows apart, stacking's inner folds split by date, each symbol is forecast from its own rows
and the labels realised by its date, and fold forecasts up to a date t do not move when
anything after t does (or when another symbol's rows do, for a fitted model)."""

from __future__ import annotations

import json
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import pytest

from alphaforge.evaluation.panel import panel_calendar
from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.models import ModelPlugin, PanelIndex, Prediction, Timeline, forecast_panel, model_plugins
from alphaforge.errors import InvalidInput
from alphaforge.plugins.models import deep_learning
from alphaforge.plugins.models.deep_learning import LSTMModel, SeriesWindows
from alphaforge.plugins.models.ensemble import StackingEnsemble

SYMBOLS = np.array(["AAA", "BBB", "CCC"], dtype=object)
LSTM_FAST = {"epochs": 3, "seq_len": 6, "hidden_size": 8, "num_layers": 1, "batch_size": 32}


def make_panel(n_dates: int = 120, seed: int = 0, ragged: bool = True) -> tuple[np.ndarray, np.ndarray, PanelIndex]:
    """Rows sorted by (date, symbol); with ``ragged``, CCC joins at date 20 and BBB misses
    every 7th date. Feature 0 is the symbol's code times 1000 plus noise, so a row's symbol
    can be read off its features."""
    rng = np.random.default_rng(seed)
    dates, series = [], []
    for d in range(n_dates):
        for s in range(len(SYMBOLS)):
            if ragged and ((s == 2 and d < 20) or (s == 1 and d % 7 == 3)):
                continue
            dates.append(d)
            series.append(s)
    dates_a, series_a = np.array(dates), np.array(series)
    signal = rng.normal(size=len(dates_a))
    X = np.column_stack([1000.0 * series_a + rng.normal(size=len(dates_a)), signal, rng.normal(size=len(dates_a))])
    y = 0.01 * signal + 0.002 * rng.normal(size=len(dates_a))
    return X, y, PanelIndex(dates_a, series_a, horizon=2)


# --- the window builder -----------------------------------------------------------------


@pytest.mark.parametrize("seq_len", [1, 4, 9])
def test_an_lstm_window_holds_only_its_own_symbols_rows_ending_at_its_row(seq_len: int) -> None:
    X, _, panel = make_panel()
    windows = SeriesWindows(panel.series, seq_len).rows(np.arange(len(X)))
    assert windows.shape == (len(X), seq_len)
    own = np.floor(X[windows][:, :, 0] / 1000 + 0.5)  # the symbol each window row came from
    np.testing.assert_array_equal(own, np.repeat(panel.series[:, None], seq_len, axis=1))
    for rows in panel.by_series():
        for position, row in enumerate(rows):
            expected = rows[np.maximum(np.arange(position - seq_len + 1, position + 1), 0)]  # padded with the first row
            np.testing.assert_array_equal(windows[row], expected)


def test_one_series_windows_are_the_single_series_padding() -> None:
    windows = SeriesWindows(np.zeros(6, dtype=np.int64), 3).rows(np.array([0, 1, 5]))
    np.testing.assert_array_equal(windows, [[0, 0, 0], [0, 0, 1], [3, 4, 5]])


# --- the LSTM fitted on a panel ---------------------------------------------------------


def _lstm(**params: Any) -> LSTMModel:
    return LSTMModel.from_parameters({**LSTM_FAST, **params}, seed=4)


def test_one_series_given_as_a_panel_fits_the_same_lstm_as_a_plain_fit() -> None:
    X, y, _ = make_panel(ragged=False)
    plain, as_panel = _lstm(), _lstm()
    plain.fit(X, y)
    as_panel.fit_panel(X, y, PanelIndex.one_series(len(X)))
    assert plain.to_bytes() == as_panel.to_bytes()


def test_the_lstm_holds_out_whole_dates_for_early_stopping() -> None:
    _, _, panel = make_panel()
    n_train = _lstm(validation_fraction=0.1)._training_rows(panel)
    # 120 dates: the last 12 (108 …) are held out, every symbol of them
    assert panel.dates[n_train] == 108 and panel.dates[n_train - 1] == 107
    assert _lstm(validation_fraction=0.0)._training_rows(panel) == len(panel)


def test_an_lstm_fitted_on_a_panel_is_deterministic_and_windows_its_rows_by_symbol(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y, panel = make_panel()
    built: list[np.ndarray] = []

    class Recording(SeriesWindows):
        def __init__(self, series: np.ndarray, seq_len: int) -> None:
            built.append(np.asarray(series))
            super().__init__(series, seq_len)

    monkeypatch.setattr(deep_learning, "SeriesWindows", Recording)
    first, second = _lstm(), _lstm()
    first.fit_panel(X, y, panel)
    second.fit_panel(X, y, panel)
    assert first.to_bytes() == second.to_bytes()
    assert len(built) == 2 and all(np.array_equal(series, panel.series) for series in built)
    known = np.where(panel.dates < 100, y, np.nan)
    forecasts = forecast_panel(first, X, known, panel, start=int(np.searchsorted(panel.dates, 100)))
    assert np.all(np.isfinite(forecasts))


# --- forecasting a panel, symbol by symbol ----------------------------------------------


class SpyParams(PluginParams):
    history: int = 3


class Spy(ModelPlugin):
    """Least squares on columns 2..; column 1 holds the row's panel position. Records every
    fit and every timeline it forecasts."""

    key = "test.panel_spy"
    family = "machine_learning"
    short_name = "panel_spy"
    description = "test spy"
    Params = SpyParams
    artifact_ext = "json"
    fits: ClassVar[list[tuple[np.ndarray, PanelIndex | None]]] = []
    timelines: ClassVar[list[Timeline]] = []

    def history_rows(self) -> int:
        return self.params.history  # type: ignore[attr-defined]

    def pools_symbols(self) -> bool:
        return True

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self.fit_panel(X, y, None)  # type: ignore[arg-type]

    def fit_panel(self, X: np.ndarray, y: np.ndarray, panel: PanelIndex) -> None:
        Spy.fits.append((X[:, 1].astype(int), panel))
        A = np.column_stack([np.ones(len(X)), X[:, 2:]])
        self.coef = np.linalg.lstsq(A, y, rcond=None)[0]

    def predict(self, timeline: Timeline) -> Prediction:
        Spy.timelines.append(timeline)
        rows = timeline.forecast_rows
        return Prediction(mean=np.column_stack([np.ones(len(rows)), rows[:, 2:]]) @ self.coef)

    def to_bytes(self) -> bytes:
        return json.dumps(self.coef.tolist()).encode()

    @classmethod
    def from_bytes(cls, data: bytes, params: PluginParams, seed: int = 0) -> Self:
        model = cls(params, seed)
        model.coef = np.asarray(json.loads(data))
        return model


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> type[Spy]:
    monkeypatch.setitem(model_plugins._plugins, Spy.key, Spy)
    Spy.fits, Spy.timelines = [], []
    return Spy


def _with_positions(X: np.ndarray) -> np.ndarray:
    return np.column_stack([X[:, :1], np.arange(len(X)), X[:, 1:]])


def test_each_symbol_is_forecast_from_its_own_rows_and_labels_realised_by_its_row(spy: type[Spy]) -> None:
    X, y, panel = make_panel()
    X = _with_positions(X)
    model = Spy.from_parameters({})
    model.fit_panel(X[:200], y[:200], panel.take(np.arange(200)))
    start = int(np.searchsorted(panel.dates, 90))
    known = np.where(panel.dates < 85, y, np.nan)  # dates 85 … 89: a withheld gap
    out = forecast_panel(model, X, known, panel, start=start)
    assert len(Spy.timelines) == len(SYMBOLS)
    for timeline, rows in zip(Spy.timelines, panel.by_series(), strict=True):
        np.testing.assert_array_equal(timeline.X[:, 1].astype(int), rows)  # that symbol's rows, from its first
        assert np.all(np.floor(timeline.X[:, 0] / 1000 + 0.5) == panel.series[rows[0]])
        np.testing.assert_array_equal(rows[timeline.start :], rows[rows >= start])
        np.testing.assert_array_equal(np.isnan(timeline.y), np.isnan(known[rows]))
        assert timeline.horizon == panel.horizon
    # the same values as a batch (the spy reads its own row only)
    batch = model.predict(Timeline.rows(X[start:])).mean
    np.testing.assert_array_equal(out, batch)


def test_a_fitted_models_forecasts_of_a_symbol_ignore_other_symbols_and_later_rows() -> None:
    X, y, panel = make_panel()
    model = _lstm()
    model.fit_panel(X[panel.dates < 80], y[panel.dates < 80], panel.take(np.flatnonzero(panel.dates < 80)))
    start = int(np.searchsorted(panel.dates, 80))
    base = forecast_panel(model, X, y, panel, start=start)
    rng = np.random.default_rng(9)

    other = X.copy()
    bbb = panel.series == 1
    other[bbb, 1:] += rng.normal(size=(int(bbb.sum()), X.shape[1] - 1))  # BBB's rows, all of them
    moved = forecast_panel(model, other, y, panel, start=start)
    np.testing.assert_array_equal(moved[~bbb[start:]], base[~bbb[start:]])
    assert not np.array_equal(moved[bbb[start:]], base[bbb[start:]])  # the perturbation bites

    t = 100
    later = X.copy()
    after = panel.dates > t
    later[after, 1:] += rng.normal(size=(int(after.sum()), X.shape[1] - 1))
    moved = forecast_panel(model, later, y, panel, start=start)
    upto = panel.dates[start:] <= t
    np.testing.assert_array_equal(moved[upto], base[upto])
    assert not np.array_equal(moved[~upto], base[~upto])


# --- stacking on a panel ----------------------------------------------------------------


def test_stacking_inner_folds_split_by_date_and_purge_the_label_span_in_dates(spy: type[Spy]) -> None:
    X, y, panel = make_panel(n_dates=100)
    X = _with_positions(X)
    panel = PanelIndex(panel.dates, panel.series, horizon=4)
    members = [{"plugin_key": Spy.key}, {"plugin_key": Spy.key, "parameters": {"history": 0}}]
    ens = StackingEnsemble.from_parameters({"members": members, "n_folds": 3, "purge": 2}, seed=1)
    ens.fit_panel(X, y, panel)
    assert len(ens.folds) == 3
    for fold in ens.folds:
        train_dates, test_dates = set(panel.dates[fold.train]), set(panel.dates[fold.test])
        assert not train_dates & test_dates
        assert min(test_dates) - max(train_dates) - 1 == 4  # purge = max(purge 2, label span 4) dates
        assert set(panel.dates[fold.test]) == set(range(min(test_dates), max(test_dates) + 1))
        np.testing.assert_array_equal(fold.test, np.flatnonzero(np.isin(panel.dates, list(test_dates))))
    # 100 dates = 4 blocks of 25: the last 3 forecast out of fold
    assert [int(panel.dates[f.test[0]]) for f in ens.folds] == [25, 50, 75]
    # members were fitted with the panel's index of their rows; the history-reading member
    # forecast each symbol from its own rows, the purge gap's labels withheld
    for rows, index in Spy.fits:
        assert index is not None
        np.testing.assert_array_equal(index.dates, panel.dates[rows])
        np.testing.assert_array_equal(index.series, panel.series[rows])
    per_symbol = [t for t in Spy.timelines if t.y is not None]  # the other member forecasts in one batch
    assert len(per_symbol) == 3 * len(SYMBOLS)
    for timeline in per_symbol:
        rows = timeline.X[:, 1].astype(int)
        assert len(set(panel.series[rows])) == 1
        test_start = int(panel.dates[rows[timeline.start]])
        gap = (panel.dates[rows] >= test_start - 4) & (panel.dates[rows] < test_start)
        assert np.all(np.isnan(timeline.y[gap])) and np.all(np.isfinite(timeline.y[: timeline.start][~gap[: timeline.start]]))
    assert ens.oof_predictions.shape == (len(X) - int(ens.folds[0].test[0]), 2)


def test_stacking_on_one_series_given_as_a_panel_fits_as_on_the_series() -> None:
    X, y, _ = make_panel(ragged=False)
    members = [{"plugin_key": "ml.ridge"}, {"plugin_key": "dl.lstm", "parameters": LSTM_FAST}]
    plain = StackingEnsemble.from_parameters({"members": members, "purge": 2}, seed=2)
    as_panel = StackingEnsemble.from_parameters({"members": members, "purge": 2}, seed=2)
    plain.fit(X, y)
    as_panel.fit_panel(X, y, PanelIndex.one_series(len(X), horizon=2))
    assert plain.to_bytes() == as_panel.to_bytes()


def test_stacking_on_a_panel_too_short_in_dates_is_a_422() -> None:
    X, y, panel = make_panel(n_dates=8)
    ens = StackingEnsemble.from_parameters({"members": [{"plugin_key": "ml.ridge"}, {"plugin_key": "ml.ridge"}],
                                            "n_folds": 3, "purge": 5})
    with pytest.raises(InvalidInput, match="8 training dates are too few for n_folds=3 with purge=5"):
        ens.fit_panel(X, y, panel)


def test_a_panel_index_from_timestamps_and_symbols() -> None:
    stamps = pd.DatetimeIndex(["2021-01-04", "2021-01-04", "2021-01-05", "2021-01-06", "2021-01-06"], tz="UTC")
    dates, _ = panel_calendar(stamps)
    index = PanelIndex(dates, pd.factorize(np.array(["A", "B", "B", "A", "B"]), sort=True)[0], horizon=3)
    assert [r.tolist() for r in index.by_series()] == [[0, 3], [1, 2, 4]]
    assert index.take(np.array([2, 3])).dates.tolist() == [1, 2]
    with pytest.raises(ValueError, match="sorted by date"):
        PanelIndex(np.array([1, 0]), np.array([0, 0]))


# --- cross-validation on a panel (the trainer) ------------------------------------------


def _training_data(X: np.ndarray, y: np.ndarray, panel: PanelIndex) -> Any:
    from alphaforge.training.pooled import PanelTrainingData

    calendar = pd.bdate_range("2020-01-01", periods=int(panel.dates.max()) + 1, tz="UTC")
    return PanelTrainingData(
        X=X, y=y, horizon=panel.horizon, timestamps=pd.DatetimeIndex(calendar[panel.dates]),
        symbols=SYMBOLS[panel.series], columns=[f"f{i}" for i in range(X.shape[1])], features=[], dropped_rows=0,
    )


CV_MODELS = [
    ("dl.lstm", LSTM_FAST),
    ("ensemble.stacking", {"members": [{"plugin_key": "ml.ridge"}, {"plugin_key": "dl.lstm", "parameters": LSTM_FAST}],
                           "purge": 2}),
]


@pytest.mark.parametrize(("key", "params"), CV_MODELS, ids=[k for k, _ in CV_MODELS])
def test_fold_forecasts_up_to_a_date_ignore_every_row_after_it(key: str, params: dict[str, Any]) -> None:
    """Features and labels of every symbol after date t perturbed (or one symbol's only):
    the fold's forecasts up to t are bit-for-bit the same; later ones move."""
    from alphaforge.schemas.models import CVConfig
    from alphaforge.training import trainer

    X, y, panel = make_panel()
    data = _training_data(X, y, panel)
    plugin = model_plugins.get(key).from_parameters(params, seed=5)
    folds = trainer.cv_folds(CVConfig(method="expanding", n_splits=2, test_size=0.2), data)
    fold = folds[-1]
    test_dates = panel.dates[fold.test]
    t = int(test_dates[len(test_dates) // 2])
    base = trainer.panel_fold_forecast(plugin, data, fold, seed=5)
    np.testing.assert_array_equal(trainer.panel_fold_forecast(plugin, data, fold, seed=5), base)  # deterministic
    rng = np.random.default_rng(1)
    upto = test_dates <= t
    for changed in (panel.dates > t, (panel.dates > t) & (panel.series == 0)):
        X2, y2 = X.copy(), y.copy()
        X2[changed, 1:] += rng.normal(size=(int(changed.sum()), X.shape[1] - 1))
        y2[changed] += rng.normal(scale=0.05, size=int(changed.sum()))
        moved = trainer.panel_fold_forecast(plugin, _training_data(X2, y2, panel), fold, seed=5)
        np.testing.assert_array_equal(moved[upto], base[upto])
        assert not np.array_equal(moved[~upto], base[~upto])


def test_a_fold_withholds_the_labels_of_its_purge_dates_from_every_symbols_forecast(spy: type[Spy]) -> None:
    from alphaforge.schemas.models import CVConfig
    from alphaforge.training import trainer

    X, y, panel = make_panel()
    data = _training_data(_with_positions(X), y, panel)
    fold = trainer.cv_folds(CVConfig(method="expanding", n_splits=2, test_size=0.2, purge=3), data)[0]
    trainer.panel_fold_forecast(Spy.from_parameters({}), data, fold, seed=0)
    first_test = int(panel.dates[fold.test[0]])
    assert fold.purge == 3 and len(Spy.timelines) == len(SYMBOLS)
    for timeline in Spy.timelines:
        rows = timeline.X[:, 1].astype(int)
        assert rows[-1] <= fold.test[-1] and len(set(panel.series[rows])) == 1
        withheld = np.isnan(timeline.y)
        np.testing.assert_array_equal(withheld, (panel.dates[rows] >= first_test - 3) & (panel.dates[rows] < first_test))
