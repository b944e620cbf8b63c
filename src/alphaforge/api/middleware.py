"""ASGI middleware around every request, outermost first:

- ``RequestContext``: the request id (``X-Request-ID``, and every log line of the request),
  and the last line of defence that turns an unexpected exception into a JSON 500.
- ``HostGuard``: only the configured Host names (DNS rebinding: a page on evil.example that
  resolves to 127.0.0.1 must not reach the API).
- CORS, only when the deployment names origins.
- ``Access``: authenticates the key and checks the route's role before the route runs (so
  before a byte of the body is read), and records the audit entry of every mutating request.
- ``BodyLimit``: 413 for bodies over the upload or JSON limit, before they are read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.body_limit import RequestBodyLimitResponder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alphaforge import actor, logs
from alphaforge.api.errors import UPLOAD_TYPES, error_response, internal_error, too_large
from alphaforge.api.security import RouteRole, presented_key, role_needed, route_roles
from alphaforge.auth import audit
from alphaforge.auth.keys import Principal
from alphaforge.auth.roles import Role
from alphaforge.errors import AlphaforgeError, Forbidden, HostNotAllowed, Unauthorized

if TYPE_CHECKING:
    from alphaforge.context import Context
    from alphaforge.settings import Settings

REQUEST_ID_HEADER = "X-Request-ID"
API_PREFIX = "/api/"


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = logs.new_request_id(offered)
        token = logs.request_id.set(rid)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            if started:
                raise
            await internal_error(exc)(scope, receive, send_with_id)
        finally:
            logs.request_id.reset(token)


class HostGuard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = settings.hosts
        self.any_host = "*" in self.hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.any_host:
            await self.app(scope, receive, send)
            return
        host = host_name(Headers(scope=scope).get("host", ""))
        if host in self.hosts:
            await self.app(scope, receive, send)
            return
        shown = host[:100] or "(none)"
        error = HostNotAllowed(
            f"Host {shown!r} is not served here; the deployment adds its names with ALPHAFORGE_ALLOWED_HOSTS",
        )
        await error_response(error)(scope, receive, send)


def host_name(header: str) -> str:
    """The Host header without its port, lower case ("[::1]:8000" -> "[::1]")."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[: end + 1] if end > 0 else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Access:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.ready_requires_key = settings.ready_requires_key
        self._roles: list[RouteRole] | None = None  # the app's routes are known at its first request

    def _protected(self, path: str) -> bool:
        return path.startswith(API_PREFIX) or (self.ready_requires_key and path == "/health/ready")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        ctx: Context = scope["app"].state.ctx
        method = scope["method"]
        principal: Principal | None = None
        refusal: AlphaforgeError | None = None
        try:
            principal = await self._authenticate(ctx, Headers(scope=scope))
            if self._roles is None:
                self._roles = route_roles(scope["app"].routes)
            needed = role_needed(self._roles, method, scope["path"]) or Role.READ
            if not principal.role.allows(needed):
                refusal = Forbidden(
                    f"{method} {scope['path']} needs the {needed.value} role; this key has the "
                    f"{principal.role.value} role (an admin can create a key with more)",
                    role_needed=needed.value,
                )
        except AlphaforgeError as exc:  # 401, or 503 when the key store is down
            refusal = exc

        send = self._audited(ctx, scope, principal, send) if method in audit.MUTATING else send
        if refusal is not None:
            await error_response(refusal)(scope, receive, send)
            return
        assert principal is not None
        scope.setdefault("state", {})["principal"] = principal
        token = actor.bind(principal.key_id)  # flows into the threads the request computes in
        try:
            await self.app(scope, receive, send)
        finally:
            actor.unbind(token)

    async def _authenticate(self, ctx: Context, headers: Headers) -> Principal:
        key = presented_key(headers)
        if key is None:
            raise Unauthorized("send an API key: Authorization: Bearer <key>, or X-API-Key: <key>")
        principal = ctx.keys.cached(key) or await run_in_threadpool(ctx.keys.authenticate, key)
        if principal is None:
            raise Unauthorized("the API key is unknown or revoked; ask an admin for a key")
        return principal

    @staticmethod
    def _audited(ctx: Context, scope: Scope, principal: Principal | None, send: Send) -> Send:
        """``send`` that hands the audit entry to the writer when the response starts."""

        async def send_after_audit(message: Message) -> None:
            if message["type"] == "http.response.start":
                client = scope.get("client")
                query = scope.get("query_string") or b""
                ctx.audit.record(
                    audit.Entry(
                        key_id=principal.key_id if principal else None,
                        role=principal.role.value if principal else None,
                        method=scope["method"],
                        path=scope["path"] + (f"?{query.decode('latin-1')}" if query else ""),
                        status_code=int(message["status"]),
                        request_id=logs.request_id.get() or "-",
                        client=client[0] if client else None,
                    )
                )
            await send(message)

        return send_after_audit


class BodyLimit:
    """Bodies over the limit of their kind (uploads: multipart or CSV; everything else is
    JSON) are refused: at once when Content-Length says so, else as soon as the bytes read
    pass the limit (Starlette's limiter; the 413 then comes from the error handlers)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.upload_bytes = int(settings.max_upload_mb * 1024 * 1024)
        self.json_bytes = int(settings.max_json_mb * 1024 * 1024)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        upload = headers.get("content-type", "").lower().startswith(UPLOAD_TYPES)
        limit = self.upload_bytes if upload else self.json_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await error_response(too_large(limit, upload))(scope, receive, send)
            return
        await RequestBodyLimitResponder(self.app, limit)(scope, receive, send)

