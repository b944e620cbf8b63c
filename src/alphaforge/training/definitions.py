"""Model definitions: create, read, update (optimistic lock), delete (with artifacts).

An update may also set a trained model's outputs by hand (``artifact_uri``, ``metrics``,
``mlflow_run_id``): each is checked against what it names (the object in the store, the
run in MLflow) and recorded in the lineage with the key that set it (see manual_links).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import object_session

from alphaforge import actor
from alphaforge.context import Context
from alphaforge.errors import Conflict, InvalidInput, NotFound
from alphaforge.plugins.models import ModelPlugin, model_plugins, resolve_model_type
from alphaforge.schemas.models import ModelCreate, ModelRead, ModelUpdate
from alphaforge.training import manual_links
from alphaforge.storage.definitions import get_definition, list_definitions, requested_changes, update_definition
from alphaforge.storage.db import utcnow
from alphaforge.storage.object_store import ObjectNotFound
from alphaforge.storage.tables import Model

NOT_FOUND = "Model not found"
log = logging.getLogger(__name__)
_NOT_NULL = ("name", "model_type", "family", "parameters", *manual_links.MANUAL_FIELDS)


def resolve_plugin(model_type: str, family: str, parameters: dict[str, Any] | None, seed: int = 0) -> ModelPlugin:
    """The plugin a definition names, with its parameters validated; 422 on any mismatch."""
    return resolve_model_type(model_type, family).from_parameters(parameters, seed=seed)


def artifact_prefix(model_id: uuid.UUID) -> str:
    return f"models/{model_id}"


def create_model(ctx: Context, data: ModelCreate) -> Model:
    plugin = resolve_plugin(data.model_type, data.family, data.parameters)
    model = Model(
        name=data.name,
        model_type=data.model_type,
        plugin_key=plugin.key,
        family=data.family,
        parameters=data.parameters,
        metrics={},
        version=1,
    )
    with ctx.db.session() as session:
        session.add(model)
    return model


def list_models(ctx: Context, skip: int = 0, limit: int = 100) -> list[Model]:
    return list_definitions(ctx, Model, skip, limit)


def get_model(ctx: Context, model_id: uuid.UUID) -> Model:
    return get_definition(ctx, Model, model_id, NOT_FOUND)


def update_model(ctx: Context, model_id: uuid.UUID, data: ModelUpdate) -> Model:
    """Edit a definition. Its stored artifact and metrics stay until the next training (the
    lineage says which parameters produced them).

    ``artifact_uri``, ``metrics`` and ``mlflow_run_id`` amend the model's last training by
    hand: refused (409) for a model never trained, whose lineage holds no feature recipe to
    predict with. Checked before the transaction: the artifact is an object in the store
    (422), its SHA-256 computed from its bytes; the run exists in MLflow (422). In it: the
    artifact's format and, when alphaforge trained those bytes, its recipe, which replaces
    the lineage's. Recorded in ``lineage["manual"]`` (see manual_links).
    """
    changes, expected_revision = requested_changes(data, _NOT_NULL)
    manual = {name: changes[name] for name in manual_links.MANUAL_FIELDS if name in changes}
    artifact_sha256: str | None = None
    if manual:
        model = get_model(ctx, model_id)
        _check_trained(model)
        if "artifact_uri" in manual:
            artifact_sha256 = _linked_artifact_sha256(ctx, model, manual["artifact_uri"])
        if "mlflow_run_id" in manual:
            _check_run(ctx, manual["mlflow_run_id"])

    def revise(model: Model, changes: dict[str, Any]) -> dict[str, Any]:
        plugin = resolve_plugin(
            changes.get("model_type", model.model_type),
            changes.get("family", model.family),
            changes.get("parameters", model.parameters),
        )
        derived: dict[str, Any] = {"plugin_key": plugin.key}
        if manual:
            # Again in the transaction: the model may have been trained since it was read.
            _check_trained(model)
            new = dict(manual)
            recipe = recipe_from = None
            if "artifact_uri" in manual:
                assert artifact_sha256 is not None
                _artifact_key(ctx, model, manual["artifact_uri"])
                recipe, recipe_from = _known_recipe(model, artifact_sha256)
                new["artifact_sha256"] = derived["artifact_sha256"] = artifact_sha256
            current = {name: getattr(model, name) for name in manual_links.OUTPUT_COLUMNS}
            by = actor.current()
            derived["lineage"] = manual_links.record(
                model.lineage,  # type: ignore[arg-type]
                current,
                new,
                by=None if by is None else str(by),
                at=utcnow(),
                recipe=recipe,
                recipe_from=recipe_from,
            )
        return derived

    return update_definition(
        ctx, Model, model_id, changes, expected_revision, revise, noun="model", not_found=NOT_FOUND
    )


def _known_recipe(model: Model, sha256: str) -> tuple[dict[str, Any] | None, str | None]:
    """The recipe of the training that produced the artifact with this SHA-256 and the id
    of the model whose row records it, or (None, None) when alphaforge does not know it:
    this model's own training, or a model whose lineage describes its artifact (trained,
    or linked with a known recipe). 422 when it was trained with another plugin."""
    found: tuple[dict[str, Any], uuid.UUID] | None = None
    own = manual_links.training_artifact(model.lineage)
    if own is not None and own[0] == sha256:
        found = own[1], model.id
    elif model.artifact_sha256 == sha256 and manual_links.recipe_describes_artifact(model.lineage):
        found = manual_links.recipe_of(model.lineage), model.id  # type: ignore[arg-type]
    else:
        session = object_session(model)
        assert session is not None
        query = (
            select(Model.id, Model.lineage)
            .where(Model.artifact_sha256 == sha256, Model.id != model.id)
            .order_by(Model.trained_at.desc(), Model.id)
        )
        for other_id, lineage in session.execute(query):
            if manual_links.recipe_describes_artifact(lineage):
                found = manual_links.recipe_of(lineage), other_id
                break
    if found is None:
        return None, None
    recipe, source = found
    predicts_with = model.lineage["plugin_key"]  # type: ignore[index]
    if recipe["plugin_key"] != predicts_with:
        raise InvalidInput(
            f"artifact_uri holds an artifact of a {recipe['plugin_key']} training (model {source}); "
            f"model {model.id} predicts with {predicts_with} (its training lineage): link a {predicts_with} "
            "artifact, or train the model"
        )
    return recipe, str(source)


def _check_trained(model: Model) -> None:
    if model.lineage is None or model.artifact_uri is None:
        raise Conflict(
            f"model {model.id} has never been trained: artifact_uri, metrics and mlflow_run_id amend a "
            f"training, and prediction needs the feature recipe a training records; "
            f"POST /api/v1/models/{model.id}/train first, then set them"
        )


def _artifact_key(ctx: Context, model: Model, uri: str) -> str:
    """The store key of a URI to link as ``model``'s artifact; 422 unless it is inside the
    store and named like an artifact of the plugin the lineage predicts with."""
    try:
        key = ctx.objects.key_of(uri)
    except ValueError:
        raise InvalidInput(
            f"artifact_uri {_short(uri)!r} is not an object URI of this service's object store; link an "
            "object stored there (its URI has the form of a trained model's artifact_uri, GET /api/v1/models)"
        ) from None
    plugin_key = model.lineage["plugin_key"]  # type: ignore[index]
    ext = model_plugins.get(plugin_key).artifact_ext
    if not key.endswith(f".{ext}"):
        raise InvalidInput(
            f"artifact_uri must name a {plugin_key} artifact, a .{ext} object: model {model.id} predicts "
            f"with {plugin_key} (its training lineage); link a {plugin_key} artifact, or train the model"
        )
    return key


def _linked_artifact_sha256(ctx: Context, model: Model, uri: str) -> str:
    """SHA-256 of the bytes stored at ``uri``; 422 when no object is stored there."""
    key = _artifact_key(ctx, model, uri)
    try:
        data = ctx.objects.get(key)
    except ObjectNotFound:
        raise InvalidInput(
            f"artifact_uri {_short(uri)!r} names no object in the object store; store the artifact "
            "there first, or link the artifact_uri of a trained model"
        ) from None
    return hashlib.sha256(data).hexdigest()


def _check_run(ctx: Context, run_id: str) -> None:
    """422 unless MLflow holds an active run ``run_id`` (503 when MLflow is down)."""
    stage = ctx.tracker.run_stage(run_id)
    if stage is None:
        raise InvalidInput(
            f"mlflow_run_id {_short(run_id)!r} is not a run in this service's MLflow tracking store; "
            "link the id of an existing run"
        )
    if stage != "active":
        raise InvalidInput(f"MLflow run {run_id!r} is {stage}; restore it in MLflow or link another run")


def model_read(model: Model) -> ModelRead:
    """The row as the API shows it, with what its lineage says of hand-set outputs."""
    return ModelRead.model_validate(model).model_copy(update={
        "metrics_source": manual_links.metrics_source(model.lineage),
        "cv_metrics": manual_links.cv_metrics(model.lineage, model.metrics),
        "manual_fields": manual_links.manual_fields(model.lineage),
    })


def hand_linked_artifact_failed(model: Model, exc: BaseException) -> Conflict | None:
    """The 409 for a prediction that failed unexpectedly on a model whose artifact was linked
    by hand from bytes alphaforge did not train (None otherwise: then the failure is a bug).
    The SHA-256 and the format are checked when they are linked; only loading them tells
    whether they fit the lineage's recipe."""
    linked = "artifact_uri" in manual_links.manual_fields(model.lineage)
    if not linked or manual_links.recipe_describes_artifact(model.lineage):
        return None
    log.warning("model %s: prediction with the artifact linked by hand failed", model.id, exc_info=exc)
    lineage = model.lineage or {}
    return Conflict(
        f"prediction with the artifact linked by hand to model {model.id}, of unknown origin, failed "
        f"({type(exc).__name__}): "
        f"it must be a {lineage.get('plugin_key')} artifact trained on the "
        f"{len(lineage.get('feature_columns') or ())} feature columns of the model's lineage; link such an "
        "artifact (PATCH artifact_uri) or train the model again"
    )


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…"


def delete_model(ctx: Context, model_id: uuid.UUID) -> None:
    """Delete the row, then every artifact stored under the model's prefix.

    Row first: a failure in between leaves orphan objects, never a row pointing at a
    missing object.
    """
    with ctx.db.session() as session:
        model = session.get(Model, model_id)
        if model is None:
            raise NotFound(NOT_FOUND)
        session.delete(model)
    for key in ctx.objects.list(artifact_prefix(model_id)):
        ctx.objects.delete(key)
