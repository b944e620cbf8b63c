"""Feature definitions: create, read, update (optimistic lock), delete (with datasets)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import or_, select

from alphaforge.context import Context
from alphaforge.errors import InvalidInput, NotFound
from alphaforge.features import dataset_objects, panel_objects
from alphaforge.plugins.features import FeaturePlugin, feature_plugins
from alphaforge.schemas.features import FeatureCreate, FeatureUpdate
from alphaforge.storage.definitions import get_definition, list_definitions, requested_changes, update_definition
from alphaforge.storage.tables import Feature, FeatureDataset, FeaturePanel

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


def resolve_definition(
    ctx: Context, plugin_key: str, category: str, parameters: dict[str, Any] | None,
    chain: tuple[uuid.UUID, ...] = (),
) -> FeaturePlugin:
    """``resolve_plugin`` with the definitions it names by id bound (``chain``: the ids
    it is reached from, its own first when it is stored)."""
    return resolve_references(ctx, resolve_plugin(plugin_key, category, parameters), chain)


def resolve_references(ctx: Context, plugin: FeaturePlugin, chain: tuple[uuid.UUID, ...] = ()) -> FeaturePlugin:
    """``plugin`` reading each definition it names by id through that definition's plugin as
    stored now (itself resolved, so references chain). A 422 naming the parameter for an id
    that names no feature (never created, or deleted since), a cross-sectional one, or one
    in ``chain`` (the feature would be its own input), also when found further down the chain."""
    references = plugin.referenced_features()
    if not references:
        return plugin
    bound: dict[uuid.UUID, FeaturePlugin] = {}
    for alias, input_id in references.items():
        where = f"parameters.features.{alias}.feature_id"
        if input_id in chain:
            raise InvalidInput(f"{where} {input_id} would make the feature its own input", field=where)
        with ctx.db.session() as session:
            row = session.get(Feature, input_id)
            if row is None:
                raise InvalidInput(
                    f"{where} names no feature ({input_id}): it was never created or has been deleted; "
                    "point it at an existing definition", field=where,
                )
            upstream = resolve_plugin(row.plugin_key, row.type, row.parameters)
        if not upstream.per_symbol:
            raise InvalidInput(
                f"{where} names {input_id}, a cross-sectional feature ({upstream.key}): an input must be a "
                "per-symbol feature", field=where,
            )
        try:
            bound[input_id] = resolve_references(ctx, upstream, (*chain, input_id))
        except InvalidInput as exc:  # point at this definition's parameter, not the nested one
            raise InvalidInput(f"{where} names {input_id}, which cannot be read: {exc.message}", field=where) from None
    return plugin.with_references(bound)


def check_input_feature(ctx: Context, plugin: FeaturePlugin, feature_id: uuid.UUID | None = None) -> None:
    """A cross-sectional definition must name an existing feature, and no chain of inputs
    may lead back to ``feature_id`` (the definition being edited): a panel of it could
    never be computed."""
    if plugin.per_symbol:
        return
    chain: list[uuid.UUID] = [] if feature_id is None else [feature_id]
    current: FeaturePlugin = plugin
    while not current.per_symbol:
        input_id = current.input_feature_id()  # type: ignore[attr-defined]
        if input_id in chain:
            raise InvalidInput(
                f"parameters.feature_id {input_id} would make the feature its own input", field="parameters.feature_id"
            )
        chain.append(input_id)
        with ctx.db.session() as session:
            row = session.get(Feature, input_id)
            if row is None:
                raise InvalidInput(
                    f"parameters.feature_id names no feature ({input_id}); create the input feature first",
                    field="parameters.feature_id",
                )
            current = resolve_plugin(row.plugin_key, row.type, row.parameters)


def create_feature(ctx: Context, data: FeatureCreate) -> Feature:
    check_input_feature(ctx, resolve_definition(ctx, data.plugin_key, data.type, data.parameters))
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
    return list_definitions(ctx, Feature, skip, limit)


def get_feature(ctx: Context, feature_id: uuid.UUID) -> Feature:
    return get_definition(ctx, Feature, feature_id, NOT_FOUND)


def update_feature(ctx: Context, feature_id: uuid.UUID, data: FeatureUpdate) -> Feature:
    changes, expected_revision = requested_changes(data, _NOT_NULL)
    if changes.get("storage_uri") is not None:
        try:
            ctx.objects.key_of(changes["storage_uri"])
        except ValueError:
            raise InvalidInput(
                f"storage_uri must be a prefix inside the object store {ctx.objects.url}/"
            ) from None

    def revise(feature: Feature, changes: dict[str, Any]) -> dict[str, Any]:
        plugin = resolve_definition(
            ctx,
            changes.get("plugin_key", feature.plugin_key),
            changes.get("type", feature.type),
            changes.get("parameters", feature.parameters),
            (feature.id,),
        )
        check_input_feature(ctx, plugin, feature.id)
        return {}

    return update_definition(
        ctx, Feature, feature_id, changes, expected_revision, revise, noun="feature", not_found=NOT_FOUND
    )


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
        uris |= set(session.scalars(select(FeaturePanel.storage_uri).where(FeaturePanel.feature_id == feature_id)))
        session.delete(feature)
    if not uris:
        return
    objects = {dataset_objects.object_uri(uri) for uri in uris}
    bundles = sorted({dataset_objects.object_uri(uri) for uri in uris if dataset_objects.split(uri)[1] is not None})
    with ctx.db.session() as session:  # another definition stored under the same prefix may name the same objects
        still_used = set(session.scalars(select(FeatureDataset.storage_uri).where(FeatureDataset.storage_uri.in_(objects))))
        still_used |= set(session.scalars(select(FeaturePanel.storage_uri).where(FeaturePanel.storage_uri.in_(objects))))
        for at in range(0, len(bundles), 100):
            parts = or_(*(FeatureDataset.storage_uri.startswith(b + dataset_objects.PART, autoescape=True)
                          for b in bundles[at:at + 100]))
            still_used |= {dataset_objects.object_uri(u) for u in session.scalars(select(FeatureDataset.storage_uri).where(parts))}
    for uri in sorted(objects - still_used):
        ctx.objects.delete(ctx.objects.key_of(uri))
        if panel_objects.is_view(uri):  # and its stacked copy, when a download made one
            ctx.objects.delete(panel_objects.stacked_key(ctx, uri))
