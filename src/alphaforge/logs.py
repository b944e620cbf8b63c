"""Logging with a correlation id: every record carries the id of the request (or task)
being served, so a client's error body (which names the id) leads to the server's log
lines that hold the details a client must not see (hosts, buckets, keys, paths)."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

#: The id of the request (API) or task (worker) this thread of work is serving.
request_id: ContextVar[str | None] = ContextVar("alphaforge_request_id", default=None)

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def new_request_id(offered: str | None = None) -> str:
    """The client's ``X-Request-ID`` when it is a safe token, else a fresh one."""
    if offered and _CLIENT_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` ("-" outside a request) so the format can print it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get() or "-"
        return True


def configure(level: int = logging.INFO) -> None:
    """Root logging for the CLI and the services it starts. Like ``logging.basicConfig``,
    it leaves a root logger that already has handlers (a host application's) alone."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)
