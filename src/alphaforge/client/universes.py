"""``/api/v1/universes``: named sets of symbols with point-in-time membership (a panel's or a
pooled model's symbols)."""

from __future__ import annotations

from typing import Any

from alphaforge.client.definitions import Definitions
from alphaforge.client.http import TimeLike, iso, without_none


class Universes(Definitions):
    path = "/universes"

    def create(self, name: str, members: list[dict[str, Any]] | None = None, *,
               description: str | None = None) -> dict[str, Any]:
        """``members``: spells ``{"symbol": "GSPC", "from": "2005-01-01", "to": None}``."""
        body = without_none({"name": name, "description": description, "members": members or []})
        return self._transport.json("POST", "/universes", json=body)

    def members(self, universe_id: str, at: TimeLike | None = None, *, start: TimeLike | None = None,
                end: TimeLike | None = None) -> list[str]:
        """The symbols that were members at ``at`` (default: now), or at any time in ``[start, end)``."""
        params = without_none({"at": iso(at), "start": iso(start), "end": iso(end)})
        return self._transport.json("GET", f"/universes/{universe_id}/members", params=params)["symbols"]
