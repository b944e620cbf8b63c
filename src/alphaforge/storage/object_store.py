"""One object-store interface over fsspec: ``file://`` by default, ``s3://`` in production.

Keys are relative paths (``features/<id>/GSPC/1d/<hash>.parquet``); URIs are what rows
store. A put is atomic: readers see the old object or the new one, never half of one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fsspec

from alphaforge.errors import DependencyUnavailable, NotFound

DEPENDENCY = "object store"


class ObjectNotFound(NotFound):
    pass


class ObjectStore:
    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        region: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        protocol, _, root = self.url.partition("://")
        if protocol not in ("file", "s3"):
            raise ValueError(f"object store URL must start with file:// or s3://, got {url!r}")
        self.protocol = protocol
        self.root = root.rstrip("/")
        options: dict[str, Any] = {}
        if protocol == "s3":
            options = {
                "key": access_key_id,
                "secret": secret_access_key,
                "use_listings_cache": False,
                "skip_instance_cache": True,
                # us-east-1 is S3's default region and must not be named when creating a bucket.
                "client_kwargs": {"region_name": region} if region and region != "us-east-1" else {},
                "config_kwargs": {"retries": {"max_attempts": 2}, "connect_timeout": 5, "read_timeout": 30},
            }
            if endpoint_url:
                options["endpoint_url"] = endpoint_url
        self.fs = fsspec.filesystem(protocol, **options)

    # -- addressing -------------------------------------------------------------------
    def uri(self, key: str) -> str:
        return f"{self.url}/{_clean_key(key)}"

    def key_of(self, uri: str) -> str:
        prefix = self.url + "/"
        if not uri.startswith(prefix):
            raise ValueError(f"{uri!r} is not inside the object store {self.url!r}")
        return _clean_key(uri[len(prefix):])

    def _path(self, key: str) -> str:
        return f"{self.root}/{_clean_key(key)}"

    # -- operations -------------------------------------------------------------------
    def ensure_ready(self) -> None:
        """Create the local folder or the S3 bucket if missing; fail early if unreachable."""
        with _translate("prepare"):
            if self.protocol == "file":
                os.makedirs(self.root, exist_ok=True)
                return
            bucket = self.root.split("/", 1)[0]
            if not self.fs.exists(bucket):
                self.fs.mkdir(bucket)

    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        with _translate(f"write {key}"):
            if self.protocol == "file":
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = f"{path}.tmp-{uuid.uuid4().hex}"
                with open(tmp, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            else:
                self.fs.pipe_file(path, data)
        return self.uri(key)

    def get(self, key: str) -> bytes:
        with _translate(f"read {key}"):
            try:
                return self.fs.cat_file(self._path(key))
            except FileNotFoundError as exc:
                raise ObjectNotFound(f"object {key!r} is missing from the object store") from exc

    def exists(self, key: str) -> bool:
        with _translate(f"stat {key}"):
            return bool(self.fs.exists(self._path(key)))

    def delete(self, key: str) -> None:
        with _translate(f"delete {key}"):
            try:
                self.fs.rm_file(self._path(key))
            except FileNotFoundError:
                pass

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix).rstrip("/")
        with _translate(f"list {prefix}"):
            try:
                paths = self.fs.find(base)
            except FileNotFoundError:
                return []
        return sorted(p[len(self.root) + 1:] for p in paths)



@contextmanager
def _translate(what: str) -> Iterator[None]:
    """Turns transport failures into a 503 that names the object store."""
    try:
        yield
    except (ObjectNotFound, FileNotFoundError):
        raise
    except (OSError, ConnectionError, TimeoutError) as exc:
        raise DependencyUnavailable(DEPENDENCY, f"cannot {what}: {exc}") from exc
    except Exception as exc:
        if _is_client_error(exc):
            raise DependencyUnavailable(DEPENDENCY, f"cannot {what}: {exc}") from exc
        raise


def _is_client_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("botocore", "aiobotocore", "aiohttp", "s3fs"))


def _clean_key(key: str) -> str:
    key = key.strip("/")
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key
