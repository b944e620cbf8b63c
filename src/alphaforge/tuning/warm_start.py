"""Warm starts: a new study begins with the best parameters an earlier study found.

The earlier study's best complete trials (``warm_start_trials`` of them, best first) are
enqueued (``Study.enqueue_trial``) before any worker asks for a trial, so they are the new
study's first trials and count against its ``n_trials``. Only a study of the same plugin
qualifies, and every value must be a point of the new search space: Optuna would otherwise
warn and sample another value, and the "warm start" would silently not be one. Both are
422s naming ``warm_start_from``. The lineage (the earlier study and its trial numbers) is
kept in the new study's configuration attribute and shown by ``GET /api/v1/studies/{id}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alphaforge.context import Context
from alphaforge.errors import InvalidInput
from alphaforge.plugins.models import ParamSpec
from alphaforge.schemas.tuning import TuneRequest
from alphaforge.tuning import catalog, search_space


@dataclass(frozen=True)
class WarmStart:
    study_id: int
    #: (trial number in the earlier study, the values to enqueue: the new space's names only)
    trials: list[tuple[int, dict[str, Any]]]


def resolve(ctx: Context, request: TuneRequest, space: dict[str, ParamSpec]) -> WarmStart | None:
    """The trials to enqueue for ``request.warm_start_from`` (None without one); 404 for an
    unknown study, 422 for another plugin's study, one without a complete trial, or values
    outside ``space``."""
    if request.warm_start_from is None:
        return None
    earlier = catalog.get_study(ctx, request.warm_start_from)
    if earlier.plugin_key != request.plugin_key:
        raise InvalidInput(
            f"warm_start_from: study {earlier.study_id} tuned {earlier.plugin_key or 'an unknown plugin'}, not "
            f"{request.plugin_key}: warm-start from a study of the same plugin", field="warm_start_from",
        )
    order: catalog.Order = "desc" if earlier.direction == "maximize" else "asc"
    best = catalog.list_trials(ctx, earlier.study_id, request.warm_start_trials, 0, "score", order, ["COMPLETE"]).items
    if not best:
        raise InvalidInput(
            f"warm_start_from: study {earlier.study_id} has no complete trial to start from", field="warm_start_from"
        )
    trials = []
    for trial in best:
        values = {}
        for name, spec in space.items():
            value = trial.params.get(name)
            if name not in trial.params or not search_space.contains(spec, value):
                raise InvalidInput(
                    f"warm_start_from: trial {trial.number} of study {earlier.study_id} has {name}={value!r}, outside "
                    f"this study's search space ({_describe(spec)}): widen param_space.{name} or warm-start from "
                    "another study", field="warm_start_from",
                )
            values[name] = value
        trials.append((trial.number, values))
    return WarmStart(study_id=earlier.study_id, trials=trials)


def _describe(spec: ParamSpec) -> str:
    if spec.type == "categorical":
        return f"choices {spec.choices}"
    return f"{spec.type} {spec.low}..{spec.high}" + (f" step {spec.step}" if spec.step is not None else "")
