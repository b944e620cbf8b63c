"""dl.lstm (causal windows, history, scaler, early stopping, seeds, artifact) and the
ensemble.mean / ensemble.stacking plugins (member seeds, walk-forward OOF, validation,
zip artifact integrity)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any, ClassVar, Self

import numpy as np
import pytest
from pydantic import Field

from alphaforge.errors import InvalidInput
from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.models import ModelPlugin, Prediction, Timeline, model_plugins
from alphaforge.plugins.models.deep_learning import LSTMModel
from alphaforge.plugins.models.ensemble import (
    ArtifactIntegrityError,
    MeanEnsemble,
    StackingEnsemble,
    member_seed,
)

torch = pytest.importorskip("torch")

SMALL = {"seq_len": 5, "epochs": 3, "hidden_size": 8, "num_layers": 1, "batch_size": 32}


def _data(n: int = 240, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k))
    y = 0.01 * X[:, 0] - 0.005 * X[:, 1] + 0.002 * rng.normal(size=n)
    return X, y


def _lstm(params: dict[str, Any] | None = None, seed: int = 0) -> LSTMModel:
    return LSTMModel.from_parameters({**SMALL, **(params or {})}, seed=seed)


@pytest.fixture(scope="module")
def fitted_lstm() -> tuple[LSTMModel, np.ndarray, np.ndarray]:
    X, y = _data()
    model = _lstm()
    model.fit(X, y)
    return model, X, y


# ============================================================== dl.lstm


def test_lstm_predictions_are_finite_for_every_row_and_causal(fitted_lstm) -> None:
    model, X, _ = fitted_lstm
    base = model.predict(Timeline.rows(X)).mean
    assert base.shape == (len(X),) and np.all(np.isfinite(base))
    rng = np.random.default_rng(1)
    for t in (0, 3, 4, 100, len(X) - 2):
        changed = X.copy()
        changed[t + 1 :] = rng.normal(scale=5.0, size=changed[t + 1 :].shape)
        np.testing.assert_array_equal(model.predict(Timeline.rows(changed)).mean[: t + 1], base[: t + 1])
    # row t itself is read (features at t are known at t)
    changed = X.copy()
    changed[50] += 3.0
    assert model.predict(Timeline.rows(changed)).mean[50] != base[50]


@pytest.mark.parametrize("k", [1, 2, 4, 5, 60])
def test_lstm_history_continues_the_windows(fitted_lstm, k: int) -> None:
    model, X, _ = fitted_lstm
    whole = model.predict(Timeline.rows(X)).mean
    np.testing.assert_array_equal(model.predict(Timeline.rows(X[k:], X[:k])).mean, whole[k:])
    # a short history is padded with its earliest row, like the start of X is
    np.testing.assert_array_equal(model.predict(Timeline.rows(X[k:], X[k - 1 : k])).mean, model.predict(Timeline.rows(X[k - 1 :])).mean[1:])
    # no history: the first windows repeat the first row; still finite
    assert np.all(np.isfinite(model.predict(Timeline.rows(X[k:])).mean))


def test_lstm_standardises_with_the_training_rows_only() -> None:
    X, y = _data(200)
    X[180:] += 1e6  # the validation tail (validation_fraction 0.1 -> the last 20 rows)
    model = _lstm({"validation_fraction": 0.1})
    model.fit(X, y)
    np.testing.assert_allclose(model.feature_mean, X[:180].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.feature_std, X[:180].std(axis=0), rtol=1e-12)
    assert np.all(np.isfinite(model.predict(Timeline.rows(X)).mean))


def test_lstm_early_stopping_stops_and_restores_the_best_weights() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 3))
    y = rng.normal(scale=0.01, size=300)  # pure noise: the validation loss soon gets worse
    model = _lstm({"epochs": 60, "patience": 2, "lr": 0.05, "hidden_size": 16}, seed=1)
    model.fit(X, y)
    assert model.epochs_run < 60
    assert model.epochs_run == model.best_epoch + 2
    losses = model.validation_losses
    assert len(losses) == model.epochs_run and losses[model.best_epoch - 1] == min(losses)
    # the kept weights are the best epoch's: recompute its validation loss from predictions
    n_train = 270
    pred = model.predict(Timeline.rows(X[n_train:], X[:n_train])).mean
    y_std = y[:n_train].std()
    val_loss = np.mean(((pred - y[n_train:]) / y_std) ** 2)
    assert val_loss == pytest.approx(min(losses), rel=1e-4)

    no_validation = _lstm({"epochs": 4, "validation_fraction": 0.0})
    no_validation.fit(X, y)
    assert no_validation.epochs_run == 4 and no_validation.validation_losses == []


def test_lstm_is_deterministic_given_the_seed_and_leaves_torch_settings_alone() -> None:
    X, y = _data(150)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    rng_state = torch.get_rng_state()
    a, b, c = _lstm(seed=7), _lstm(seed=7), _lstm(seed=8)
    for m in (a, b, c):
        m.fit(X, y)
    np.testing.assert_array_equal(a.predict(Timeline.rows(X)).mean, b.predict(Timeline.rows(X)).mean)
    assert not np.array_equal(a.predict(Timeline.rows(X)).mean, c.predict(Timeline.rows(X)).mean)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("layers", [1, 2])
def test_lstm_dropout_changes_the_model_for_any_number_of_layers(layers: int) -> None:
    X, y = _data(150)
    a, b = _lstm({"num_layers": layers, "dropout": 0.0}), _lstm({"num_layers": layers, "dropout": 0.5})
    a.fit(X, y)
    b.fit(X, y)
    assert not np.allclose(a.predict(Timeline.rows(X)).mean, b.predict(Timeline.rows(X)).mean)


def test_lstm_artifact_round_trip_is_exact_and_safe(fitted_lstm) -> None:
    model, X, _ = fitted_lstm
    data = model.to_bytes()
    state = torch.load(io.BytesIO(data), weights_only=True)  # tensors and plain values only
    assert state["format"] == "alphaforge.dl.lstm/1"
    loaded = LSTMModel.from_bytes(data, model.params, seed=0)
    np.testing.assert_array_equal(loaded.predict(Timeline.rows(X)).mean, model.predict(Timeline.rows(X)).mean)
    np.testing.assert_array_equal(loaded.predict(Timeline.rows(X[9:], X[:9])).mean, model.predict(Timeline.rows(X)).mean[9:])
    assert loaded.epochs_run == model.epochs_run
    with pytest.raises(ValueError):
        LSTMModel.from_bytes(b"not a torch file", model.params)
    with pytest.raises(ValueError, match="hidden_size"):
        LSTMModel.from_bytes(data, LSTMModel.Params.model_validate({**SMALL, "hidden_size": 9}))


def test_lstm_parameters_are_validated_and_the_search_space_is_typed() -> None:
    for bad in ({"hidden_size": "32"}, {"num_layers": 5}, {"dropout": 0.95}, {"lr": 0.0}, {"units": 3}):
        with pytest.raises(InvalidInput):
            LSTMModel.from_parameters(bad)
    assert LSTMModel.search_space["hidden_size"].choices == [16, 32, 64, 128]
    assert all(type(c) is int for c in LSTMModel.search_space["hidden_size"].choices)
    for name, spec in LSTMModel.search_space.items():
        assert name in LSTMModel.Params.model_fields
        if spec.type == "categorical":
            values = spec.choices
        elif spec.type == "int":
            values = [int(spec.low), int(spec.high)]
        else:
            values = [spec.low, spec.high]
        for value in values:
            LSTMModel.from_parameters({name: value})
    json.dumps(LSTMModel.describe())


# ============================================================== ensembles


class RecorderParams(PluginParams):
    sign: float = Field(1.0, description="Multiplies the forecast")


class Recorder(ModelPlugin):
    """Least squares on columns 1.. ; column 0 is the row index, recorded on every call."""

    key = "test.recorder"
    family = "machine_learning"
    short_name = "recorder"
    description = "test spy"
    Params = RecorderParams
    artifact_ext = "json"
    calls: ClassVar[list[tuple[str, np.ndarray, int]]] = []
    #: Per predict call: the rows whose labels the timeline holds (not NaN).
    labels: ClassVar[list[np.ndarray]] = []

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        Recorder.calls.append(("fit", X[:, 0].astype(int), 0))
        A = np.column_stack([np.ones(len(X)), X[:, 1:]])
        self.coef = np.linalg.lstsq(A, y, rcond=None)[0]

    def predict(self, timeline: Timeline) -> Prediction:
        X = timeline.forecast_rows
        Recorder.calls.append(("predict", X[:, 0].astype(int), timeline.start))
        y = np.full(len(timeline.X), np.nan) if timeline.y is None else timeline.y
        Recorder.labels.append(timeline.X[np.isfinite(y), 0].astype(int))
        out = np.column_stack([np.ones(len(X)), X[:, 1:]]) @ self.coef
        return Prediction(mean=self.params.sign * out + 1e-9 * self.seed, extras={"noise": np.zeros(len(X))})

    def to_bytes(self) -> bytes:
        return json.dumps(self.coef.tolist()).encode()

    @classmethod
    def from_bytes(cls, data: bytes, params: PluginParams, seed: int = 0) -> Self:
        model = cls(params, seed)
        model.coef = np.asarray(json.loads(data))
        return model


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[Recorder]:
    monkeypatch.setitem(model_plugins._plugins, Recorder.key, Recorder)  # this test only
    Recorder.calls = []
    Recorder.labels = []
    return Recorder


def _indexed_data(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    X, y = _data(n)
    return np.column_stack([np.arange(n, dtype=float), X]), y


def test_member_seeds_are_derived_per_index_and_deterministic() -> None:
    seeds = [member_seed(7, i) for i in range(5)]
    assert seeds == [member_seed(7, i) for i in range(5)] and len(set(seeds)) == 5
    assert all(0 <= s < 2**31 for s in seeds) and member_seed(8, 0) != seeds[0]


def test_mean_is_the_weighted_average_of_separately_fitted_members(recorder) -> None:
    X, y = _indexed_data()
    members = [{"plugin_key": "dl.lstm", "parameters": SMALL}, {"plugin_key": "test.recorder", "parameters": {}}]
    ens = MeanEnsemble.from_parameters({"members": members}, seed=11)
    ens.fit(X[:150], y[:150])
    lstm = LSTMModel.from_parameters(SMALL, seed=member_seed(11, 0))
    rec = Recorder.from_parameters({}, seed=member_seed(11, 1))
    lstm.fit(X[:150], y[:150])
    rec.fit(X[:150], y[:150])
    p_lstm = lstm.predict(Timeline.rows(X[150:], X[:150])).mean
    p_rec = rec.predict(Timeline.rows(X[150:], X[:150])).mean
    prediction = ens.predict(Timeline.rows(X[150:], X[:150]))
    np.testing.assert_allclose(prediction.mean, (p_lstm + p_rec) / 2, rtol=0, atol=1e-15)
    assert prediction.extras == {}  # members' extras are dropped
    # history is passed through: the split forecast equals the tail of the whole one
    np.testing.assert_array_equal(prediction.mean, ens.predict(Timeline.rows(X)).mean[150:])

    weighted = MeanEnsemble.from_parameters({"members": members, "weights": [3.0, 1.0]}, seed=11)
    weighted.fit(X[:150], y[:150])
    np.testing.assert_allclose(weighted.predict(Timeline.rows(X[150:], X[:150])).mean, 0.75 * p_lstm + 0.25 * p_rec, atol=1e-15)


def test_stacking_oof_forecasts_only_use_earlier_rows_and_weights_are_non_negative(recorder) -> None:
    X, y = _indexed_data(200)
    members = [{"plugin_key": "test.recorder", "parameters": {}}, {"plugin_key": "test.recorder", "parameters": {"sign": -1.0}}]
    ens = StackingEnsemble.from_parameters({"members": members, "n_folds": 3, "purge": 2}, seed=3)
    ens.fit(X, y)

    # 200 rows = 4 blocks of 50: the last 3 forecast, each by members fitted on the rows
    # before it but the 2 purged.
    blocks = [(int(f.train[-1]) + 1, int(f.test[0]), int(f.test[-1]) + 1) for f in ens.folds]
    assert blocks == [(48, 50, 100), (98, 100, 150), (148, 150, 200)]
    calls = Recorder.calls
    fits = [rows for kind, rows, _ in calls if kind == "fit"]
    predicts = [(rows, h) for kind, rows, h in calls if kind == "predict"]
    assert len(fits) == 2 * 3 + 2 and len(predicts) == 2 * 3
    for j, (train_stop, start, stop) in enumerate(blocks):
        for m in range(2):
            np.testing.assert_array_equal(fits[2 * j + m], np.arange(train_stop))  # only rows before, purged
            rows, history = predicts[2 * j + m]
            np.testing.assert_array_equal(rows, np.arange(start, stop))
            assert history == start and rows.min() - fits[2 * j + m].max() > 2
    for rows in fits[6:]:  # final members: every training row
        np.testing.assert_array_equal(rows, np.arange(200))

    assert np.all(ens.meta_weights >= 0)
    assert ens.meta_weights[0] > 0.5 and ens.meta_weights[1] == 0.0  # the sign-flipped member gets no weight
    assert ens.oof_predictions.shape == (150, 2)
    assert np.all(np.isfinite(ens.predict(Timeline.rows(X)).mean))

    # 10 blocks of 1 row and 5 purged leave 16 - 10 - 5 = 1 row to train the first fold on
    with pytest.raises(InvalidInput, match="16 training rows are too few.*would train on 1 rows"):
        StackingEnsemble.from_parameters({"members": members, "n_folds": 10, "purge": 5}).fit(X[:16], y[:16])
    StackingEnsemble.from_parameters({"members": members, "n_folds": 10, "purge": 5}).fit(X[:17], y[:17])


@pytest.mark.parametrize(("n", "n_folds", "purge"), [(203, 4, 3), (150, 3, 1), (97, 2, 7), (120, 3, 0)])
def test_stacking_oof_forecasts_never_train_on_labels_inside_the_purge_gap(recorder, n, n_folds, purge) -> None:
    """Row i's label reaches row i + horizon, and purge >= horizon (check_target_horizon):
    every out-of-fold row is forecast by members fitted only on rows at least purge + 1
    before its block, given no label of the gap, and every row from the first block on is
    forecast exactly once (purge 0 still withholds one row: every label reaches one ahead)."""
    X, y = _indexed_data(n)
    members = [{"plugin_key": "test.recorder"}, {"plugin_key": "test.recorder", "parameters": {"sign": 0.5}}]
    ens = StackingEnsemble.from_parameters({"members": members, "n_folds": n_folds, "purge": purge})
    ens.fit(X, y)
    gap = max(purge, 1)
    fits = [rows for kind, rows, _ in Recorder.calls if kind == "fit"][: 2 * n_folds]
    predicts = [rows for kind, rows, _ in Recorder.calls if kind == "predict"]
    assert len(predicts) == len(Recorder.labels) == 2 * n_folds
    forecast = np.concatenate(predicts[::2])
    np.testing.assert_array_equal(forecast, np.arange(n - len(forecast), n))  # each OOF row once, up to the last
    assert len(ens.oof_predictions) == len(forecast) == n_folds * (n // (n_folds + 1))
    for trained, rows, labels in zip(fits, predicts, Recorder.labels, strict=True):
        start = int(rows[0])
        assert len(trained) >= 2 and trained.max() + gap < start  # the first forecast row's label gap, and any later
        np.testing.assert_array_equal(trained, np.arange(start - gap))  # expanding: everything before the gap
        assert not np.any((labels >= start - gap) & (labels < start))  # the gap's labels are withheld


def test_stacking_without_intercept(recorder) -> None:
    X, y = _indexed_data(120)
    members = [{"plugin_key": "test.recorder"}, {"plugin_key": "test.recorder", "parameters": {"sign": 0.5}}]
    ens = StackingEnsemble.from_parameters({"members": members, "fit_intercept": False})
    ens.fit(X, y)
    assert ens.meta_intercept == 0.0 and np.all(ens.meta_weights >= 0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"members": [{"plugin_key": "ml.ridge"}, {"plugin_key": "ml.nope"}]}, r"members\.1.*unknown model plugin 'ml\.nope'"),
        ({"members": [{"plugin_key": "ensemble.mean"}, {"plugin_key": "dl.lstm"}]}, r"members\.0.*ensembles cannot be members"),
        (
            {"members": [{"plugin_key": "dl.lstm"}, {"plugin_key": "dl.lstm", "parameters": {"hidden_size": "64"}}]},
            r"members\.1.*member dl\.lstm.*hidden_size",
        ),
        ({"members": [{"plugin_key": "dl.lstm"}, {"plugin_key": "dl.lstm", "parameters": {"units": 3}}]}, r"members\.1.*'units'"),
        ({"members": [{"plugin_key": "dl.lstm"}, {"plugin_key": "dl.lstm"}], "weights": [1.0]}, r"weights.*1 entries for 2 members"),
        ({"members": [{"plugin_key": "dl.lstm"}, {"plugin_key": "dl.lstm"}], "weights": [1.0, -1.0]}, r"weights"),
        ({"members": [{"plugin_key": "dl.lstm"}]}, r"members.*at least 2"),
    ],
)
def test_invalid_members_are_refused_naming_the_member(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected):
        MeanEnsemble.from_parameters(raw)


def test_ensemble_parameters_resolve_member_defaults() -> None:
    ens = StackingEnsemble.from_parameters({"members": [{"plugin_key": "dl.lstm"}, {"plugin_key": "dl.lstm", "parameters": {"seq_len": 3}}]})
    resolved = ens.resolved_parameters()
    assert resolved["members"][1]["parameters"]["seq_len"] == 3
    assert resolved["members"][0]["parameters"] == LSTMModel.Params().model_dump(mode="json")
    for cls in (MeanEnsemble, StackingEnsemble):
        json.dumps(cls.describe())
        assert all(name in cls.Params.model_fields for name in cls.search_space)


def _rewrite_zip(data: bytes, change: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, change.get(info.filename, src.read(info.filename)))
    return out.getvalue()


def test_ensemble_artifact_round_trip_and_tamper_detection(recorder) -> None:
    X, y = _indexed_data(150)
    members = [{"plugin_key": "test.recorder"}, {"plugin_key": "dl.lstm", "parameters": SMALL}]
    ens = StackingEnsemble.from_parameters({"members": members}, seed=5)
    ens.fit(X, y)
    data = ens.to_bytes()
    assert data == ens.to_bytes()  # fixed zip timestamps: same model, same bytes

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        blob = archive.read("member_1.pt")
    assert [m["plugin_key"] for m in manifest["members"]] == ["test.recorder", "dl.lstm"]
    assert [m["seed"] for m in manifest["members"]] == [member_seed(5, 0), member_seed(5, 1)]
    assert manifest["members"][1]["sha256"] == hashlib.sha256(blob).hexdigest()
    assert manifest["combiner"]["weights"] == ens.meta_weights.tolist()

    loaded = StackingEnsemble.from_bytes(data, ens.params, seed=5)
    np.testing.assert_array_equal(loaded.predict(Timeline.rows(X)).mean, ens.predict(Timeline.rows(X)).mean)

    tampered = bytearray(blob)
    tampered[len(tampered) // 2] ^= 0xFF
    with pytest.raises(ArtifactIntegrityError, match=r"member 1 \(dl\.lstm\).*SHA-256"):
        StackingEnsemble.from_bytes(_rewrite_zip(data, {"member_1.pt": bytes(tampered)}), ens.params, seed=5)
    with pytest.raises(ArtifactIntegrityError, match="not a readable"):
        StackingEnsemble.from_bytes(b"garbage", ens.params)
    other = StackingEnsemble.Params.model_validate({"members": [{"plugin_key": "test.recorder"}, {"plugin_key": "dl.lstm"}]})
    with pytest.raises(ArtifactIntegrityError, match="does not match"):
        StackingEnsemble.from_bytes(data, other)
    with pytest.raises(ArtifactIntegrityError):
        MeanEnsemble.from_bytes(data, MeanEnsemble.Params.model_validate({"members": members}))
