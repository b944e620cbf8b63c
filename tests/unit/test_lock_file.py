"""requirements.lock pins every dependency pyproject.toml names, inside its ranges; under
CI the environment the suite runs in is exactly the lock's (make installs from it)."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from support import CI, locked_versions

ROOT = Path(__file__).resolve().parents[2]


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        texts += [t for t in extra if not t.startswith("alphaforge[")]
    return [Requirement(t) for t in texts]


def test_every_declared_dependency_is_locked_inside_its_range() -> None:
    locked = locked_versions()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is in pyproject.toml but not in requirements.lock: run make lock"
        assert requirement.specifier.contains(Version(locked[name]), prereleases=True), (
            f"requirements.lock pins {requirement.name}=={locked[name]}, outside pyproject.toml's {requirement.specifier}"
        )


def test_under_ci_the_installed_versions_are_the_locked_ones() -> None:
    if not CI:
        pytest.skip("a developer's environment may differ on purpose (a new release tried); CI=true checks it")
    wrong = {}
    for name, pinned in locked_versions().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            wrong[name] = (pinned, installed)
    assert wrong == {}, f"installed versions differ from requirements.lock (locked, installed): {wrong}"
