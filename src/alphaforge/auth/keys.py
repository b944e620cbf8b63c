"""API keys: random, shown once, stored only as a SHA-256.

A key is 32 random bytes (``af_`` + URL-safe base64), so a plain SHA-256 is enough to store
it: there is nothing to brute-force that a slow password hash would protect. Lookups go
through a small per-process cache (a few seconds) so authenticating a request costs no
database round trip; revoking through this process drops the entry at once, other
processes stop accepting the key within ``CACHE_TTL_S``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, text

from alphaforge.auth.roles import Role
from alphaforge.errors import Conflict, NotFound
from alphaforge.storage.db import Database, utcnow
from alphaforge.storage.tables import ApiKey

log = logging.getLogger(__name__)

KEY_PREFIX = "af_"
CACHE_TTL_S = 5.0
CACHE_SIZE = 1024
ADMIN_KEY_FILE = "admin-api-key"
BOOTSTRAP_NAME = "bootstrap admin (ALPHAFORGE_ADMIN_API_KEY)"
#: Serialises the first-start admin key across API processes sharing a PostgreSQL database.
_BOOTSTRAP_LOCK = 0x616C7068  # "alph"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    key_id: uuid.UUID
    name: str
    role: Role


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class KeyStore:
    def __init__(self, db: Database, configured_admin: str | None = None) -> None:
        self.db = db
        #: ALPHAFORGE_ADMIN_API_KEY: registered at start, or at its first use when the
        #: database was down at start.
        self._configured_hash = hash_key(configured_admin) if configured_admin else None
        self._configured_prefix = configured_admin[:11] if configured_admin else ""
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    # -- authenticating ---------------------------------------------------------------
    def authenticate(self, presented: str) -> Principal | None:
        """The active key's principal, or None (unknown or revoked)."""
        digest = hash_key(presented)
        cached = self._cached(digest)
        if cached is not None:
            return cached
        with self.db.session() as session:
            row = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).one_or_none()
        if row is None and digest == self._configured_hash:
            row = self._register_configured()
        if row is None or row.revoked_at is not None:
            return None
        principal = Principal(key_id=row.id, name=row.name, role=Role(row.role))
        with self._lock:
            self._cache[digest] = (time.monotonic() + CACHE_TTL_S, principal)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return principal

    def cached(self, presented: str) -> Principal | None:
        """The principal if the key was authenticated in the last few seconds (no I/O)."""
        return self._cached(hash_key(presented))

    def _cached(self, digest: str) -> Principal | None:
        with self._lock:
            entry = self._cache.get(digest)
            if entry is None:
                return None
            if entry[0] < time.monotonic():
                del self._cache[digest]
                return None
            return entry[1]

    # -- managing ---------------------------------------------------------------------
    def create(self, name: str, role: Role) -> tuple[ApiKey, str]:
        """A new key and its secret (the only time the secret exists outside the caller)."""
        key = new_key()
        row = ApiKey(name=name, role=role.value, key_hash=hash_key(key), prefix=key[:11])
        with self.db.session() as session:
            session.add(row)
        return row, key

    def list(self, include_revoked: bool = True) -> list[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        with self.db.session() as session:
            return list(session.scalars(query))

    def get(self, key_id: uuid.UUID) -> ApiKey:
        with self.db.session() as session:
            row = session.get(ApiKey, key_id)
        if row is None:
            raise NotFound("API key not found")
        return row

    def revoke(self, key_id: uuid.UUID) -> ApiKey:
        """Revoke a key (idempotent); refused when it is the last active admin key."""
        with self.db.session() as session:
            row = session.get(ApiKey, key_id, with_for_update=True)
            if row is None:
                raise NotFound("API key not found")
            if row.revoked_at is None:
                if row.role == Role.ADMIN and self._active_admins(session) <= 1:
                    raise Conflict("this is the last active admin key; create another admin key before revoking it")
                row.revoked_at = utcnow()
            digest = row.key_hash
        with self._lock:
            self._cache.pop(digest, None)
        return row

    @staticmethod
    def _active_admins(session) -> int:  # type: ignore[no-untyped-def]
        return len(session.scalars(select(ApiKey.id).where(ApiKey.role == Role.ADMIN.value, ApiKey.revoked_at.is_(None))).all())

    # -- first start --------------------------------------------------------------------
    def bootstrap(self, data_dir: Path) -> str | None:
        """Make sure an admin can get in.

        The configured key (ALPHAFORGE_ADMIN_API_KEY) is registered as an admin key once (a
        key revoked through the API stays revoked). Without one, when no active admin key
        exists, a key is created, written to ``<data_dir>/admin-api-key`` (mode 0600) and
        returned so the caller prints it once."""
        if self._configured_hash is not None:
            self._register_configured()
            return None
        with self.db.session() as session:
            _lock_bootstrap(session)
            if self._active_admins(session):
                return None
            key = new_key()
            session.add(ApiKey(name="admin (created at first start)", role=Role.ADMIN.value, key_hash=hash_key(key),
                               prefix=key[:11]))
        write_key_file(data_dir / ADMIN_KEY_FILE, key)
        return key

    def _register_configured(self) -> ApiKey:
        with self.db.session() as session:
            _lock_bootstrap(session)
            row = session.scalars(select(ApiKey).where(ApiKey.key_hash == self._configured_hash)).one_or_none()
            if row is None:
                row = ApiKey(name=BOOTSTRAP_NAME, role=Role.ADMIN.value, key_hash=self._configured_hash,
                             prefix=self._configured_prefix)
                session.add(row)
            elif row.revoked_at is not None:
                log.warning("ALPHAFORGE_ADMIN_API_KEY names a key that was revoked; it is not accepted")
        return row


def _lock_bootstrap(session) -> None:  # type: ignore[no-untyped-def]
    """Serialise first-start key creation across API processes sharing a PostgreSQL database."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _BOOTSTRAP_LOCK})


def write_key_file(path: Path, key: str) -> None:
    """Write a secret readable by its owner only (created 0600, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    os.chmod(path, 0o600)
