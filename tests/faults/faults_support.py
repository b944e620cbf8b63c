"""Fault tests' helpers and fixtures: dependencies as processes a test can kill, stall and
restart: moto's S3 server, a socket server that accepts connections and never answers, a
private PostgreSQL cluster (the API itself is served for real by ``support.serve``).

Test modules here import the fixtures they use and carry ``pytestmark = FAULTS`` (deselect
them with ``-m "not faults"``); each bounds its own run time (client timeouts, outage
lengths, recovery deadlines).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import free_port, require

FAULTS = pytest.mark.faults


# -- S3: moto's server as a process ------------------------------------------------------
class MotoProcess:
    """moto's S3 server in its own process: killing it loses every bucket, as a real
    S3-compatible server without persistent storage does when restarted."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.endpoint}/moto-api/", timeout=2).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto's server did not start on port {self.port}")
            time.sleep(0.1)

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=30)
        self._proc = None


class StallServer:
    """Accepts TCP connections on ``port`` and never sends a byte: a hung S3 server."""

    def __init__(self, port: int) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(256)
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            self._held.append(conn)

    @property
    def accepted(self) -> int:
        return len(self._held)

    def close(self) -> None:
        self._sock.close()
        for conn in self._held:
            conn.close()


# -- PostgreSQL: a private cluster -------------------------------------------------------
def postgres_bindir() -> Path | None:
    candidates: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if folder and all(os.access(Path(folder) / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return Path(folder)
    return None


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb + pg_ctl on a free port), so the test
    may stop it without disturbing anything else. As root, it runs as the postgres user."""

    def __init__(self, bindir: Path, folder: Path, port: int) -> None:
        self.bindir = bindir
        self.folder = folder
        self.data = folder / "data"
        self.port = port
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres?connect_timeout=5"
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._as_postgres, str(self.bindir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def init(self) -> None:
        if self._as_postgres:
            shutil.chown(self.folder, user="postgres", group="postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "pg.log"), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


# -- fixtures (imported by the test modules that use them) ----------------------------
@pytest.fixture
def moto_process() -> Iterator[MotoProcess]:
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        require("moto S3 server", str(exc), "install the test extras: pip install -e '.[dev]'")
    server = MotoProcess(free_port())
    server.start()
    yield server
    server.kill()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    bindir = postgres_bindir()
    if bindir is None:
        require(
            "PostgreSQL server binaries (initdb, pg_ctl)",
            "neither `pg_config --bindir` nor /usr/lib/postgresql/*/bin has them",
            "install the PostgreSQL server package (Debian: apt-get install postgresql)",
        )
        raise AssertionError("unreachable")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        require("runuser", "root must run PostgreSQL as the postgres user", "install util-linux")
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="alphaforge-pg-"))
    cluster = PrivatePostgres(bindir, folder, free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.running():
            try:
                cluster.stop("immediate")
            except RuntimeError:
                pass
        shutil.rmtree(folder, ignore_errors=True)
