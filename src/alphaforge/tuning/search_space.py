"""Search spaces: checked against a plugin's parameters before any trial, sampled with Optuna.

The system alphaforge replaces tuned parameters its plugins ignored and failed with a 500
on a bad space. Here every name must be a field of the plugin's ``Params``,
and every endpoint of a range (``low``, ``high``) and every categorical choice must be a
value that field accepts on its own (type and bounds, strictly: a float range on an
integer field is refused rather than silently rounded). Combinations a plugin refuses
only together (cross-field rules) are not knowable here: such a trial fails alone.
"""

from __future__ import annotations

import math
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from alphaforge.errors import InvalidInput
from alphaforge.plugins.models import ModelPlugin, ParamSpec

if TYPE_CHECKING:
    import optuna


def resolve_space(
    cls: type[ModelPlugin], param_space: dict[str, ParamSpec] | None, fixed_params: dict[str, Any]
) -> dict[str, ParamSpec]:
    """The space to sample (the plugin's default when None), checked with ``fixed_params``; 422s."""
    space = dict(cls.search_space if param_space is None else param_space)
    fields = cls.Params.model_fields
    valid = ", ".join(fields) or "none"
    unknown = [n for n in [*space, *fixed_params] if n not in fields]
    if unknown:
        raise InvalidInput(f"{cls.key} has no parameter(s) {', '.join(map(repr, unknown))} (valid: {valid})")
    both = sorted(set(space) & set(fixed_params))
    if both:
        raise InvalidInput(
            f"parameter(s) {', '.join(map(repr, both))} are both in param_space and fixed_params: "
            "a parameter is either sampled or fixed"
        )
    if not space:
        source = "the param_space given" if param_space is not None else f"{cls.key}'s default search space"
        raise InvalidInput(f"nothing to tune: {source} is empty; give param_space with at least one parameter")
    for name, spec in space.items():
        for value in _endpoints(name, spec):
            _check_value(cls, name, value, f"param_space.{name}: {value!r}")
    for name, value in fixed_params.items():
        _check_value(cls, name, value, f"fixed_params.{name}: {value!r}")
    missing = [n for n, f in fields.items() if f.is_required() and n not in space and n not in fixed_params]
    if missing:
        raise InvalidInput(f"{cls.key} requires {', '.join(map(repr, missing))}: give them in fixed_params")
    return space


def suggest(trial: optuna.Trial, name: str, spec: ParamSpec) -> Any:
    """One value for ``name`` from its spec (Optuna's suggest API)."""
    if spec.type == "categorical":
        return trial.suggest_categorical(name, spec.choices)  # type: ignore[arg-type]
    assert spec.low is not None and spec.high is not None
    if spec.type == "int":
        step = int(spec.step) if spec.step is not None else 1
        return trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log)
    return trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)


def sample(trial: optuna.Trial, space: dict[str, ParamSpec]) -> dict[str, Any]:
    return {name: suggest(trial, name, spec) for name, spec in space.items()}


def lowest(space: dict[str, ParamSpec]) -> dict[str, Any]:
    """One point of the space (low ends, first choices): a probe for submit-time checks."""
    point: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            point[name] = spec.choices[0]  # type: ignore[index]
        else:
            point[name] = int(spec.low) if spec.type == "int" else spec.low  # type: ignore[arg-type]
    return point


def _endpoints(name: str, spec: ParamSpec) -> list[Any]:
    if spec.type == "categorical":
        return list(spec.choices or [])
    if spec.type == "int":
        numbers = {"low": spec.low, "high": spec.high, "step": spec.step}
        fractional = {k: v for k, v in numbers.items() if v is not None and not float(v).is_integer()}
        if fractional:
            raise InvalidInput(
                f"param_space.{name}: an int range needs whole numbers, got "
                + ", ".join(f"{k}={v}" for k, v in fractional.items())
            )
        return [int(spec.low), int(spec.high)]  # type: ignore[arg-type]
    if not all(math.isfinite(v) for v in (spec.low, spec.high)):  # type: ignore[arg-type]
        raise InvalidInput(f"param_space.{name}: low and high must be finite numbers")
    return [spec.low, spec.high]


def _check_value(cls: type[ModelPlugin], name: str, value: Any, what: str) -> None:
    try:
        _adapter(cls, name).validate_python(value)
    except ValidationError as exc:
        problem = "; ".join(e["msg"] for e in exc.errors())
        raise InvalidInput(f"{what} is not a valid value of {cls.key}'s parameter {name!r}: {problem}") from None


@cache
def _adapter(cls: type[ModelPlugin], name: str) -> TypeAdapter[Any]:
    """A strict validator of one field alone: its type and its own bounds."""
    field = cls.Params.model_fields[name]
    annotation = Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
    return TypeAdapter(annotation, config=ConfigDict(strict=True))


def contains(spec: ParamSpec, value: Any) -> bool:
    """Whether ``value`` is a point the spec can sample (a warm start's enqueued value must be:
    Optuna would otherwise warn and sample a new one, silently)."""
    if spec.type == "categorical":
        return any(type(value) is type(c) and value == c for c in spec.choices or [])
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (spec.type == "int" and not isinstance(value, int)):
        return False
    low, high = spec.low, spec.high
    assert low is not None and high is not None
    if not low <= value <= high:
        return False
    if spec.step is None:
        return True
    steps = (value - low) / spec.step
    return math.isclose(steps, round(steps), abs_tol=1e-9)
