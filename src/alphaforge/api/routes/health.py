from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from alphaforge.api.deps import CtxDep
from alphaforge.errors import DependencyUnavailable

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(ctx: CtxDep) -> dict[str, str]:
    """Liveness: answers at once, even while heavy work runs."""
    return {"status": "ok", "service": ctx.settings.app_name, "env": ctx.settings.env}


@router.get("/health/ready")
def ready(ctx: CtxDep) -> dict[str, str]:
    """Readiness: the database and the object store answer (503 naming the one that does not)."""
    try:
        with ctx.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise DependencyUnavailable("database", str(exc).splitlines()[0]) from exc
    ctx.objects.ensure_ready()
    return {"status": "ready", "database": ctx.db.engine.dialect.name, "object_store": ctx.objects.protocol}
