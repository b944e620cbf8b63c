"""Roles on routes. Every /api/v1 route declares the role it needs, in its decorator:
``dependencies=[READ]``, ``[RESEARCH]`` or ``[ADMIN]``. The access middleware authenticates
the key and checks that role before the route reads a byte of its body; the dependency
declares the two ways to send a key in the OpenAPI schema (so Swagger's Authorize button
works) and hands the route the ``Principal`` when it needs one (``PrincipalDep``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.routing import BaseRoute

from alphaforge.auth.keys import Principal
from alphaforge.auth.roles import Role
from alphaforge.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="Authorization: Bearer <API key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey", description="X-API-Key: <API key>")


def presented_key(headers: Headers) -> str | None:
    """The key a request sends: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key", "").strip() or None


def principal_of(request: Request) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    if principal is None:  # only reachable if the access middleware was not installed
        raise Unauthorized("send an API key: Authorization: Bearer <key>, or X-API-Key: <key>")
    return principal


class RoleRequirement:
    """A route's role, as a dependency the access middleware finds on the route."""

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(
        self,
        request: Request,
        _bearer_key: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        _header_key: Annotated[str | None, Depends(_api_key)],
    ) -> Principal:
        return principal_of(request)

    def __repr__(self) -> str:
        return f"RoleRequirement({self.role.value})"


READ = Depends(RoleRequirement(Role.READ))
RESEARCH = Depends(RoleRequirement(Role.RESEARCH))
ADMIN = Depends(RoleRequirement(Role.ADMIN))

PrincipalDep = Annotated[Principal, Depends(principal_of)]


@dataclass(frozen=True)
class RouteRole:
    """One operation's path pattern, methods and declared role (None: it declares none)."""

    path: str
    path_regex: re.Pattern[str]
    methods: frozenset[str]
    role: Role | None


def route_roles(routes: list[BaseRoute], prefix: str = "/api/") -> list[RouteRole]:
    """Every FastAPI operation under ``prefix``, in routing order, with its role."""
    table = []
    for context in iter_route_contexts(routes):
        if not isinstance(context.original_route, APIRoute) or not (context.path_format or "").startswith(prefix):
            continue
        roles = [d.dependency.role for d in context.dependencies if isinstance(d.dependency, RoleRequirement)]
        table.append(
            RouteRole(
                path=context.path_format, path_regex=context.path_regex, methods=frozenset(context.methods or ()),
                role=roles[0] if len(roles) == 1 else None,
            )
        )
    return table


def role_needed(table: list[RouteRole], method: str, path: str) -> Role | None:
    """The role of the operation routing would pick (None: no route matches; it 404s or 405s)."""
    for entry in table:
        if method in entry.methods and entry.path_regex.match(path):
            return entry.role
    return None


def check_every_route_has_a_role(routes: list[BaseRoute], prefix: str) -> None:
    """Refuse to start an app with an operation under ``prefix`` that declares no role (or two)."""
    missing = [f"{sorted(r.methods)} {r.path}" for r in route_roles(routes, prefix) if r.role is None]
    if missing:
        raise RuntimeError(f"routes without exactly one role (add dependencies=[READ|RESEARCH|ADMIN]): {missing}")
