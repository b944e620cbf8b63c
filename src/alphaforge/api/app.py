"""The FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from alphaforge.api.docs import install_docs
from alphaforge.api.errors import install_error_handlers
from alphaforge.api.middleware import Access, BodyLimit, HostGuard, RequestContext
from alphaforge.api.routes import (
    evaluations,
    features,
    fundamentals,
    health,
    importance,
    keys,
    macro,
    market_data,
    models,
    news,
    studies,
    tasks,
    tuning,
    universes,
)
from alphaforge.api.security import check_every_route_has_a_role
from alphaforge.bootstrap import start_context
from alphaforge.context import Context
from alphaforge.errors import DependencyUnavailable
from alphaforge.schemas.errors import COMMON, responses
from alphaforge.settings import Settings
from alphaforge.web import install_web_view

API_PREFIX = "/api/v1"
log = logging.getLogger(__name__)


def announce_admin_key(ctx: Context) -> None:
    """First start without ALPHAFORGE_ADMIN_API_KEY: create the admin key and print it once.
    A database that is down now is not fatal: the service starts (and answers 503s)."""
    settings = ctx.settings
    try:
        created = ctx.keys.bootstrap(settings.data_dir)
    except DependencyUnavailable as exc:
        log.warning("admin key not checked at start: %s", exc.message)
        return
    if created is not None:
        path = (settings.data_dir / "admin-api-key").resolve()
        print(
            "\n  alphaforge admin API key (shown once; also written to "
            f"{path}, mode 0600):\n\n    {created}\n\n"
            "  Send it as 'Authorization: Bearer <key>'; create keys for others with "
            "POST /api/v1/keys or `alphaforge keys create`.\n",
            flush=True,
        )


@functools.cache
def _api_router() -> APIRouter:
    """The /api/v1 operations, built once per process: FastAPI derives each operation's
    validation models when a router is first included (~0.4 s for ours) and keeps them on
    the router, so every later app (a test's, a second server in one process) reuses them."""
    api = APIRouter(prefix=API_PREFIX, responses=responses(*COMMON))
    api.include_router(features.router)
    api.include_router(macro.router)  # before market_data: "/market-data/macro/bars" is a macro series
    api.include_router(fundamentals.router)  # before market_data, like macro
    api.include_router(news.router)  # before market_data, like macro
    api.include_router(market_data.router)
    api.include_router(models.router)
    api.include_router(universes.router)
    api.include_router(tuning.router)
    api.include_router(studies.router)
    api.include_router(importance.router)
    api.include_router(evaluations.router)
    api.include_router(tasks.router)
    api.include_router(keys.router)
    return api


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = start_context(settings)
        announce_admin_key(ctx)
        app.state.ctx = ctx
        try:
            yield
        finally:
            app.state.ctx.close()

    docs = settings.docs_enabled
    app = FastAPI(
        title="alphaforge",
        version="0.1.0",
        summary="Causal features, leakage-safe models, over a REST API.",
        description=(
            "Every /api/v1 operation needs an API key, sent as `Authorization: Bearer <key>` "
            "(or `X-API-Key: <key>`); roles: read (every GET), research (+ definitions, generate, "
            "train, tune, AutoML, predict, cancel own tasks), admin (+ deletes, market-data "
            "ingestion, keys, audit, any task). Errors are `{detail, error, request_id, ...}`."
        ),
        lifespan=lifespan,
        docs_url=None,  # install_docs serves /docs and /redoc from local assets (offline)
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    install_error_handlers(app)
    # add_middleware puts each new one outermost: the request passes them bottom to top.
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(Access, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(HostGuard, settings=settings)
    app.add_middleware(RequestContext)

    app.include_router(health.router)
    app.include_router(_api_router())
    if docs:
        install_docs(app)
    install_web_view(app)
    check_every_route_has_a_role(app.routes, API_PREFIX)
    return app
