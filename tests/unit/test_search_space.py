"""Search spaces: every plugin's default space is valid for its own parameters, sampling stays
inside bounds, steps and choices, and bad spaces are refused before any trial (422)."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaforge.errors import InvalidInput
from alphaforge.plugins.models import ModelPlugin, ParamSpec, model_plugins
from alphaforge.tuning.search_space import lowest, resolve_space, sample
from alphaforge.tuning.tuner import resolve_objective

optuna.logging.set_verbosity(optuna.logging.WARNING)

PLUGINS_WITH_SPACE = [cls for cls in model_plugins if cls.search_space]


def _samples(space: dict[str, ParamSpec], n: int, sampler: optuna.samplers.BaseSampler) -> list[dict[str, Any]]:
    study = optuna.create_study(sampler=sampler)
    points = []
    for i in range(n):
        trial = study.ask()
        points.append(sample(trial, space))
        study.tell(trial, float(i % 3))  # some history, so TPE leaves its start-up phase
    return points


def _assert_in_space(value: Any, spec: ParamSpec) -> None:
    if spec.type == "categorical":
        assert any(value == c and type(value) is type(c) for c in spec.choices), (value, spec.choices)
        return
    assert spec.low is not None and spec.high is not None
    assert spec.low - 1e-12 <= value <= spec.high + 1e-12, (value, spec)
    if spec.type == "int":
        assert isinstance(value, int) and not isinstance(value, bool)
        if spec.step is not None:
            assert (value - int(spec.low)) % int(spec.step) == 0
    else:
        assert isinstance(value, float)
        if spec.step is not None:
            k = (value - spec.low) / spec.step
            assert math.isclose(k, round(k), abs_tol=1e-6), (value, spec)


@pytest.mark.parametrize("cls", PLUGINS_WITH_SPACE, ids=lambda c: c.key)
def test_default_space_samples_validate_through_the_plugins_params(cls: type[ModelPlugin]) -> None:
    space = resolve_space(cls, None, {})
    assert set(space) <= set(cls.Params.model_fields)  # only parameters the plugin has
    for sampler in (optuna.samplers.RandomSampler(seed=1), optuna.samplers.TPESampler(seed=1, n_startup_trials=5)):
        for point in _samples(space, 15, sampler):
            for name, value in point.items():
                _assert_in_space(value, space[name])
            cls.from_parameters(point)  # strict validation: types and bounds
    cls.from_parameters(lowest(space))


def test_a_plugin_without_a_default_space_has_nothing_to_tune() -> None:
    empty = [cls for cls in model_plugins if not cls.search_space]
    assert empty, "ensemble.mean has no default space"
    with pytest.raises(InvalidInput, match="nothing to tune"):
        resolve_space(empty[0], None, {})


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=8),
                    st.floats(allow_nan=False, allow_infinity=False, width=32))


@st.composite
def specs(draw: st.DrawFn) -> ParamSpec:
    kind = draw(st.sampled_from(["int", "float", "categorical"]))
    if kind == "categorical":
        return ParamSpec(type="categorical", choices=draw(st.lists(scalars, min_size=1, max_size=5, unique_by=repr)))
    log = draw(st.booleans())
    low = draw(st.integers(1 if log else -1000, 1000))
    high = low + draw(st.integers(0, 1000))
    step = None if log else draw(st.one_of(st.none(), st.integers(1, 50)))
    if kind == "int":
        return ParamSpec(type="int", low=low, high=high, log=log, step=step)
    scale = draw(st.sampled_from([1.0, 0.01]))
    fstep = None if step is None else step * scale
    return ParamSpec(type="float", low=low * scale, high=high * scale, log=log, step=fstep)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=st.dictionaries(st.sampled_from(["a", "b", "c"]), specs(), min_size=1), seed=st.integers(0, 2**16))
def test_sampled_values_stay_within_bounds_steps_and_choices(space: dict[str, ParamSpec], seed: int) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna warns when high is not on the step grid, and adjusts it
        points = _samples(space, 12, optuna.samplers.TPESampler(seed=seed, n_startup_trials=4))
    for point in points:
        assert set(point) == set(space)
        for name, value in point.items():
            _assert_in_space(value, space[name])


RIDGE = model_plugins.get("ml.ridge")
LGBM = model_plugins.get("ml.lightgbm")
FOREST = model_plugins.get("ml.random_forest")


@pytest.mark.parametrize(
    ("cls", "space", "fixed", "message"),
    [
        (RIDGE, {"depth": ParamSpec(type="int", low=1, high=3)}, {}, "has no parameter.*'depth'.*valid: alpha, fit_intercept"),
        (RIDGE, {"alpha": ParamSpec(type="float", low=0.1, high=1)}, {"alpha": 1.0}, "both in param_space and fixed_params"),
        (RIDGE, {"alpha": ParamSpec(type="float", low=0.0, high=1)}, {}, "param_space.alpha: 0.0 .*greater than 0"),
        (LGBM, {"num_leaves": ParamSpec(type="float", low=16, high=64)}, {}, "num_leaves.*valid integer"),
        (LGBM, {"num_leaves": ParamSpec(type="int", low=16.5, high=64)}, {}, "whole numbers.*low=16.5"),
        (RIDGE, {"fit_intercept": ParamSpec(type="categorical", choices=[True, 1])}, {}, "fit_intercept.*valid boolean"),
        (FOREST, {"max_depth": ParamSpec(type="int", low=3, high=200)}, {}, "max_depth: 200 .*less than or equal to 100"),
        (RIDGE, {"alpha": ParamSpec(type="float", low=0.1, high=1)}, {"fit_intercept": "yes"}, "fixed_params.fit_intercept"),
        (RIDGE, {}, {}, "nothing to tune"),
    ],
)
def test_bad_spaces_are_refused_naming_the_parameter(
    cls: type[ModelPlugin], space: dict, fixed: dict, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolve_space(cls, space, fixed)


def test_categorical_choices_may_be_any_json_scalar_the_field_accepts() -> None:
    forest = resolve_space(FOREST, {"max_depth": ParamSpec(type="categorical", choices=[None, 3, 8])}, {})
    for point in _samples(forest, 10, optuna.samplers.RandomSampler(seed=0)):
        assert point["max_depth"] in (None, 3, 8)
        FOREST.from_parameters(point)


@pytest.mark.parametrize(
    ("metric", "direction", "expected"),
    [
        ("mean_mse", None, ("mean_mse", "minimize")),
        ("mean_mae", None, ("mean_mae", "minimize")),
        ("directional_accuracy", None, ("directional_accuracy", "maximize")),
        ("mean_directional_accuracy", None, ("directional_accuracy", "maximize")),
        ("mean_ic", None, ("mean_ic", "maximize")),
        ("mean_rank_ic", None, ("mean_rank_ic", "maximize")),
        ("mean_mse", "maximize", ("mean_mse", "maximize")),
        ("mean_ic", "minimize", ("mean_ic", "minimize")),
    ],
)
def test_direction_follows_the_metric_unless_given(metric: str, direction: Any, expected: tuple[str, str]) -> None:
    objective = resolve_objective(metric, direction)
    assert (objective.metric, objective.direction) == expected


def test_unknown_metric_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidInput, match="unknown metric 'sharpe'.*mean_mse.*mean_rank_ic"):
        resolve_objective("sharpe")
