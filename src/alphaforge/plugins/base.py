"""What every plugin registry shares: validated parameters and a key -> class registry."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from alphaforge.errors import InvalidInput


class PluginParams(BaseModel):
    """Base of every plugin's parameter model: unknown names and lax coercions are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def validate_params(params_model: type[PluginParams], raw: dict[str, Any] | None, key: str) -> PluginParams:
    """Validate ``raw`` against a plugin's parameter model; a 422 that names each problem."""
    try:
        return params_model.model_validate(raw or {})
    except ValidationError as exc:
        raise InvalidInput(
            f"invalid parameters for {key}: {describe_validation_error(exc, params_model)}",
            errors=[{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()],
        ) from None


def describe_validation_error(exc: ValidationError, model: type[BaseModel]) -> str:
    valid = ", ".join(model.model_fields) or "none"
    parts = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "parameters"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown parameter {name!r} (valid: {valid})")
        else:
            parts.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


@cache
def library_version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not-installed"


P = TypeVar("P")


class Registry(Generic[P]):
    """Plugin classes by key. Registering a key twice is an error at import time."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._plugins: dict[str, type[P]] = {}

    def register(self, cls: type[P]) -> type[P]:
        key = cls.key  # type: ignore[attr-defined]
        if key in self._plugins:
            raise ValueError(f"duplicate {self.kind} plugin key {key!r}")
        self._plugins[key] = cls
        return cls

    def get(self, key: str) -> type[P]:
        try:
            return self._plugins[key]
        except KeyError:
            raise InvalidInput(
                f"unknown {self.kind} plugin {key!r}; registered: {', '.join(self.keys())}"
            ) from None

    def keys(self) -> list[str]:
        return sorted(self._plugins)

    def __contains__(self, key: object) -> bool:
        return key in self._plugins

    def __iter__(self) -> Iterator[type[P]]:
        return iter(self._plugins[k] for k in self.keys())
