"""The read-only web view at /ui: static HTML, JavaScript and CSS shipped in this package.

The shell is public, as /docs is: it holds no data. Every datum comes from /api/v1 with the
key the user enters (kept in the tab's sessionStorage), so each call passes the same role
check as any other client. Charts are drawn by plotly.js, served from the installed plotly
package (no CDN: research networks are often offline), under a strict Content-Security-Policy
(scripts and connections to this origin only).
"""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UI_PREFIX = "/ui"
STATIC = Path(__file__).resolve().parent / "static"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
#: Scripts, styles, images and API calls from this origin only. plotly.js adds <style>
#: elements for its own widgets, so inline styles are allowed; inline scripts are not.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every response of the wrapped app (the web view's files)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_web_view(app: FastAPI) -> None:
    """Serve the web view under /ui and plotly.js from the installed plotly package."""

    @app.get(UI_PREFIX, include_in_schema=False)
    def ui_root() -> RedirectResponse:
        return RedirectResponse(f"{UI_PREFIX}/")

    @app.get(f"{UI_PREFIX}/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript", headers=SECURITY_HEADERS)

    app.mount(UI_PREFIX, SecurityHeaders(StaticFiles(directory=STATIC, html=True)), name="ui")
