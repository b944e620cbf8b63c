"""What features, models and universes share: the same four routes on a definition, so
each resource states only its path and what is its own."""

from __future__ import annotations

from typing import Any, ClassVar

from alphaforge.client.http import Transport, without_none


class Definitions:
    #: The collection's path under /api/v1, e.g. "/features".
    path: ClassVar[str]

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def list(self, skip: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Oldest first, ``limit`` at a time (at most 1000)."""
        return self._transport.json("GET", self.path, params={"skip": skip, "limit": limit})

    def get(self, definition_id: str) -> dict[str, Any]:
        return self._transport.json("GET", f"{self.path}/{definition_id}")

    def update(self, definition_id: str, *, version: int | None = None, **fields: Any) -> dict[str, Any]:
        """Change the given fields; with ``version`` (the one you read) an edit made since is a Conflict."""
        return self._transport.json("PATCH", f"{self.path}/{definition_id}", json=without_none({**fields, "version": version}))

    def delete(self, definition_id: str) -> None:
        """Delete it and what is stored for it (admin keys)."""
        self._transport.json("DELETE", f"{self.path}/{definition_id}")
