"""Feature definitions: create, read, update (optimistic lock), delete (with datasets)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from alphaforge.context import Context
from alphaforge.errors import Conflict, InvalidInput, NotFound
from alphaforge.plugins.features import FeaturePlugin, feature_plugins
from alphaforge.schemas.features import FeatureCreate, FeatureUpdate
from alphaforge.storage.tables import Feature, FeatureDataset

NOT_FOUND = "Feature not found"
_NOT_NULL = ("name", "type", "plugin_key", "parameters")


def resolve_plugin(plugin_key: str, category: str, parameters: dict[str, Any] | None) -> FeaturePlugin:
    """The plugin a definition names, with its parameters validated; 422 on any mismatch."""
    cls = feature_plugins.get(plugin_key)
    if cls.category != category:
        raise InvalidInput(
            f"plugin {plugin_key} is in category {cls.category!r}, not {category!r}; "
            f"set type to {cls.category!r}"
        )
    return cls.from_parameters(parameters)


def create_feature(ctx: Context, data: FeatureCreate) -> Feature:
    resolve_plugin(data.plugin_key, data.type, data.parameters)
    feature = Feature(
        name=data.name,
        type=data.type,
        plugin_key=data.plugin_key,
        parameters=data.parameters,
        description=data.description,
        version=1,
    )
    with ctx.db.session() as session:
        session.add(feature)
    return feature


def list_features(ctx: Context, skip: int = 0, limit: int = 100) -> list[Feature]:
    with ctx.db.session() as session:
        query = select(Feature).order_by(Feature.created_at, Feature.id).offset(skip).limit(limit)
        return list(session.scalars(query))


def get_feature(ctx: Context, feature_id: uuid.UUID) -> Feature:
    with ctx.db.session() as session:
        feature = session.get(Feature, feature_id)
        if feature is None:
            raise NotFound(NOT_FOUND)
        return feature


def update_feature(ctx: Context, feature_id: uuid.UUID, data: FeatureUpdate) -> Feature:
    changes = {name: getattr(data, name) for name in data.model_fields_set}
    expected_version = changes.pop("version", None)
    nulls = [name for name in _NOT_NULL if name in changes and changes[name] is None]
    if nulls:
        raise InvalidInput(f"{', '.join(nulls)} cannot be null; leave a field out to keep it")
    if changes.get("storage_uri") is not None:
        try:
            ctx.objects.key_of(changes["storage_uri"])
        except ValueError:
            raise InvalidInput(
                f"storage_uri must be a prefix inside the object store {ctx.objects.url}/"
            ) from None
    try:
        with ctx.db.session() as session:
            feature = session.get(Feature, feature_id)
            if feature is None:
                raise NotFound(NOT_FOUND)
            if expected_version is not None and expected_version != feature.version:
                raise Conflict(
                    f"feature was changed since you read it: your version {expected_version}, "
                    f"stored version {feature.version}; read it again and retry",
                    stored_version=feature.version,
                )
            resolve_plugin(
                changes.get("plugin_key", feature.plugin_key),
                changes.get("type", feature.type),
                changes.get("parameters", feature.parameters),
            )
            if changes:
                for name, value in changes.items():
                    setattr(feature, name, value)
                feature.version = feature.version + 1
        return feature
    except StaleDataError:
        raise Conflict("feature was changed by a concurrent update; read it again and retry") from None


def delete_feature(ctx: Context, feature_id: uuid.UUID) -> None:
    """Delete a definition with its datasets, then the stored objects no other row uses.

    Rows go first (one transaction), objects after: a failure in between leaves an
    orphan object, never a row pointing at a missing object.
    """
    with ctx.db.session() as session:
        feature = session.get(Feature, feature_id)
        if feature is None:
            raise NotFound(NOT_FOUND)
        uris = set(session.scalars(select(FeatureDataset.storage_uri).where(FeatureDataset.feature_id == feature_id)))
        session.delete(feature)
    if not uris:
        return
    with ctx.db.session() as session:
        still_used = set(session.scalars(select(FeatureDataset.storage_uri).where(FeatureDataset.storage_uri.in_(uris))))
    for uri in sorted(uris - still_used):
        ctx.objects.delete(ctx.objects.key_of(uri))
