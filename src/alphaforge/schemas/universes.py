"""Request and response shapes of the Universes API: named sets of symbols with
point-in-time membership.

A membership is a spell ``[from, to)``: ``to`` is exclusive, and null while the symbol is
still a member. Each spell is checked here (``from`` < ``to``), and so are a universe's
spells together (no two spells of one symbol overlap); that every symbol has bars is
checked by the service, which knows the bar provider."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Self

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from alphaforge.hashing import utc_iso
from alphaforge.schemas.request import DESCRIPTION_MAX, NAME_MAX, RequestModel, RequestTime, Symbol

#: Spells in one universe: room for decades of index history, bounded like every request.
MEMBERS_MAX = 50_000


class Membership(RequestModel):
    """A symbol is a member from ``from`` (inclusive) until ``to`` (exclusive; null: still a member)."""

    model_config = ConfigDict(populate_by_name=True)

    symbol: Symbol
    from_: RequestTime = Field(
        alias="from", description="First instant of membership, inclusive; naive values are read as UTC",
        examples=["2005-01-01"],
    )
    to: RequestTime | None = Field(
        None, description="End of membership, exclusive; null: still a member. Naive values are read as UTC",
        examples=["2010-01-01"],
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.to is not None and self.to <= self.from_:
            raise PydanticCustomError(
                "empty_spell", "{symbol}: to ({to}) must be after from ({start})",
                {"symbol": self.symbol, "to": utc_iso(self.to), "start": utc_iso(self.from_)},
            )
        return self

    def spell(self) -> str:
        return f"[{utc_iso(self.from_)}, {'open' if self.to is None else utc_iso(self.to)})"


def overlapping_spells(members: list[Membership]) -> list[str]:
    """Every pair of spells of one symbol that overlap, as "SYMBOL [a, b) and [c, d)".

    Spells that touch (one's ``to`` is the next one's ``from``) do not overlap."""
    by_symbol: dict[str, list[Membership]] = {}
    for member in members:
        by_symbol.setdefault(member.symbol, []).append(member)
    found = []
    for symbol, spells in sorted(by_symbol.items()):
        spells = sorted(spells, key=lambda m: m.from_)
        latest = spells[0]  # the spell reaching furthest so far
        for spell in spells[1:]:
            if latest.to is None or spell.from_ < latest.to:
                found.append(f"{symbol} {latest.spell()} and {spell.spell()}")
            if latest.to is not None and (spell.to is None or spell.to > latest.to):
                latest = spell
    return found


def _no_overlap(members: list[Membership]) -> list[Membership]:
    found = overlapping_spells(members)
    if found:
        raise PydanticCustomError(
            "overlapping_spells", "spells of one symbol must not overlap: {found}", {"found": "; ".join(found)}
        )
    return members


Memberships = Annotated[list[Membership], Field(max_length=MEMBERS_MAX), AfterValidator(_no_overlap)]


class UniverseCreate(RequestModel):
    name: str = Field(min_length=1, max_length=NAME_MAX, examples=["US large caps"])
    description: str | None = Field(None, max_length=DESCRIPTION_MAX)
    members: Memberships = Field(
        default_factory=list,
        examples=[[{"symbol": "GSPC", "from": "2005-01-01", "to": None}, {"symbol": "IXIC", "from": "2010-01-01"}]],
    )


class UniverseUpdate(RequestModel):
    """All optional; ``members`` replaces every spell. ``version``, when sent, must equal the
    stored version (optimistic lock) or the update is refused with 409."""

    name: str | None = Field(None, min_length=1, max_length=NAME_MAX)
    description: str | None = Field(None, max_length=DESCRIPTION_MAX)
    members: Memberships | None = None
    version: int | None = Field(None, ge=1, description="The version you read; 409 if it changed since")


class MembershipRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    symbol: str
    # Read from the row's columns (valid_from, valid_to), written as "from" and "to".
    from_: datetime = Field(alias="from", validation_alias=AliasChoices("valid_from", "from"), description="Inclusive")
    to: datetime | None = Field(
        None, validation_alias=AliasChoices("valid_to", "to"), description="Exclusive; null: still a member"
    )


class UniverseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    members: list[MembershipRead] = Field(description="Every spell, by symbol, then from")
    version: int
    created_at: datetime
    created_by: uuid.UUID | None = Field(None, description="The API key that created it")
    updated_at: datetime


class UniverseMembers(BaseModel):
    """The symbols that were members at ``at``, or at any time in ``[start, end)``."""

    universe_id: uuid.UUID
    at: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    symbols: list[str] = Field(description="Sorted")
