"""Canonical JSON and the content hashes built on it."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any


def canonical_json(document: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, NaN refused: one byte string per document."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def content_hash(document: Any) -> str:
    return hashlib.sha256(canonical_json(document)).hexdigest()


def utc_iso(value: datetime) -> str:
    """``2010-01-01T00:00:00Z``: one spelling per instant, whatever the input's zone."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: convert to UTC first")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")
