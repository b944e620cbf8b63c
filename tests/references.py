"""Independent encodings of alphaforge's content fingerprints and hashes, written from their
documented layouts with ``struct`` and ``json`` (not with the code's numpy paths), for tests."""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

import pandas as pd


def bars_fingerprint(frame: pd.DataFrame) -> str:
    """Header, row count (<q), timestamps as UTC ns (<q each), then open, high, low, close,
    volume column after column (<d each)."""
    digest = hashlib.sha256(b"alphaforge.bars/1\n")
    digest.update(struct.pack("<q", len(frame)))
    for stamp in frame.index:
        digest.update(struct.pack("<q", pd.Timestamp(stamp).tz_convert("UTC").value))
    for column in ("open", "high", "low", "close", "volume"):
        for value in frame[column]:
            digest.update(struct.pack("<d", float(value)))
    return digest.hexdigest()


def pit_fingerprint(records: list[tuple[int, int, float]]) -> str:
    """Records sorted by (observation, available, the value's bit pattern); then every
    observation (<q), every available time (<q), every value (<d)."""
    def bits(value: float) -> int:
        return struct.unpack("<q", struct.pack("<d", value))[0]

    ordered = sorted(records, key=lambda r: (r[0], r[1], bits(r[2])))
    payload = b"".join(struct.pack("<q", r[0]) for r in ordered)
    payload += b"".join(struct.pack("<q", r[1]) for r in ordered)
    payload += b"".join(struct.pack("<d", r[2]) for r in ordered)
    return hashlib.sha256(payload).hexdigest()


def version_hash(lineage: dict[str, Any]) -> str:
    """SHA-256 of the lineage as canonical JSON: sorted keys, no whitespace, UTF-8."""
    text = json.dumps(lineage, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
