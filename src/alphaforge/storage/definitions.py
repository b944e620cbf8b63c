"""What feature, model and universe definitions share: reading rows and the optimistic-lock update.

Each table carries a revision counter (the ``version`` column and API field, as the seeds'
contract names it) that SQLAlchemy uses as its version id: a PATCH may name the revision it
read (compare-and-swap, 409 when it moved on), and an update that races another one in
flight ends with ``StaleDataError``, also a 409.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from alphaforge.context import Context
from alphaforge.errors import Conflict, InvalidInput, NotFound
from alphaforge.storage.tables import Feature, Model, Universe

Definition = TypeVar("Definition", Feature, Model, Universe)


def list_definitions(ctx: Context, table: type[Definition], skip: int, limit: int) -> list[Definition]:
    """Oldest first, so pages stay stable while new definitions are added."""
    with ctx.db.session() as session:
        query = select(table).order_by(table.created_at, table.id).offset(skip).limit(limit)
        return list(session.scalars(query))


def get_definition(ctx: Context, table: type[Definition], definition_id: uuid.UUID, not_found: str) -> Definition:
    with ctx.db.session() as session:
        row = session.get(table, definition_id)
        if row is None:
            raise NotFound(not_found)
        return row


def requested_changes(data: BaseModel, not_null: Sequence[str]) -> tuple[dict[str, Any], int | None]:
    """The fields a PATCH sets, and the version it expects (None: no compare-and-swap)."""
    changes = {name: getattr(data, name) for name in data.model_fields_set}
    expected_revision = changes.pop("version", None)
    nulls = [name for name in not_null if name in changes and changes[name] is None]
    if nulls:
        raise InvalidInput(f"{', '.join(nulls)} cannot be null; leave a field out to keep it")
    return changes, expected_revision


def update_definition(
    ctx: Context,
    table: type[Definition],
    definition_id: uuid.UUID,
    changes: dict[str, Any],
    expected_revision: int | None,
    revise: Callable[[Definition, dict[str, Any]], dict[str, Any]],
    *,
    noun: str,
    not_found: str,
) -> Definition:
    """Apply ``changes`` in one transaction and bump the version.

    ``revise(row, changes)`` validates the definition as it would be after the edit (raising
    a 422) and returns the columns derived from it, set along with the changes.
    """
    try:
        with ctx.db.session() as session:
            row = session.get(table, definition_id)
            if row is None:
                raise NotFound(not_found)
            if expected_revision is not None and expected_revision != row.version:
                raise Conflict(
                    f"{noun} was changed since you read it: your version {expected_revision}, "
                    f"stored version {row.version}; read it again and retry",
                    stored_version=row.version,
                )
            derived = revise(row, changes)
            if changes:
                for name, value in {**changes, **derived}.items():
                    setattr(row, name, value)
                row.version = row.version + 1
        return row
    except StaleDataError:
        raise Conflict(f"{noun} was changed by a concurrent update; read it again and retry") from None
