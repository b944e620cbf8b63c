"""Types every request shares, so bad input is a 422 naming the field instead of a 500
(or a silent change) deep in a service.

- ``RequestTime``: a date/time within what int64 nanoseconds hold (the bar stores, pandas),
  parsed once into an aware UTC datetime (naive values are read as UTC).
- ``TimeRange``: a request's ``start_date`` (inclusive) < ``end_date`` (exclusive).
- ``Symbol``, ``SymbolPath``, ``SeriesPath``, ``FieldQuery``: names normalised once (upper-case
  symbols and series, lower-case fundamentals fields) or refused with a 422 that says what a
  name may hold; services take them as they are.
- ``RequestModel``: base of the JSON request bodies; every string in them, nested dict
  keys and values included (``parameters``, ``fixed_params``, ``candidates``), must be
  storable text: no NUL (PostgreSQL cannot store it) and no lone surrogate (not UTF-8).
- ``RequestText``: the same check for path and query strings.

Uploads (bars, macro, fundamentals, news) are not ``RequestModel``s: their quality gates
check every record and name the bad rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    GetJsonSchemaHandler,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from alphaforge.errors import InvalidInput
from alphaforge.hashing import utc_iso
from alphaforge.marketdata.bars import normalize_symbol
from alphaforge.marketdata.fundamentals import normalize_field
from alphaforge.marketdata.macro import normalize_series
from alphaforge.marketdata.times import MAX_TIME, MIN_TIME, to_utc

#: Free text (descriptions): long enough for notes, short enough to list many of them.
DESCRIPTION_MAX = 10_000
NAME_MAX = 255
KEY_MAX = 100  # plugin keys, metric and parameter names
SYMBOL_MAX = 40  # room for padding; normalize_symbol enforces 1-20 characters
URI_MAX = 1000

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def check_time(value: datetime) -> datetime:
    """``value`` unchanged when int64 nanoseconds can hold it (naive read as UTC)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    if not MIN_TIME <= aware <= MAX_TIME:  # aware comparison: no overflow for any offset
        raise PydanticCustomError(
            "time_out_of_range",
            "{given} is outside the supported range {min} to {max} (naive times are UTC)",
            {"given": value.isoformat(), "min": _iso(MIN_TIME), "max": _iso(MAX_TIME)},
        )
    return value


class _TimeRangeSchema:
    """Publishes the range in the OpenAPI schema (``formatMinimum`` / ``formatMaximum``)."""

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        value = handler(schema)
        value.update(formatMinimum=_iso(MIN_TIME), formatMaximum=_iso(MAX_TIME))
        return value


RequestTime = Annotated[datetime, AfterValidator(check_time), AfterValidator(to_utc), _TimeRangeSchema()]


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None. Never echoes the bad character."""
    found = _BAD_TEXT.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (\\x00), which cannot be stored; remove it"
    return f"contains a lone surrogate ({found.group()!r}), which is not valid Unicode text; send UTF-8"


def find_bad_text(value: Any, where: str) -> str | None:
    """A string in ``value`` (walked through dicts, their keys, lists and nested
    non-request models) that is not storable text, as "<where> <problem>"; else None.
    ``where`` names ``value`` (its field). Nested ``RequestModel``s are skipped: they
    checked themselves, under their own field names. Iterative: a deeply nested body
    cannot exhaust the stack."""
    if not _has_bad_text(value):  # the common case, without building paths
        return None
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if (problem := text_problem(item)) is not None:
                return f"{_short(where + ''.join(path))} {problem}"
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str) and (problem := text_problem(key)) is not None:
                    return f"a key of {_short(where + ''.join(path))} ({_short(repr(key))}) {problem}"
                stack.append((sub, (*path, f"[{_short(repr(key))}]")))
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((sub, (*path, f"[{i}]")) for i, sub in enumerate(item))
        elif isinstance(item, BaseModel) and not isinstance(item, RequestModel):
            stack.extend((getattr(item, name), (*path, f".{name}")) for name in type(item).model_fields)
    return None


def _has_bad_text(value: Any) -> bool:
    """``find_bad_text`` without the paths; every request runs it, so JSON's own types
    (str, dict, list) are tested first by exact type."""
    search = _BAD_TEXT.search
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or isinstance(item, str):
            if search(item):
                return True
        elif kind is dict or isinstance(item, dict):
            if any(isinstance(key, str) and search(key) for key in item):
                return True
            stack.extend(item.values())
        elif kind is list or isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif isinstance(item, BaseModel) and not isinstance(item, RequestModel):
            stack.extend(getattr(item, name) for name in type(item).model_fields)
    return False


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…"


class RequestModel(BaseModel):
    """Base of the JSON request bodies: every string in every field is storable text."""

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any, info: ValidationInfo) -> Any:
        problem = find_bad_text(value, info.field_name or "the text")
        if problem is not None:
            raise PydanticCustomError("invalid_text", "{problem}", {"problem": problem})
        return value


def check_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError("invalid_text", "the text {problem}", {"problem": problem})
    return value


#: A path or query string: storable text (see ``RequestModel``).
RequestText = Annotated[str, AfterValidator(check_text)]

def _normalised(normalize: Callable[[str], str]) -> AfterValidator:
    """A name's normaliser as a validator: text that cannot be stored is refused as such
    (before the name's form is judged), and the normaliser's refusal becomes a 422 naming
    the field."""

    def check(value: str, info: ValidationInfo) -> str:
        if (problem := text_problem(value)) is not None:
            where = info.field_name or "the text"
            raise PydanticCustomError("invalid_text", "{where} {problem}", {"where": where, "problem": problem})
        try:
            return normalize(value)
        except InvalidInput as exc:
            raise PydanticCustomError("invalid_name", "{message}", {"message": exc.message}) from None

    return AfterValidator(check)


#: A symbol in a request body, upper-cased (GSPC, BRK.B, BTC-USD).
Symbol = Annotated[str, Field(min_length=1, max_length=SYMBOL_MAX, examples=["GSPC"]), _normalised(normalize_symbol)]
#: A symbol, a macro series, a fundamentals field in a path or query.
SymbolPath = Annotated[str, _normalised(normalize_symbol)]
SeriesPath = Annotated[str, _normalised(normalize_series)]
FieldQuery = Annotated[str, _normalised(normalize_field)]


class TimeRange(RequestModel):
    """A request over [start_date, end_date): an empty range is refused here, once."""

    start_date: RequestTime = Field(description="Inclusive; naive values are read as UTC")
    end_date: RequestTime = Field(description="Exclusive; naive values are read as UTC")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.end_date <= self.start_date:
            raise PydanticCustomError(
                "empty_range", "end_date ({end}) must be after start_date ({start})",
                {"end": utc_iso(self.end_date), "start": utc_iso(self.start_date)},
            )
        return self
