"""The contract every registered model plugin must honour (one test suite, all plugins).

Data: 400 seeded rows of 4 features (one price-like, one volume-sized) with a known linear
signal plus noise, at the scale of daily returns; the first 300 rows train, the last 100
test. A plugin whose defaults are slow to fit adds an entry to ``FAST``; one whose
parameter the automatic alternate cannot exercise adds an entry to ``ALTERNATES``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from alphaforge.errors import InvalidInput
from alphaforge.marketdata.bars import parse_upload
from alphaforge.marketdata.sample import sample_bars
from alphaforge.plugins.models import (
    MODEL_FAMILIES,
    ModelPlugin,
    Prediction,
    Timeline,
    model_plugins,
    resolve_model_type,
)

PLUGINS = list(model_plugins)
FAMILY_PREFIX = {"statistical": "stat.", "machine_learning": "ml.", "deep_learning": "dl.", "ensemble": "ensemble."}

#: Overrides that keep test fits small; every test starts from these.
FAST: dict[str, dict[str, Any]] = {
    "ml.xgboost": {"n_estimators": 30},
    "ml.lightgbm": {"n_estimators": 30},
    "ml.catboost": {"iterations": 30},
    "ml.random_forest": {"n_estimators": 20},
    "dl.lstm": {"epochs": 5},
}

#: Values for the "every parameter is honoured" test where the automatic choice (another
#: enum value, the flipped bool, a nearby number) would not bind on 300 rows.
ALTERNATES: dict[str, dict[str, Any]] = {
    "ml.xgboost": {"min_child_weight": 20.0},  # squared error: hessian 1 per row, 0.5 never binds
    "ml.lightgbm": {"num_leaves": 4},  # min_child_samples=20 on 300 rows caps trees below 31 leaves
    "ml.random_forest": {"max_depth": 3},  # default None has no "nearby" value
    "dl.lstm": {"patience": 1},
    # Lists have no automatic alternate.
    "ensemble.mean": {
        "members": [{"plugin_key": "ml.ridge"}, {"plugin_key": "ml.xgboost", "parameters": {"n_estimators": 30}}],
        "weights": [3.0, 1.0],
    },
    "ensemble.stacking": {
        "members": [{"plugin_key": "ml.ridge"}, {"plugin_key": "ml.xgboost", "parameters": {"n_estimators": 30}}],
    },
}

#: Settings, beyond ``FAST``, under which a parameter can bind at all (on both sides of the comparison).
CONTEXT: dict[tuple[str, str], dict[str, Any]] = {
    ("dl.lstm", "patience"): {"epochs": 20},  # in 5 epochs the validation loss never stalls
}

#: Plugins whose artifact differs between identical fits; their round trip compares predictions only.
NON_REPRODUCIBLE_BYTES: dict[str, str] = {}

#: Out-of-sample correlation with the realised target that a plugin must reach.
MIN_CORRELATION = {"machine_learning": 0.5, "ensemble": 0.5}
LOOSE_CORRELATION = 0.2  # statistical and deep-learning models


@dataclass(frozen=True)
class Data:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


@cache
def data() -> Data:
    rng = np.random.default_rng(7)
    z = rng.normal(size=(400, 4))
    y = 0.004 * (z[:, 0] - 0.5 * z[:, 1] + 0.25 * z[:, 2]) + 0.004 * rng.normal(size=400)
    X = np.column_stack([z[:, 0], z[:, 1], 1e6 * z[:, 2], 4000 + 50 * z[:, 3]])
    return Data(X[:300], y[:300], X[300:], y[300:])


def _fit(cls: type[ModelPlugin], params: dict[str, Any] | None = None, seed: int = 3) -> ModelPlugin:
    plugin = cls.from_parameters({**FAST.get(cls.key, {}), **(params or {})}, seed=seed)
    plugin.fit(data().X_train, data().y_train)
    return plugin


def _predict(plugin: ModelPlugin, X: np.ndarray | None = None) -> Prediction:
    """Forecast the test rows (or ``X``) after the training rows, whose labels are known."""
    X = data().X_test if X is None else X
    known = np.concatenate([data().y_train, np.full(len(X), np.nan)])
    return plugin.predict(Timeline(np.concatenate([data().X_train, X]), known, horizon=1, start=len(data().X_train)))


def _outputs(prediction: Prediction) -> np.ndarray:
    """Mean and every extra series, end to end, for comparisons."""
    return np.concatenate([prediction.mean, *(prediction.extras[k] for k in sorted(prediction.extras))])


@cache
def _base_outputs(cls: type[ModelPlugin]) -> np.ndarray:
    return _outputs(_predict(_fit(cls)))


def _valid(cls: type[ModelPlugin], raw: dict[str, Any]) -> bool:
    try:
        cls.Params.model_validate(raw)
    except ValidationError:
        return False
    return True


# --- metadata ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
def test_metadata_is_complete_and_serializable(cls: type[ModelPlugin]) -> None:
    meta = json.loads(json.dumps(cls.describe()))
    assert meta["family"] in MODEL_FAMILIES
    assert meta["key"] == cls.key and cls.key.startswith(FAMILY_PREFIX[cls.family])
    assert meta["short_name"] and meta["description"] and isinstance(meta["version"], str)
    assert meta["artifact_format"] and "." not in meta["artifact_format"]
    schema = meta["parameters"]
    assert schema["type"] == "object" and schema.get("additionalProperties") is False
    for name, spec in schema.get("properties", {}).items():
        assert "default" in spec, f"{cls.key}.{name} has no default"
    assert meta["libraries"] and all(v != "not-installed" for v in meta["libraries"].values()), meta["libraries"]
    assert resolve_model_type(cls.short_name, cls.family) is cls


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
def test_every_search_space_point_is_a_valid_parameter(cls: type[ModelPlugin]) -> None:
    assert set(cls.search_space) <= set(cls.Params.model_fields)
    for name, spec in cls.search_space.items():
        if spec.type == "categorical":
            points: list[Any] = list(spec.choices or [])
        else:
            cast = int if spec.type == "int" else float
            points = [cast(spec.low), cast(spec.high)]
        for value in points:
            assert _valid(cls, {name: value}), f"{cls.key}: search space point {name}={value!r} is refused"


# --- fit / predict -------------------------------------------------------------------


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
def test_predictions_are_finite_float64_as_long_as_x(cls: type[ModelPlugin]) -> None:
    plugin = _fit(cls)
    for X in (data().X_test, data().X_test[:1]):
        prediction = _predict(plugin, X)
        for name, values in {"mean": prediction.mean, **prediction.extras}.items():
            assert isinstance(values, np.ndarray) and values.dtype == np.float64, name
            assert values.shape == (len(X),), name
            assert np.isfinite(values).all(), name


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
def test_rows_of_another_width_are_refused(cls: type[ModelPlugin]) -> None:
    """An artifact fed the wrong number of feature columns (say, linked by hand to another
    model's features) must fail, never broadcast one column and predict nonsense."""
    plugin = _fit(cls)
    narrow = np.concatenate([data().X_train, data().X_test])[:, :1]  # one column broadcasts
    with pytest.raises(Exception):  # noqa: B017 - any error will do, a silent answer will not
        plugin.predict(Timeline(narrow, horizon=1, start=len(data().X_train)))


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
def test_same_seed_same_predictions(cls: type[ModelPlugin]) -> None:
    assert np.array_equal(_outputs(_predict(_fit(cls))), _outputs(_predict(_fit(cls))))


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
def test_artifact_round_trip_predicts_the_same(cls: type[ModelPlugin]) -> None:
    first, second = _fit(cls), _fit(cls)
    data_bytes = first.to_bytes()
    assert isinstance(data_bytes, bytes) and data_bytes
    restored = cls.from_bytes(data_bytes, first.params, seed=first.seed)
    assert np.array_equal(_outputs(_predict(restored)), _outputs(_predict(first)))
    if cls.key not in NON_REPRODUCIBLE_BYTES:
        assert second.to_bytes() == data_bytes, "identical fits must give identical artifacts"


@pytest.mark.parametrize(
    ("cls", "name"),
    [(cls, name) for cls in PLUGINS for name in cls.Params.model_fields],
    ids=lambda v: v if isinstance(v, str) else v.key,
)
def test_every_parameter_changes_the_predictions(cls: type[ModelPlugin], name: str) -> None:
    context = CONTEXT.get((cls.key, name), {})
    current = getattr(cls.from_parameters({**FAST.get(cls.key, {}), **context}).params, name)
    table = ALTERNATES.get(cls.key, {})
    value = table[name] if name in table else _automatic_alternate(cls, name, current)
    if value is _NO_ALTERNATE:
        pytest.fail(f"no automatic alternate for {cls.key}.{name}: add one to ALTERNATES")
    assert value != current, f"ALTERNATES[{cls.key!r}][{name!r}] equals the value it should differ from"
    base = _outputs(_predict(_fit(cls, context))) if context else _base_outputs(cls)
    changed = _outputs(_predict(_fit(cls, {**context, name: value})))
    assert not np.allclose(changed, base, rtol=1e-7, atol=1e-12), (
        f"{cls.key}: {name}={value!r} predicts the same as {current!r}"
    )


_NO_ALTERNATE = object()


def _automatic_alternate(cls: type[ModelPlugin], name: str, current: Any) -> Any:
    prop = cls.Params.model_json_schema()["properties"][name]
    candidates: list[Any] = []
    if "enum" in prop:
        candidates = list(prop["enum"])
    elif isinstance(current, bool):
        candidates = [not current]
    elif isinstance(current, int):
        candidates = [current + 1, current - 1]
    elif isinstance(current, float):
        candidates = [current * 0.5, current * 2, current + 1.0]
    for value in candidates:
        if value != current and _valid(cls, {**FAST.get(cls.key, {}), name: value}):
            return value
    return _NO_ALTERNATE


# --- causality, on the real GSPC bars --------------------------------------------------
#
# One rule for every plugin (plugins.models.base.Timeline): the forecast for row t reads
# feature rows up to t and labels realised by t, nothing else, and never depends on the
# range asked for. Features here are simple trailing transforms of the bars, labels the
# forward return over HORIZON bars, as the service builds them.

HORIZON = 3
CAUSAL_SPAN = ("2005-01-01", "2013-01-01")
CAUSAL_TRAIN_ROWS = 1200


def _gspc_bars() -> pd.DataFrame:
    frame, report = parse_upload(sample_bars("GSPC"))
    assert report.ok
    return frame.loc[CAUSAL_SPAN[0] : CAUSAL_SPAN[1]]


def _timeline_frame(bars: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Complete feature rows and the forward return of each (NaN where not realised)."""
    log_close = np.log(bars["close"])
    returns = log_close.diff()
    features = pd.DataFrame({
        "r1": returns,
        "r5": log_close.diff(5),
        "vol20": returns.rolling(20).std(),
        "volume": np.log(bars["volume"]).diff(),
        "range": np.log(bars["high"] / bars["low"]),
    }).dropna()
    close = bars["close"]
    return features, (close.shift(-HORIZON) / close - 1.0).reindex(features.index)


@cache
def _causal_data() -> tuple[pd.DataFrame, pd.Series]:
    return _timeline_frame(_gspc_bars())


@cache
def _causal_model(cls: type[ModelPlugin]) -> ModelPlugin:
    features, target = _causal_data()
    plugin = cls.from_parameters(FAST.get(cls.key, {}), seed=5)
    plugin.fit(features.to_numpy()[:CAUSAL_TRAIN_ROWS], target.to_numpy()[:CAUSAL_TRAIN_ROWS])
    return plugin


def _forecast(plugin: ModelPlugin, features: pd.DataFrame, target: pd.Series, start: int = 0) -> np.ndarray:
    timeline = Timeline(features.to_numpy(), target.to_numpy(), horizon=HORIZON, start=start)
    return _outputs_by_row(plugin.predict(timeline), timeline.n_forecast)


def _outputs_by_row(prediction: Prediction, n: int) -> np.ndarray:
    """(n, 1 + extras) matrix: row i holds every series' forecast for row i."""
    return np.column_stack([prediction.mean, *(prediction.extras[k] for k in sorted(prediction.extras))]).reshape(n, -1)


def _perturbed_after(bars: pd.DataFrame, when: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Every bar after ``when`` changed (prices scaled per bar, volume too), nothing before."""
    rng = np.random.default_rng(seed)
    out = bars.copy()
    later = out.index > when
    factor = np.exp(rng.normal(0.0, 0.03, size=int(later.sum())))
    for column in ("open", "high", "low", "close"):
        out.loc[later, column] = out.loc[later, column].to_numpy() * factor
    out.loc[later, "volume"] = out.loc[later, "volume"].to_numpy() * rng.uniform(0.5, 2.0, size=int(later.sum()))
    return out


def _first_changed_row(plugin: ModelPlugin, t: int) -> int | None:
    """Forecast every row before and after perturbing all bars after row t; the first row up
    to t whose forecast changed (None: none did)."""
    features, target = _causal_data()
    base = _forecast(plugin, features, target)
    changed_features, changed_target = _timeline_frame(_perturbed_after(_gspc_bars(), features.index[t], seed=t))
    assert changed_features.index.equals(features.index)
    assert not np.allclose(changed_target.to_numpy()[t - HORIZON + 1 : -HORIZON], target.to_numpy()[t - HORIZON + 1 : -HORIZON])
    after = _forecast(plugin, changed_features, changed_target)
    differs = np.flatnonzero(~(after[: t + 1] == base[: t + 1]).all(axis=1))
    return int(differs[0]) if len(differs) else None


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
@pytest.mark.parametrize("t", [4, 700, 1500])
def test_no_forecast_reads_anything_after_its_row(cls: type[ModelPlugin], t: int) -> None:
    """Bars, features and labels after row t are perturbed: no forecast up to t may move
    (row 4: before the first realised label; 700: inside the training rows; 1500: after)."""
    assert _first_changed_row(_causal_model(cls), t) is None


def _range_forecast(plugin: ModelPlugin, a: int, c: int) -> np.ndarray:
    """Forecasts for rows [a, c) as the service makes them for a request of that range:
    the rows the plugin reads before a (all for filters), labels realised before c only."""
    features, target = _causal_data()
    history = plugin.history_rows()
    first = 0 if history is None else max(a - history, 0)
    known = target.to_numpy()[first:c].copy()
    known[max(c - first - HORIZON, 0) :] = np.nan  # realised after the range ends
    return _forecast(plugin, features.iloc[first:c], pd.Series(known), start=a - first)


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
def test_forecasts_do_not_depend_on_the_range_asked(cls: type[ModelPlugin]) -> None:
    """[a, c) = [a, b) followed by [b, c), for ranges before, across and after the training rows."""
    plugin = _causal_model(cls)
    for a, b, c in [(30, 400, 900), (1000, 1190, 1210), (1300, 1650, len(_causal_data()[0]))]:
        whole = _range_forecast(plugin, a, c)
        np.testing.assert_array_equal(np.concatenate([_range_forecast(plugin, a, b), _range_forecast(plugin, b, c)]), whole)


class _Peeking(ModelPlugin):
    """Reads the label of row t - horizon + 1, realised one row after t: must be caught."""

    key = "test.peeking"
    family = "machine_learning"
    short_name = "peeking"
    description = "test: a look-ahead"
    artifact_ext = "json"

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        pass

    def predict(self, timeline: Timeline) -> Prediction:
        y = np.nan_to_num(np.asarray(timeline.y, dtype=np.float64))
        rows = np.arange(timeline.start, len(timeline.X))
        return Prediction(y[np.clip(rows - timeline.horizon + 1, 0, None)])

    def to_bytes(self) -> bytes:
        return b"{}"

    @classmethod
    def from_bytes(cls, data: bytes, params: Any, seed: int = 0) -> _Peeking:
        return cls(params, seed)


def test_the_causality_check_catches_a_one_row_look_ahead() -> None:
    peeking = _Peeking.from_parameters({})
    assert _first_changed_row(peeking, 700) == 700


# --- invalid parameters --------------------------------------------------------------


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
def test_invalid_parameters_are_refused(cls: type[ModelPlugin]) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [("unknown", {"definitely_not_a_parameter": 1})]
    for name, prop in cls.Params.model_json_schema().get("properties", {}).items():
        cases.append((name, {name: [1]}))  # wrong type
        if prop.get("type") != "string" or "enum" in prop:
            cases.append((name, {name: "1"}))  # no lax coercion from strings
        cases.extend((name, {name: value}) for value in _out_of_range(prop))
    for label, raw in cases:
        with pytest.raises(InvalidInput) as excinfo:
            cls.from_parameters(raw)
        assert label == "unknown" or label in excinfo.value.message, raw


def _out_of_range(prop: dict[str, Any]) -> list[Any]:
    values: list[Any] = []
    for branch in prop.get("anyOf", [prop]):
        step = 1 if branch.get("type") == "integer" else 1e-3
        if "minimum" in branch:
            values.append(branch["minimum"] - step)
        if "exclusiveMinimum" in branch:
            values.append(branch["exclusiveMinimum"])
        if "maximum" in branch:
            values.append(branch["maximum"] + step)
        if "exclusiveMaximum" in branch:
            values.append(branch["exclusiveMaximum"])
        if "enum" in branch:
            values.append("not-a-choice")
    return values


# --- learning ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
def test_out_of_sample_predictions_follow_a_strong_linear_signal(cls: type[ModelPlugin]) -> None:
    mean = _predict(_fit(cls)).mean
    correlation = np.corrcoef(mean, data().y_test)[0, 1]
    assert correlation > MIN_CORRELATION.get(cls.family, LOOSE_CORRELATION), correlation


def test_short_names_are_unique_within_a_family() -> None:
    names = [(cls.family, cls.short_name) for cls in PLUGINS]
    assert len(names) == len(set(names))


# --- reproducible artifacts ----------------------------------------------------------

#: Ensemble members for the artifact-hash test: a CatBoost member covers the library whose
#: saved model used to embed a random model_guid and the training finish time.
REPRODUCIBILITY_MEMBERS: list[dict[str, Any]] = [
    {"plugin_key": "ml.ridge"},
    {"plugin_key": "ml.lightgbm", "parameters": {"n_estimators": 30}},
    {"plugin_key": "ml.catboost", "parameters": {"iterations": 30}},
]


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.key)
def test_identical_fits_give_the_same_artifact_sha256(cls: type[ModelPlugin]) -> None:
    params = {"members": REPRODUCIBILITY_MEMBERS} if cls.family == "ensemble" else {}
    first, second = _fit(cls, params), _fit(cls, params)
    assert hashlib.sha256(first.to_bytes()).hexdigest() == hashlib.sha256(second.to_bytes()).hexdigest()
