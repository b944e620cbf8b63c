"""One object-store interface over fsspec: ``file://`` by default, ``s3://`` in production.

Keys are relative paths (``features/<id>/GSPC/1d/<hash>.parquet``); URIs are what rows
store. A put is atomic: readers see the old object or the new one, never half of one.

Failures become ``DependencyUnavailable("object store")`` (503) with a reason a client can
act on; the endpoint, bucket, keys and local paths go to the server log only. On S3:

- every operation has one deadline, connect + read timeout: botocore's retries happen
  within it and s3fs's own retry loop (5 tries with backoff, on top of botocore's) is off,
  so a server that accepts connections and never answers costs a request that long;
- a missing bucket (a server restarted empty) is created again by the next write; reads
  see its objects as missing, like any lost object.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import fsspec

from alphaforge.errors import DependencyUnavailable, NotFound

DEPENDENCY = "object store"
#: Existence checks ``exists_many`` keeps in flight on S3.
CONCURRENT_STATS = 16
log = logging.getLogger(__name__)


class ObjectNotFound(NotFound):
    """The object is not stored (never written, deleted, or lost with its bucket)."""

    def __init__(self, key: str) -> None:
        super().__init__("an object is missing from the object store")
        self.key = key


class ObjectStore:
    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        region: str | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 10.0,
        max_attempts: int = 2,
    ) -> None:
        self.url = url.rstrip("/")
        protocol, _, root = self.url.partition("://")
        if protocol not in ("file", "s3"):
            raise ValueError(f"object store URL must start with file:// or s3://, got {url!r}")
        self.protocol = protocol
        self.root = root.rstrip("/")
        self.bucket = self.root.split("/", 1)[0]
        #: The most one S3 operation may take, retries included.
        self.deadline_s = connect_timeout_s + read_timeout_s
        options: dict[str, Any] = {}
        if protocol == "s3":
            options = {
                "key": access_key_id,
                "secret": secret_access_key,
                "use_listings_cache": False,
                "skip_instance_cache": True,
                # us-east-1 is S3's default region and must not be named when creating a bucket.
                "client_kwargs": {"region_name": region} if region and region != "us-east-1" else {},
                "config_kwargs": {
                    "retries": {"mode": "standard", "total_max_attempts": max_attempts},
                    "connect_timeout": connect_timeout_s,
                    "read_timeout": read_timeout_s,
                },
            }
            if endpoint_url:
                options["endpoint_url"] = endpoint_url
        self.fs = fsspec.filesystem(protocol, **options)
        if protocol == "s3":
            # s3fs retries timeouts itself (class attribute ``retries``, 5 with backoff) on
            # top of botocore's attempts; botocore's are the only ones we want.
            self.fs.retries = 1

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
        with self._translate("prepare", self.url):
            if self.protocol == "file":
                os.makedirs(self.root, exist_ok=True)
                return
            try:
                self._call("call_s3", "head_bucket", Bucket=self.bucket)
            except FileNotFoundError:
                self._create_bucket()

    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        with self._translate("write", key):
            if self.protocol == "file":
                tmp = f"{path}.tmp-{uuid.uuid4().hex}"
                try:
                    fh = open(tmp, "wb")  # noqa: SIM115 - closed below
                except FileNotFoundError:  # the first object under this folder (makedirs on every put cost ~0.6 ms)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    fh = open(tmp, "wb")  # noqa: SIM115
                with fh:
                    fh.write(data)
                os.replace(tmp, path)
            else:
                try:
                    self._call("pipe_file", path, data)
                except FileNotFoundError:
                    # A put fails so only when the bucket is gone: create it, write once more.
                    self._create_bucket()
                    try:
                        self._call("pipe_file", path, data)
                    except FileNotFoundError as exc:
                        raise self._bucket_missing(exc) from exc
        return self.uri(key)

    def get(self, key: str) -> bytes:
        with self._translate("read", key):
            try:
                return self._call("cat_file", self._path(key))
            except (FileNotFoundError, IsADirectoryError):  # a local folder is no object either
                raise ObjectNotFound(key) from None

    def exists(self, key: str) -> bool:
        with self._translate("stat", key):
            if self.protocol == "file":  # one stat (fsspec's local exists builds an info dict: ~8 us a call)
                return os.path.exists(self._path(key))
            return bool(self._call("exists", self._path(key)))

    def exists_many(self, keys: list[str]) -> list[bool]:
        """``exists`` of each key; on S3 up to ``CONCURRENT_STATS`` requests in flight (a panel
        hit checks every piece it names: one HEAD after another cost a round trip each)."""
        if self.protocol == "file":  # one stat each, under one error translation
            with self._translate("stat", f"{len(keys)} objects"):
                return [os.path.exists(self._path(key)) for key in keys]
        if len(keys) < 2:
            return [self.exists(key) for key in keys]
        with ThreadPoolExecutor(min(CONCURRENT_STATS, len(keys)), thread_name_prefix="object-stat") as pool:
            return list(pool.map(self.exists, keys))

    def delete(self, key: str) -> None:
        with self._translate("delete", key):
            try:
                self._call("rm_file", self._path(key))
            except FileNotFoundError:
                pass

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix).rstrip("/")
        with self._translate("list", prefix):
            try:
                paths = self._call("find", base)
            except FileNotFoundError:
                return []
        return sorted(p[len(self.root) + 1:] for p in paths)

    # -- internals --------------------------------------------------------------------
    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call an fsspec method; on S3 under the operation deadline (fsspec's ``timeout``),
        which cancels the request still in flight."""
        if self.protocol == "s3":
            kwargs["timeout"] = self.deadline_s
        return getattr(self.fs, method)(*args, **kwargs)

    def _create_bucket(self) -> None:
        log.warning("object store: bucket %r is missing; creating it", self.bucket)
        try:
            self._call("mkdir", self.bucket)
        except FileExistsError:
            pass  # created meanwhile by another request or process
        except Exception as exc:
            # Down or stalled: reported as such by _translate; refused: say what is missing.
            if _is_timeout(exc) or _is_connection_error(exc):
                raise
            if isinstance(exc, OSError) or _is_client_error(exc):
                raise self._bucket_missing(exc) from exc
            raise

    def _bucket_missing(self, exc: BaseException) -> DependencyUnavailable:
        where = self._where()
        log.error("object store: bucket %r at %s is missing and could not be created: %r", self.bucket, where, exc)
        code = _error_code(exc)
        return DependencyUnavailable(
            DEPENDENCY, "the bucket is missing and could not be created" + (f" ({code})" if code else "")
        )

    @contextmanager
    def _translate(self, operation: str, target: str) -> Iterator[None]:
        """Turns transport failures into a 503 that names the object store (never its
        endpoint, bucket, keys or paths: those go to the log)."""
        try:
            yield
        except (ObjectNotFound, DependencyUnavailable):
            raise
        except Exception as exc:
            if not isinstance(exc, OSError) and not _is_client_error(exc):
                raise
            # A known outage: one line with the detail (endpoint, bucket, key), no traceback.
            log.warning("object store: %s of %s at %s failed: %r", operation, target, self._where(), exc)
            raise DependencyUnavailable(DEPENDENCY, self._reason(operation, exc)) from exc

    def _where(self) -> str:
        """Where the store lives, for the log: the S3 endpoint, or the folder's URL."""
        return (getattr(self.fs, "endpoint_url", None) if self.protocol == "s3" else None) or self.url

    def _reason(self, operation: str, exc: BaseException) -> str:
        if self.protocol == "file" and isinstance(exc, OSError):
            return f"cannot {operation}: {exc.strerror or type(exc).__name__}"  # strerror names no path
        if _is_timeout(exc):
            return f"it did not answer within {self.deadline_s:g} s"
        if _is_connection_error(exc):
            return "cannot connect to it"
        if isinstance(exc, PermissionError):
            return f"it refused to {operation} (access denied); check the object store credentials and permissions"
        code = _error_code(exc)
        if code:
            return f"it refused to {operation} ({code})"
        return f"cannot {operation}: {type(exc).__name__}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_timeout(exc: BaseException) -> bool:
    """The deadline (``FSTimeoutError``, a ``TimeoutError``) or botocore's connect/read timeout."""
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    kinds = (TimeoutError, asyncio.TimeoutError, ConnectTimeoutError, ReadTimeoutError)
    return any(isinstance(e, kinds) for e in _chain(exc))


def _is_connection_error(exc: BaseException) -> bool:
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    return any(isinstance(e, (ConnectionError, EndpointConnectionError, ConnectionClosedError)) for e in _chain(exc))


def _error_code(exc: BaseException) -> str | None:
    """S3's error code (``AccessDenied``, ``SlowDown`` ...): names no bucket or key."""
    for e in _chain(exc):
        response = getattr(e, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)[:64]
    return None


def _is_client_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec"))


def _clean_key(key: str) -> str:
    key = key.strip("/")
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key
