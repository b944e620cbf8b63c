"""Work the fork server does once, before it forks any worker, so no task pays for it.

SQLAlchemy configures its mappers lazily, on the first query of each process: ~0.2-0.5 s
on a 2-core machine, paid again by every freshly started worker (the first piece batch of
a panel waited for it). Configured here, in the fork server, every worker inherits them.
"""

from __future__ import annotations

from sqlalchemy.orm import configure_mappers

from alphaforge.storage import tables  # noqa: F401 - every mapped class must be imported first

configure_mappers()
