"""ASGI middleware that wraps every request: the request id (echoed as ``X-Request-ID`` and
set for the logs of everything the request does), and the last line of defence that turns
an unexpected exception into a JSON 500 carrying that id."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alphaforge import logs
from alphaforge.api.errors import internal_error

REQUEST_ID_HEADER = "X-Request-ID"


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
