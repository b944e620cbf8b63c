"""Training outputs set by hand: ``artifact_uri``, ``metrics`` and ``mlflow_run_id`` sent to
``PATCH /api/v1/models/{id}``.

The record lives in the model's ``lineage`` JSON, under ``"manual"``, beside the recipe it
amends. Training rewrites ``lineage`` whole, so a new training clears every hand edit
together with the outputs they replaced: the record can never outlive what it describes,
and needs no column of its own. Its layout::

    "manual": {
      "training": {"artifact_uri", "artifact_sha256", "metrics", "mlflow_run_id", "lineage"},
          # what the model's own training wrote (its outputs and its lineage without
          # "manual"), kept from the first hand edit on
      "fields": {"<field>": {"by": "<API key id>" | null, "at": "<UTC time>"}},
          # the outputs that hold a value set by hand now; artifact_uri's entry also says
          # where the recipe comes from ("recipe_from": a model id, or null: unknown)
      "history": [{"at", "by", "set": {...}, "replaced": {...}, "recipe_from"?}, ...],
          # every hand edit since the training, oldest first (the last HISTORY_MAX)
    }

The rest of the lineage (plugin, parameters, seed, features, columns, dataset) is the
recipe prediction recomputes the features with and loads the artifact with. Linking an
artifact whose training alphaforge knows (its SHA-256 is a training's artifact on a model
row) puts that training's recipe in its place, so prediction feeds the artifact what it was
trained on; linking bytes it does not know keeps the recipe (the caller vouches that they
fit it). A value equal to what the model's own training wrote makes that field the
training's again: it leaves ``fields`` (the history keeps the edit), and linking the
training's artifact back restores its recipe.

This module only reads and builds JSON; nothing here touches the database or a store.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any, Literal

#: The fields of ModelUpdate that amend a training; artifact_sha256 goes with artifact_uri.
MANUAL_FIELDS = ("artifact_uri", "metrics", "mlflow_run_id")
#: The training outputs a hand edit may replace (artifact_sha256 is computed, never sent).
OUTPUT_COLUMNS = ("artifact_uri", "artifact_sha256", "metrics", "mlflow_run_id")
HISTORY_MAX = 50
KEY = "manual"


def manual_of(lineage: dict[str, Any] | None) -> dict[str, Any]:
    """The hand-edit record of a lineage ({} when there is none)."""
    if not lineage:
        return {}
    return lineage.get(KEY) or {}


def recipe_of(lineage: dict[str, Any]) -> dict[str, Any]:
    """The lineage without its hand-edit record: what prediction reads."""
    return {k: v for k, v in lineage.items() if k != KEY}


def manual_fields(lineage: dict[str, Any] | None) -> list[str]:
    """The training outputs that hold a value set by hand, sorted."""
    return sorted(manual_of(lineage).get("fields") or {})


def recipe_describes_artifact(lineage: dict[str, Any] | None) -> bool:
    """Does the lineage's recipe say how the row's artifact was trained? Yes for the
    training's own artifact and for one linked with the recipe of its training."""
    if lineage is None:
        return False
    link = (manual_of(lineage).get("fields") or {}).get("artifact_uri")
    return link is None or link.get("recipe_from") is not None


def training_artifact(lineage: dict[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """The SHA-256 and recipe of the model's own training, when hand edits replaced them."""
    training = manual_of(lineage).get("training")
    if not training:
        return None
    return training["artifact_sha256"], training["lineage"]


def metrics_source(lineage: dict[str, Any] | None) -> Literal["cv", "manual"] | None:
    """"manual" when ``metrics`` was set by hand, "cv" when it is the training's CV
    summary, None when the model was never trained."""
    if lineage is None:
        return None
    return "manual" if "metrics" in manual_fields(lineage) else "cv"


def cv_metrics(lineage: dict[str, Any] | None, metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The CV summary of the model's last training, whatever ``metrics`` shows now."""
    if lineage is None:
        return None
    training = manual_of(lineage).get("training")
    return dict(training["metrics"]) if training else dict(metrics)


def record(
    lineage: dict[str, Any],
    current: dict[str, Any],
    new: dict[str, Any],
    *,
    by: str | None,
    at: datetime,
    recipe: dict[str, Any] | None = None,
    recipe_from: str | None = None,
) -> dict[str, Any]:
    """A new lineage recording one hand edit.

    ``current`` holds the row's ``OUTPUT_COLUMNS`` before the edit, ``new`` the columns it
    sets (``artifact_sha256`` along with ``artifact_uri``); ``by`` is the acting key's id.
    ``recipe``: the recipe of the training that produced a linked artifact (``recipe_from``:
    the model whose row recorded it); None keeps the lineage's recipe.
    """
    manual = manual_of(lineage)
    training = copy.deepcopy(manual.get("training")) or {
        **{name: copy.deepcopy(current[name]) for name in OUTPUT_COLUMNS},
        "lineage": copy.deepcopy(recipe_of(lineage)),
    }
    fields = copy.deepcopy(manual.get("fields") or {})
    when = at.isoformat().replace("+00:00", "Z")
    for name in MANUAL_FIELDS:
        if name not in new:
            continue
        columns = ("artifact_uri", "artifact_sha256") if name == "artifact_uri" else (name,)
        if all(new[column] == training[column] for column in columns):
            fields.pop(name, None)  # the training's own value again
        else:
            fields[name] = {"by": by, "at": when}
            if name == "artifact_uri":
                fields[name]["recipe_from"] = recipe_from
    entry: dict[str, Any] = {
        "at": when,
        "by": by,
        "set": {column: copy.deepcopy(new[column]) for column in OUTPUT_COLUMNS if column in new},
        "replaced": {column: copy.deepcopy(current[column]) for column in OUTPUT_COLUMNS if column in new},
    }
    if "artifact_uri" in new:
        entry["recipe_from"] = recipe_from
    history = [*(manual.get("history") or []), entry][-HISTORY_MAX:]
    out = copy.deepcopy(recipe if recipe is not None else recipe_of(lineage))
    out[KEY] = {"training": training, "fields": fields, "history": history}
    return out
