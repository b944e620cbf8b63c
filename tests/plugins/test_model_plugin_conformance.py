"""Every registered model plugin passes the conformance kit (alphaforge.plugins.testing.models):
one test per (check, plugin), per parameter for the parameter check, per row t for causality.

A plugin's exceptions to the checks' defaults (fast fits, alternates, contexts, expected
correlation) are declared on the plugin (``conformance``), not here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from alphaforge.plugins.models import ModelPlugin, Prediction, Timeline, model_plugins
from alphaforge.plugins.testing import (
    MODEL_CHECKS,
    ConformanceError,
    check_every_parameter_changes_predictions,
    check_no_forecast_reads_after_its_row,
)
from alphaforge.plugins.testing.models import CAUSAL_ROWS

PLUGINS = list(model_plugins)
#: Checks run whole per plugin; the other two get a test per parameter and per row t.
PER_PLUGIN = [c for c in MODEL_CHECKS if c not in (check_every_parameter_changes_predictions, check_no_forecast_reads_after_its_row)]


def _key(cls: type[ModelPlugin]) -> str:
    return cls.key


@pytest.mark.parametrize("cls", PLUGINS, ids=_key)
@pytest.mark.parametrize("check", PER_PLUGIN, ids=lambda c: c.__name__)
def test_model_check(check: Any, cls: type[ModelPlugin]) -> None:
    check(cls)


@pytest.mark.parametrize(
    ("cls", "name"),
    [(cls, name) for cls in PLUGINS for name in cls.Params.model_fields],
    ids=lambda v: v if isinstance(v, str) else v.key,
)
def test_every_parameter_changes_the_predictions(cls: type[ModelPlugin], name: str) -> None:
    check_every_parameter_changes_predictions(cls, name)


@pytest.mark.parametrize("cls", PLUGINS, ids=_key)
@pytest.mark.parametrize("t", CAUSAL_ROWS)
def test_no_forecast_reads_anything_after_its_row(cls: type[ModelPlugin], t: int) -> None:
    """Bars, features and labels after row t are perturbed: no forecast up to t may move
    (row 4: before the first realised label; 700: inside the training rows; 1500: after)."""
    check_no_forecast_reads_after_its_row(cls, t)


def test_short_names_are_unique_within_a_family() -> None:
    names = [(cls.family, cls.short_name) for cls in PLUGINS]
    assert len(names) == len(set(names))


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
    with pytest.raises(ConformanceError) as caught:
        check_no_forecast_reads_after_its_row(_Peeking, 700)
    assert list(caught.value.failures) == ["check_no_forecast_reads_after_its_row"]
    assert "the forecast of row 700 changed when only bars after row 700 did" in str(caught.value)
