"""The FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from alphaforge.api.errors import install_error_handlers
from alphaforge.api.middleware import RequestContext
from alphaforge.api.routes import features, fundamentals, health, macro, market_data, models, news, tasks, tuning
from alphaforge.context import Context
from alphaforge.settings import Settings

API_PREFIX = "/api/v1"
log = logging.getLogger(__name__)


def start_context(settings: Settings) -> Context:
    """Build the services and bring storage up to date (migrations, bucket, sample data)."""
    from alphaforge.marketdata.macro import load_bundled_macro
    from alphaforge.marketdata.sample import load_sample_data
    from alphaforge.storage.migrate import upgrade
    from alphaforge.tasks.executors import make_executor

    if settings.migrate_on_start:
        upgrade(settings.resolved_database_url)
    ctx = Context.from_settings(settings)
    ctx.objects.ensure_ready()
    if settings.load_sample_data and ctx.bars_are_local:
        load_sample_data(ctx.bar_store)
    if settings.load_sample_data:
        load_bundled_macro(ctx)
    ctx.executor = make_executor(ctx)
    return ctx


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ctx = start_context(settings)
        try:
            yield
        finally:
            app.state.ctx.close()

    app = FastAPI(
        title="alphaforge",
        version="0.1.0",
        summary="Causal features, leakage-safe models, over a REST API.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(RequestContext)
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(features.router)
    api.include_router(macro.router)  # before market_data: "/market-data/macro/bars" is a macro series
    api.include_router(fundamentals.router)  # before market_data, like macro
    api.include_router(news.router)  # before market_data, like macro
    api.include_router(market_data.router)
    api.include_router(models.router)
    api.include_router(tuning.router)
    api.include_router(tasks.router)
    app.include_router(health.router)
    app.include_router(api)
    return app
