"""The one error an expression can raise: where it went wrong, and why."""

from __future__ import annotations

from typing import Any

from alphaforge.errors import InvalidInput


class ExpressionError(InvalidInput):
    """An expression that cannot be parsed, checked or evaluated (422).

    The message starts with ``at position N:`` (a 0-based character offset into the
    expression's text) so a user can find the mistake without reading the parse tree; the
    same offset is in ``context["position"]`` for clients that underline it.
    """

    def __init__(self, message: str, position: int, **context: Any) -> None:
        super().__init__(f"at position {position}: {message}", position=position, **context)
        self.position = position
