"""The contract every model plugin must honour, as checks a plugin author runs.

``check_model_plugin(MyPlugin)`` runs every check in :data:`MODEL_CHECKS`; each is also a
function of its own (``check_same_seed_same_predictions(MyPlugin)`` …), so a test suite can
run one per test. A failure is a :class:`~alphaforge.plugins.testing.ConformanceError` (an
AssertionError) that names the check. What a plugin needs beyond the checks' defaults (fewer
trees, a parameter value that binds) it declares on itself:
:class:`~alphaforge.plugins.models.ModelConformance`, its ``conformance`` tag.

Data: 400 seeded rows of 4 features (one price-like, one volume-sized) with a known linear
signal plus noise, at the scale of daily returns; the first 300 rows train, the last 100
test. The panel check reads the same rows as 3 symbols over 134 dates. Causality is checked on the real GSPC bars (see the section below). Fitted models
the checks reuse are cached per class for the process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from alphaforge.errors import InvalidInput
from alphaforge.plugins.models import (
    MODEL_FAMILIES,
    ModelPlugin,
    PanelIndex,
    Prediction,
    Timeline,
    forecast_panel,
    model_plugins,
    resolve_model_type,
)
from alphaforge.plugins.testing._core import conformance_check, require, run_checks
from alphaforge.plugins.testing.data import gspc_bars

#: Every key starts with its family's prefix.
FAMILY_PREFIX = {"statistical": "stat.", "machine_learning": "ml.", "deep_learning": "dl.", "ensemble": "ensemble."}


@dataclass(frozen=True)
class Data:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


@cache
def data() -> Data:
    """The seeded rows every fit/predict check uses (see the module)."""
    rng = np.random.default_rng(7)
    z = rng.normal(size=(400, 4))
    y = 0.004 * (z[:, 0] - 0.5 * z[:, 1] + 0.25 * z[:, 2]) + 0.004 * rng.normal(size=400)
    X = np.column_stack([z[:, 0], z[:, 1], 1e6 * z[:, 2], 4000 + 50 * z[:, 3]])
    return Data(X[:300], y[:300], X[300:], y[300:])


def _fit(cls: type[ModelPlugin], params: dict[str, Any] | None = None, seed: int = 3) -> ModelPlugin:
    plugin = cls.from_parameters({**cls.conformance.fast, **(params or {})}, seed=seed)
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


@conformance_check
def check_model_conformance_tags(cls: type[ModelPlugin]) -> None:
    """The ``conformance`` tag names parameters the plugin has, and its ``fast`` settings are valid."""
    tags = cls.conformance
    fields = set(cls.Params.model_fields)
    for label, names in (
        ("fast", tags.fast),
        ("alternates", tags.alternates),
        ("contexts", tags.contexts),
        ("artifact_parameters", tags.artifact_parameters),
    ):
        unknown = sorted(set(names) - fields)
        require(not unknown, f"conformance.{label} names parameters {unknown} that {cls.__name__}.Params lacks")
    for name, context in tags.contexts.items():
        unknown = sorted(set(context) - fields)
        require(not unknown, f"conformance.contexts[{name!r}] names parameters {unknown} that Params lacks")
    require(_valid(cls, dict(tags.fast)), f"conformance.fast {dict(tags.fast)} is refused by {cls.__name__}.Params")


@conformance_check
def check_model_metadata(cls: type[ModelPlugin]) -> None:
    """Metadata complete and JSON-serialisable; registered, and found by its short name."""
    meta = json.loads(json.dumps(cls.describe()))
    require(meta["family"] in MODEL_FAMILIES, f"family {meta['family']!r} is none of {MODEL_FAMILIES}")
    prefix = FAMILY_PREFIX[cls.family]
    require(meta["key"] == cls.key and cls.key.startswith(prefix), f"key {cls.key!r} must start with {prefix!r}")
    require(meta["short_name"] and meta["description"], "short_name and description must not be empty")
    require(isinstance(meta["version"], str), f"version must be a string, got {meta['version']!r}")
    require(
        meta["artifact_format"] and "." not in meta["artifact_format"],
        f"artifact_ext must be an extension without the dot, got {meta['artifact_format']!r}",
    )
    schema = meta["parameters"]
    require(
        schema["type"] == "object" and schema.get("additionalProperties") is False,
        "Params must refuse unknown names (subclass alphaforge.plugins.base.PluginParams)",
    )
    for name, spec in schema.get("properties", {}).items():
        require("default" in spec, f"{cls.key}.{name} has no default")
    require(
        meta["libraries"] and all(v != "not-installed" for v in meta["libraries"].values()),
        f"libraries must name installed distributions, got {meta['libraries']}",
    )
    require(
        cls.key in model_plugins and model_plugins.get(cls.key) is cls,
        f"{cls.key!r} is not registered: decorate the class with @model_plugins.register",
    )
    same_name = [c.key for c in model_plugins if c.family == cls.family and c.short_name == cls.short_name]
    require(same_name == [cls.key], f"short name {cls.short_name!r} is shared within {cls.family}: {same_name}")
    require(resolve_model_type(cls.short_name, cls.family) is cls, f"{cls.short_name!r} resolves to another plugin")


@conformance_check
def check_search_space(cls: type[ModelPlugin]) -> None:
    """Every search-space dimension is a parameter, and each end of its range is a valid value."""
    unknown = sorted(set(cls.search_space) - set(cls.Params.model_fields))
    require(not unknown, f"search_space names parameters {unknown} that Params lacks")
    for name, spec in cls.search_space.items():
        if spec.type == "categorical":
            points: list[Any] = list(spec.choices or [])
        else:
            cast = int if spec.type == "int" else float
            points = [cast(spec.low), cast(spec.high)]
        for value in points:
            require(_valid(cls, {name: value}), f"search space point {name}={value!r} is refused")


@conformance_check
def check_invalid_parameters_refused(cls: type[ModelPlugin]) -> None:
    """Unknown names, wrong types, strings for numbers and out-of-range values are InvalidInput naming the parameter."""
    cases: list[tuple[str, dict[str, Any]]] = [("unknown", {"definitely_not_a_parameter": 1})]
    for name, prop in cls.Params.model_json_schema().get("properties", {}).items():
        cases.append((name, {name: [1]}))  # wrong type
        if prop.get("type") != "string" or "enum" in prop:
            cases.append((name, {name: "1"}))  # no lax coercion from strings
        cases.extend((name, {name: value}) for value in _out_of_range(prop))
    for label, raw in cases:
        try:
            cls.from_parameters(raw)
        except InvalidInput as exc:
            require(label == "unknown" or label in exc.message, f"the error for {raw} does not name {label!r}: {exc.message}")
        else:
            raise AssertionError(f"parameters {raw} were accepted")


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


# --- fit / predict -------------------------------------------------------------------


@conformance_check
def check_predictions_finite(cls: type[ModelPlugin]) -> None:
    """Every forecast series is finite float64, one value per row asked (100 rows, and 1)."""
    plugin = _fit(cls)
    for X in (data().X_test, data().X_test[:1]):
        prediction = _predict(plugin, X)
        for name, values in {"mean": prediction.mean, **prediction.extras}.items():
            require(
                isinstance(values, np.ndarray) and values.dtype == np.float64,
                f"{name} must be a float64 ndarray, got {type(values).__name__} {getattr(values, 'dtype', '')}",
            )
            require(values.shape == (len(X),), f"{name} has shape {values.shape} for {len(X)} rows")
            require(np.isfinite(values).all(), f"{name} holds non-finite values")


@conformance_check
def check_rows_of_another_width_refused(cls: type[ModelPlugin]) -> None:
    """An artifact fed the wrong number of feature columns (say, linked by hand to another
    model's features) must fail, never broadcast one column and predict nonsense."""
    plugin = _fit(cls)
    narrow = np.concatenate([data().X_train, data().X_test])[:, :1]  # one column broadcasts
    try:
        plugin.predict(Timeline(narrow, horizon=1, start=len(data().X_train)))
    except Exception:  # noqa: BLE001 - any error will do, a silent answer will not
        return
    raise AssertionError("rows of 1 feature were forecast by a model fitted on 4: refuse them (see check_width)")


@conformance_check
def check_same_seed_same_predictions(cls: type[ModelPlugin]) -> None:
    """Two fits with the same parameters and seed forecast exactly the same."""
    first, second = _outputs(_predict(_fit(cls))), _outputs(_predict(_fit(cls)))
    differ = int((first != second).sum())
    require(differ == 0, f"two fits with seed 3 disagree on {differ} of {len(first)} forecasts")


@conformance_check
def check_artifact_round_trip(cls: type[ModelPlugin]) -> None:
    """``from_bytes(to_bytes())`` forecasts exactly as the fitted model; identical fits, identical bytes."""
    first, second = _fit(cls), _fit(cls)
    data_bytes = first.to_bytes()
    require(isinstance(data_bytes, bytes) and data_bytes, "to_bytes must return non-empty bytes")
    restored = cls.from_bytes(data_bytes, first.params, seed=first.seed)
    require(
        np.array_equal(_outputs(_predict(restored)), _outputs(_predict(first))),
        "the model rebuilt from its artifact forecasts differently",
    )
    require(second.to_bytes() == data_bytes, "identical fits must give identical artifacts")


@conformance_check
def check_identical_artifact_sha256(cls: type[ModelPlugin]) -> None:
    """Identical fits store one SHA-256 (under the tag's ``artifact_parameters``)."""
    params = dict(cls.conformance.artifact_parameters)
    first, second = _fit(cls, params), _fit(cls, params)
    a, b = hashlib.sha256(first.to_bytes()).hexdigest(), hashlib.sha256(second.to_bytes()).hexdigest()
    require(a == b, f"identical fits stored artifacts {a[:12]}… and {b[:12]}… (parameters {params})")


@conformance_check
def check_every_parameter_changes_predictions(cls: type[ModelPlugin], name: str | None = None) -> None:
    """Each parameter (or only ``name``) reaches the estimator: changing it changes the forecasts.

    The value tried is the tag's ``alternates[name]`` or, failing that, an automatic one
    (another enum value, the flipped bool, a nearby number), under ``contexts[name]``.
    """
    for param in [name] if name is not None else list(cls.Params.model_fields):
        _check_parameter_binds(cls, param)


def _check_parameter_binds(cls: type[ModelPlugin], name: str) -> None:
    tags = cls.conformance
    require(name in cls.Params.model_fields, f"{cls.key} has no parameter {name!r}")
    context = dict(tags.contexts.get(name, {}))
    current = getattr(cls.from_parameters({**tags.fast, **context}).params, name)
    value = tags.alternates[name] if name in tags.alternates else _automatic_alternate(cls, name, current)
    require(
        value is not _NO_ALTERNATE,
        f"no automatic alternate for {cls.key}.{name}: declare one in conformance.alternates",
    )
    require(value != current, f"conformance.alternates[{name!r}] equals the value it should differ from")
    base = _outputs(_predict(_fit(cls, context))) if context else _base_outputs(cls)
    changed = _outputs(_predict(_fit(cls, {**context, name: value})))
    require(
        not np.allclose(changed, base, rtol=1e-7, atol=1e-12),
        f"{name}={value!r} predicts the same as {current!r} (declare a value that binds in conformance.alternates, "
        "or the settings under which it does in conformance.contexts)",
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
        if value != current and _valid(cls, {**cls.conformance.fast, name: value}):
            return value
    return _NO_ALTERNATE


@conformance_check
def check_learns_a_linear_signal(cls: type[ModelPlugin]) -> None:
    """Out-of-sample forecasts follow a strong linear signal (the tag's ``min_correlation``,
    else the family's)."""
    mean = _predict(_fit(cls)).mean
    correlation = float(np.corrcoef(mean, data().y_test)[0, 1])
    expected = cls.conformance.expected_correlation(cls.family)
    require(correlation > expected, f"out-of-sample correlation {correlation:.3f}, expected above {expected}")


# --- panels ------------------------------------------------------------------------------


def _panel_index() -> PanelIndex:
    """The kit's 400 rows as a panel sorted by (date, symbol): row r is symbol r % 3 on date
    r // 3, so the 300 training rows are dates 0 … 99 and the last date has one symbol."""
    rows = np.arange(len(data().X_train) + len(data().X_test))
    return PanelIndex(rows // 3, rows % 3, horizon=1)


def _panel_forecast(plugin: ModelPlugin, X: np.ndarray) -> np.ndarray:
    """Forecasts of the panel's test rows (dates 100 …), each symbol from its own rows."""
    known = np.concatenate([data().y_train, np.full(len(data().X_test), np.nan)])
    return forecast_panel(plugin, X, known, _panel_index(), start=len(data().X_train))


@conformance_check
def check_fits_a_panel(cls: type[ModelPlugin]) -> None:
    """A plugin that ``pools_symbols`` fits a panel, ``fit_panel(X, y, panel)``: one series given as a
    panel fits exactly as the plain fit; the same panel twice, the same forecasts; and each
    symbol's forecasts (``forecast_panel``) read only its own rows up to its date: another
    symbol's rows, or any row after a date, changed, none of them moves. (A plugin that does
    not pool is never given a panel: nothing to check.)"""
    fast = dict(cls.conformance.fast)
    if not cls.from_parameters(fast, seed=3).pools_symbols():
        return
    n_train = len(data().X_train)
    one = cls.from_parameters(fast, seed=3)
    one.fit_panel(data().X_train, data().y_train, PanelIndex.one_series(n_train))
    require(
        np.array_equal(_outputs(_predict(one)), _base_outputs(cls)),
        "fitted on one series given as a panel (PanelIndex.one_series), it forecasts differently than fitted on the series",
    )
    index = _panel_index()
    X = np.concatenate([data().X_train, data().X_test])
    fits = []
    for _ in range(2):
        plugin = cls.from_parameters(fast, seed=3)
        plugin.fit_panel(data().X_train, data().y_train, index.take(np.arange(n_train)))
        fits.append(plugin)
    base = _panel_forecast(fits[0], X)
    require(base.shape == (len(X) - n_train,) and np.isfinite(base).all(), f"panel forecasts {base.shape}, not all finite")
    require(np.array_equal(_panel_forecast(fits[1], X), base), "two fits on the same panel with seed 3 forecast differently")
    rng = np.random.default_rng(11)
    tested = index.take(np.arange(n_train, len(X)))
    for changed, kept, what in (
        (index.series == 1, tested.series != 1, "symbol 1's rows"),
        (index.dates > 116, tested.dates <= 116, "every row after date 116"),
    ):
        other = X.copy()
        other[changed] *= np.exp(rng.normal(0.0, 0.5, size=(int(changed.sum()), X.shape[1])))
        moved = _panel_forecast(fits[0], other)
        differs = np.flatnonzero(moved[kept] != base[kept])
        require(not len(differs), f"changing {what} moved {len(differs)} forecasts of rows it may not reach")


# --- causality, on the real GSPC bars --------------------------------------------------
#
# One rule for every plugin (plugins.models.base.Timeline): the forecast for row t reads
# feature rows up to t and labels realised by t, nothing else, and never depends on the
# range asked for. Features here are simple trailing transforms of the bars, labels the
# forward return over HORIZON bars, as the service builds them.

HORIZON = 3
CAUSAL_SPAN = ("2005-01-01", "2013-01-01")
CAUSAL_TRAIN_ROWS = 1200
#: Rows t checked: before the first realised label, inside the training rows, after them.
CAUSAL_ROWS = (4, 700, 1500)


def _gspc_bars() -> pd.DataFrame:
    return gspc_bars().loc[CAUSAL_SPAN[0] : CAUSAL_SPAN[1]]


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
    plugin = cls.from_parameters(dict(cls.conformance.fast), seed=5)
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


def first_changed_row(plugin: ModelPlugin, t: int) -> int | None:
    """Forecast every row before and after perturbing all bars after row t (features and
    labels with them); the first row up to t whose forecast changed (None: none did)."""
    features, target = _causal_data()
    base = _forecast(plugin, features, target)
    changed_features, changed_target = _timeline_frame(_perturbed_after(_gspc_bars(), features.index[t], seed=t))
    # The perturbation itself: same rows, and every label not realised by t changed.
    require(changed_features.index.equals(features.index), "kit: the perturbation changed the rows")
    unrealised = slice(t - HORIZON + 1, -HORIZON)
    require(
        not np.allclose(changed_target.to_numpy()[unrealised], target.to_numpy()[unrealised]),
        "kit: the perturbation left the labels after t unchanged",
    )
    after = _forecast(plugin, changed_features, changed_target)
    differs = np.flatnonzero(~(after[: t + 1] == base[: t + 1]).all(axis=1))
    return int(differs[0]) if len(differs) else None


@conformance_check
def check_no_forecast_reads_after_its_row(cls: type[ModelPlugin], t: int | None = None) -> None:
    """Bars, features and labels after row t are perturbed: no forecast up to t may move
    (t in :data:`CAUSAL_ROWS`, or only ``t``)."""
    plugin = _causal_model(cls)
    for row in CAUSAL_ROWS if t is None else (t,):
        changed = first_changed_row(plugin, row)
        require(
            changed is None,
            f"the forecast of row {changed} changed when only bars after row {row} did (a look-ahead: it reads "
            f"feature rows after its own or labels not realised by it; see Timeline)",
        )


def _range_forecast(plugin: ModelPlugin, a: int, c: int) -> np.ndarray:
    """Forecasts for rows [a, c) as the service makes them for a request of that range:
    the rows the plugin reads before a (all for filters), labels realised before c only."""
    features, target = _causal_data()
    history = plugin.history_rows()
    first = 0 if history is None else max(a - history, 0)
    known = target.to_numpy()[first:c].copy()
    known[max(c - first - HORIZON, 0) :] = np.nan  # realised after the range ends
    return _forecast(plugin, features.iloc[first:c], pd.Series(known), start=a - first)


@conformance_check
def check_forecasts_independent_of_range(cls: type[ModelPlugin]) -> None:
    """[a, c) = [a, b) followed by [b, c), for ranges before, across and after the training rows."""
    plugin = _causal_model(cls)
    for a, b, c in [(30, 400, 900), (1000, 1190, 1210), (1300, 1650, len(_causal_data()[0]))]:
        whole = _range_forecast(plugin, a, c)
        np.testing.assert_array_equal(
            np.concatenate([_range_forecast(plugin, a, b), _range_forecast(plugin, b, c)]),
            whole,
            err_msg=f"forecasts over [{a}, {c}) differ from [{a}, {b}) followed by [{b}, {c})",
        )


#: Every model check, cheapest first; each takes the plugin class alone.
MODEL_CHECKS = (
    check_model_conformance_tags,
    check_model_metadata,
    check_search_space,
    check_invalid_parameters_refused,
    check_predictions_finite,
    check_rows_of_another_width_refused,
    check_same_seed_same_predictions,
    check_artifact_round_trip,
    check_identical_artifact_sha256,
    check_learns_a_linear_signal,
    check_every_parameter_changes_predictions,
    check_fits_a_panel,
    check_no_forecast_reads_after_its_row,
    check_forecasts_independent_of_range,
)


def check_model_plugin(cls: type[ModelPlugin]) -> None:
    """Run every model check on ``cls`` (a registered :class:`ModelPlugin` subclass); a
    :class:`~alphaforge.plugins.testing.ConformanceError` naming each check that failed."""
    run_checks(cls, MODEL_CHECKS)
