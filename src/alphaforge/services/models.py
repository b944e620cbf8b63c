"""Model definitions: create, read, update (optimistic lock), delete (with artifacts)."""

from __future__ import annotations

import uuid
from typing import Any

from alphaforge.context import Context
from alphaforge.errors import InvalidInput, NotFound
from alphaforge.plugins.models import ModelPlugin, resolve_model_type
from alphaforge.schemas.models import TRAINING_OUTPUTS, ModelCreate, ModelUpdate
from alphaforge.services.definitions import get_definition, list_definitions, requested_changes, update_definition
from alphaforge.storage.tables import Model

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
    return list_definitions(ctx, Model, skip, limit)


def get_model(ctx: Context, model_id: uuid.UUID) -> Model:
    return get_definition(ctx, Model, model_id, NOT_FOUND)


def update_model(ctx: Context, model_id: uuid.UUID, data: ModelUpdate) -> Model:
    """Edit a definition. Its stored artifact and metrics stay until the next training (the
    lineage says which parameters produced them)."""
    outputs = [name for name in TRAINING_OUTPUTS if name in data.model_fields_set]
    if outputs:
        raise InvalidInput(
            f"{', '.join(outputs)} {'is' if len(outputs) == 1 else 'are'} written by training; "
            f"train the model (POST /api/v1/models/{model_id}/train) to change {'it' if len(outputs) == 1 else 'them'}"
        )
    changes, expected_version = requested_changes(data, _NOT_NULL)

    def revise(model: Model, changes: dict[str, Any]) -> dict[str, Any]:
        plugin = resolve_plugin(
            changes.get("model_type", model.model_type),
            changes.get("family", model.family),
            changes.get("parameters", model.parameters),
        )
        return {"plugin_key": plugin.key}

    return update_definition(
        ctx, Model, model_id, changes, expected_version, revise, noun="model", not_found=NOT_FOUND
    )


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
