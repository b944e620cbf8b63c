"""/docs and /redoc that work offline.

FastAPI's default pages load Swagger UI and ReDoc from a public CDN (and ReDoc its fonts
from Google): on a machine without internet, as many research networks are, /docs is a
blank page. The same assets ship inside the installed ``fastapi-offline`` package; they are
served from here under ``/static/docs``. The pages stay public (like the OpenAPI schema):
every operation still needs a key, which Swagger's *Authorize* button sends.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_PREFIX = "/static/docs"
#: Swagger UI's bundle and style sheet, ReDoc's standalone script and the favicon.
#: ReDoc's page: its inline bootstrap script stays allowed; images come from here only.
REDOC_IMAGES_ONLY_FROM_HERE = "img-src 'self' data:"
ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"


def install_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """Serve /docs (Swagger UI, with its OAuth2 redirect page) and /redoc from local assets."""
    app.mount(STATIC_PREFIX, StaticFiles(directory=ASSETS), name="docs-static")
    title = app.title
    oauth2_redirect_url = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=oauth2_redirect_url,
            swagger_js_url=f"{STATIC_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PREFIX}/favicon.png",
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{STATIC_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_PREFIX}/favicon.png",
            with_google_fonts=False,
        )
        # ReDoc's footer shows a logo from cdn.redoc.ly: images from this origin only, so an
        # offline page makes no request that cannot succeed (the footer's text stays).
        page.headers["Content-Security-Policy"] = REDOC_IMAGES_ONLY_FROM_HERE
        return page
