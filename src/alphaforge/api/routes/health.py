from __future__ import annotations

import logging

from fastapi import APIRouter
from sqlalchemy import text

from alphaforge.api.deps import CtxDep
from alphaforge.errors import DependencyUnavailable
from alphaforge.schemas.errors import responses
from alphaforge.storage.db import database_unavailable

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/health", responses=responses(400))
async def health(ctx: CtxDep) -> dict[str, str]:
    """Liveness: answers at once, even while heavy work runs."""
    return {"status": "ok", "service": ctx.settings.app_name, "env": ctx.settings.env}


@router.get("/health/ready", responses=responses(400, 401, 403, 503))
def ready(ctx: CtxDep) -> dict[str, str]:
    """Readiness: the database and the object store answer (503 naming the one that does
    not, never its host or path: those go to the log). Needs a key (any role) when
    ALPHAFORGE_READY_REQUIRES_KEY is set."""
    try:
        with ctx.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        unavailable = database_unavailable(exc)
        if unavailable is None:
            log.warning("readiness: the database check failed", exc_info=exc)
            unavailable = DependencyUnavailable("database", "it failed the readiness check")
        raise unavailable from exc
    ctx.objects.ensure_ready()
    return {"status": "ready", "database": ctx.db.engine.dialect.name, "object_store": ctx.objects.protocol}
