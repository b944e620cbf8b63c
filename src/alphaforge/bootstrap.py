"""The composition root: settings in, a running :class:`~alphaforge.context.Context` out.
The API (at start), the CLI and the benchmarks all start here, so each sees storage at the
newest schema, the bundled data loaded and the task executor wired the same way."""

from __future__ import annotations

import logging

from alphaforge.context import Context
from alphaforge.errors import DependencyUnavailable
from alphaforge.ingestion.service import load_bundled_data
from alphaforge.settings import Settings
from alphaforge.storage.migrate import upgrade
from alphaforge.tasks.executors import make_executor
from alphaforge.tasks.runner import fail_orphans
from alphaforge.universes.sample import ensure_sp20

log = logging.getLogger(__name__)


def start_context(settings: Settings) -> Context:
    """Build the services and bring storage up to date (migrations, bucket, sample data)."""
    if settings.migrate_on_start:
        upgrade(settings.resolved_database_url)
    ctx = Context.from_settings(settings)
    try:  # a store that is down now is not fatal: the service starts, answers 503s naming it
        ctx.objects.ensure_ready()
    except DependencyUnavailable as exc:
        log.warning("the object store is not ready: %s", exc.message)
    if settings.load_sample_data:
        load_bundled_data(ctx)
        try:
            ensure_sp20(ctx)
        except DependencyUnavailable as exc:
            log.warning("the sample universe SP20 is created at the next start: %s", exc.message)
    try:  # embedded: what a previous process left PENDING/STARTED can never finish
        ended = fail_orphans(ctx)
        if ended:
            log.warning("%d task(s) left unfinished by a previous run of the service ended FAILURE", ended)
    except DependencyUnavailable as exc:  # the reaper does it once the database is back
        log.warning("orphaned tasks not checked at start: %s", exc.message)
    ctx.executor = make_executor(ctx)
    return ctx
