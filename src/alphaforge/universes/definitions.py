"""Universe definitions: create, read, update (optimistic lock), delete; and who was a
member when.

A universe's memberships are spells ``[from, to)`` (``to`` None: still a member). The
request types check each spell and that no two spells of one symbol overlap; here every
symbol is checked against what the bar provider serves, and names are unique (409).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import object_session

from alphaforge.context import Context
from alphaforge.errors import Conflict, InvalidInput, NotFound
from alphaforge.hashing import utc_iso
from alphaforge.schemas.universes import Membership, UniverseCreate, UniverseUpdate
from alphaforge.storage.db import utcnow
from alphaforge.storage.definitions import get_definition, list_definitions, requested_changes, update_definition
from alphaforge.storage.tables import Universe, UniverseMember

NOT_FOUND = "Universe not found"
_NOT_NULL = ("name", "members")


def check_symbols(ctx: Context, members: list[Membership]) -> None:
    """422 naming every symbol the bar provider has no bars for."""
    if not members:
        return
    known = {series.symbol for series in ctx.bars.list_series()}
    unknown = sorted({m.symbol for m in members} - known)
    if unknown:
        raise InvalidInput(
            f"unknown symbol(s) {', '.join(unknown)}: the market data has no bars for them; "
            "ingest their bars first (POST /api/v1/market-data/{symbol}/bars) or leave them out",
            unknown_symbols=unknown,
        )


def _rows(members: list[Membership]) -> list[UniverseMember]:
    """The spells as rows, in the order a stored universe lists them (symbol, then from)."""
    ordered = sorted(members, key=lambda m: (m.symbol, m.from_))
    return [UniverseMember(symbol=m.symbol, valid_from=m.from_, valid_to=m.to) for m in ordered]


@contextmanager
def _unique_name(name: str | None) -> Iterator[None]:
    """A second universe of one name is a 409 (the unique index decides, races included)."""
    try:
        yield
    except IntegrityError:
        if name is None:  # the name was not written: some other rule broke
            raise
        raise Conflict(f"a universe named {name!r} exists already; choose another name") from None


def _check_name_free(ctx: Context, name: str, universe_id: uuid.UUID | None = None) -> None:
    with ctx.db.session() as session:
        holder = session.scalar(select(Universe.id).where(Universe.name == name))
    if holder is not None and holder != universe_id:
        raise Conflict(f"a universe named {name!r} exists already (id {holder}); choose another name")


def create_universe(ctx: Context, data: UniverseCreate) -> Universe:
    check_symbols(ctx, data.members)
    _check_name_free(ctx, data.name)
    universe = Universe(name=data.name, description=data.description, members=_rows(data.members), version=1)
    with _unique_name(data.name), ctx.db.session() as session:
        session.add(universe)
    return universe


def list_universes(ctx: Context, skip: int = 0, limit: int = 100) -> list[Universe]:
    return list_definitions(ctx, Universe, skip, limit)


def get_universe(ctx: Context, universe_id: uuid.UUID) -> Universe:
    return get_definition(ctx, Universe, universe_id, NOT_FOUND)


def find_universe(ctx: Context, reference: str) -> Universe:
    """A universe by id or by name (404 naming the reference when neither matches)."""
    with ctx.db.session() as session:
        found = None
        for match in _matches(reference):
            found = found or session.scalars(select(Universe).where(match)).one_or_none()
    if found is None:
        raise _unknown(reference)
    return found


def _matches(reference: str) -> list[Any]:
    """What a reference may name: an id (when it parses as one), then a name."""
    try:
        return [Universe.id == uuid.UUID(reference), Universe.name == reference]
    except ValueError:
        return [Universe.name == reference]


def _unknown(reference: str) -> NotFound:
    return NotFound(f"{NOT_FOUND}: no universe has the id or name {reference!r}; list them with GET /api/v1/universes")


@dataclass(frozen=True)
class UniverseRef:
    """A universe's identity, without its memberships loaded as objects."""

    id: uuid.UUID
    name: str


def _universe_spells(ctx: Context, reference: str) -> tuple[UniverseRef, list[tuple[str, datetime, datetime | None]]]:
    """A universe by id or name (404 as ``find_universe``) and its spells by symbol then
    from, read as plain rows: a panel request reads them on every call, hits included."""
    with ctx.db.session() as session:
        head = None
        for match in _matches(reference):
            head = head or session.execute(select(Universe.id, Universe.name).where(match)).one_or_none()
        if head is None:
            raise _unknown(reference)
        rows = session.execute(
            select(UniverseMember.symbol, UniverseMember.valid_from, UniverseMember.valid_to)
            .where(UniverseMember.universe_id == head.id)
        ).all()
    # Sorted here, not by the database: a collation may order symbols otherwise (e.g. with dots).
    return UniverseRef(head.id, head.name), sorted((r.symbol, r.valid_from, r.valid_to) for r in rows)


def update_universe(ctx: Context, universe_id: uuid.UUID, data: UniverseUpdate) -> Universe:
    changes, expected_revision = requested_changes(data, _NOT_NULL)
    if "members" in changes:
        check_symbols(ctx, changes["members"])
    if "name" in changes:
        _check_name_free(ctx, changes["name"], universe_id)

    def revise(universe: Universe, changes: dict[str, Any]) -> dict[str, Any]:
        if "members" not in changes:
            return {}
        session = object_session(universe)
        assert session is not None
        # The universe's row is written first: a stale edit fails here (409) before any spell
        # is touched, and its row lock keeps concurrent edits of the spells in turn.
        universe.updated_at = utcnow()
        session.flush()
        # The old spells go next: a new spell may have an old one's identity (symbol, from).
        universe.members.clear()
        session.flush()
        return {"members": _rows(changes["members"])}

    with _unique_name(changes.get("name")):
        return update_definition(
            ctx, Universe, universe_id, changes, expected_revision, revise, noun="universe", not_found=NOT_FOUND
        )


def delete_universe(ctx: Context, universe_id: uuid.UUID) -> None:
    """Delete a universe and its memberships (the foreign key cascades)."""
    with ctx.db.session() as session:
        universe = session.get(Universe, universe_id)
        if universe is None:
            raise NotFound(NOT_FOUND)
        session.delete(universe)


# -- who was a member when ------------------------------------------------------------------
def members_at(universe: Universe, when: datetime) -> list[str]:
    """The symbols that were members at ``when``: a spell holds it when from <= when < to."""
    return sorted(
        {m.symbol for m in universe.members if m.valid_from <= when and (m.valid_to is None or when < m.valid_to)}
    )


def members_between(universe: Universe, start: datetime, end: datetime) -> list[str]:
    """The symbols that were members at any time in ``[start, end)``: a spell overlaps it
    when from < end and start < to."""
    if end <= start:
        raise InvalidInput(f"end ({utc_iso(end)}) must be after start ({utc_iso(start)})")
    return sorted(
        {m.symbol for m in universe.members if m.valid_from < end and (m.valid_to is None or start < m.valid_to)}
    )


def member_spells(
    ctx: Context, universe: str | None, symbols: list[str] | None, start: datetime, end: datetime
) -> tuple[UniverseRef | None, list[tuple[str, datetime, datetime]]]:
    """Who a panel request covers, as spells clipped to ``[start, end)``: a universe's (by id
    or name; 404 when unknown, 422 when it has no member in the range) or a list of symbols,
    each a member for the whole range (422 naming symbols without bars)."""
    if symbols is not None:
        check_symbols(ctx, [Membership(symbol=s, from_=start, to=end) for s in symbols])
        return None, [(s, start, end) for s in sorted(symbols)]
    assert universe is not None
    found, rows = _universe_spells(ctx, universe)
    spells = [
        (symbol, max(start, valid_from), end if valid_to is None else min(end, valid_to))
        for symbol, valid_from, valid_to in rows
        if valid_from < end and (valid_to is None or start < valid_to)
    ]
    if not spells:
        raise InvalidInput(
            f"universe {found.name!r} has no members in [{utc_iso(start)}, {utc_iso(end)}); "
            f"see GET /api/v1/universes/{found.id}/members"
        )
    return found, spells
