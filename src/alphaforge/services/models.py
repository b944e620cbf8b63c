"""Model definitions: create, read, update (optimistic lock), delete (with artifacts)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm.exc import StaleDataError

from alphaforge.context import Context
from alphaforge.errors import Conflict, InvalidInput, NotFound
from alphaforge.plugins.models import ModelPlugin, resolve_model_type
from alphaforge.schemas.models import TRAINING_OUTPUTS, ModelCreate, ModelUpdate
from alphaforge.storage.tables import Model
from sqlalchemy import select

NOT_FOUND = "Model not found"
_NOT_NULL = ("name", "model_type", "family", "parameters")


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
    with ctx.db.session() as session:
        query = select(Model).order_by(Model.created_at, Model.id).offset(skip).limit(limit)
        return list(session.scalars(query))


def get_model(ctx: Context, model_id: uuid.UUID) -> Model:
    with ctx.db.session() as session:
        model = session.get(Model, model_id)
        if model is None:
            raise NotFound(NOT_FOUND)
        return model


def update_model(ctx: Context, model_id: uuid.UUID, data: ModelUpdate) -> Model:
    """Edit a definition. Its stored artifact and metrics stay until the next training (the
    lineage says which parameters produced them)."""
    changes = {name: getattr(data, name) for name in data.model_fields_set}
    expected_version = changes.pop("version", None)
    outputs = [name for name in TRAINING_OUTPUTS if name in changes]
    if outputs:
        raise InvalidInput(
            f"{', '.join(outputs)} {'is' if len(outputs) == 1 else 'are'} written by training; "
            f"train the model (POST /api/v1/models/{model_id}/train) to change {'it' if len(outputs) == 1 else 'them'}"
        )
    nulls = [name for name in _NOT_NULL if name in changes and changes[name] is None]
    if nulls:
        raise InvalidInput(f"{', '.join(nulls)} cannot be null; leave a field out to keep it")
    try:
        with ctx.db.session() as session:
            model = session.get(Model, model_id)
            if model is None:
                raise NotFound(NOT_FOUND)
            if expected_version is not None and expected_version != model.version:
                raise Conflict(
                    f"model was changed since you read it: your version {expected_version}, "
                    f"stored version {model.version}; read it again and retry",
                    stored_version=model.version,
                )
            plugin = resolve_plugin(
                changes.get("model_type", model.model_type),
                changes.get("family", model.family),
                changes.get("parameters", model.parameters),
            )
            if changes:
                for name, value in changes.items():
                    setattr(model, name, value)
                model.plugin_key = plugin.key
                model.version = model.version + 1
        return model
    except StaleDataError:
        raise Conflict("model was changed by a concurrent update; read it again and retry") from None


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
