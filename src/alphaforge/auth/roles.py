"""The three roles, each including the one below it."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    READ = "read"  # every GET
    RESEARCH = "research"  # + definitions, generate, train, tune, AutoML, predict, cancel own tasks
    ADMIN = "admin"  # + deletes, market-data ingestion and restatements, keys, audit, any task

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANK = {Role.READ: 0, Role.RESEARCH: 1, Role.ADMIN: 2}
