"""Stall-to-503: how long a client waits when the S3 server accepts connections and never
answers, with the default S3 timeouts (``s3_connect_timeout_s``, ``s3_read_timeout_s``).

Per run: moto's S3 server (in-process) on a free port and the API on SQLite + that S3,
served by uvicorn; one feature generated (its dataset stored), one created but not
generated. Then moto stops and a socket server that accepts and never answers takes its
port, and each request is timed until its 503: generate of the stored dataset (a read),
generate of the new one (a write: botocore sends ``Expect: 100-continue``, which aiohttp
waits for with no timeout of its own), ``GET /health/ready``. Reported: the median over runs.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import machine_info, machine_line, table, write_results

NAME = "object_store_stall"
CLIENT_TIMEOUT_S = 1200.0
RSI = {"name": "rsi", "type": "technical", "plugin_key": "technical.rsi"}
RANGE = {"symbol": "GSPC", "start_date": "2010-01-01", "end_date": "2011-01-01"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Stall:
    """Accepts connections on ``port`` and never sends a byte."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(256)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def one_run(data_dir: Path) -> dict[str, Any]:
    import uvicorn
    from moto.server import ThreadedMotoServer

    from alphaforge.api.app import create_app
    from alphaforge.settings import Settings

    s3_port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    moto.start()
    settings = Settings(
        data_dir=data_dir, object_store_url="s3://stall-bench/objects", s3_endpoint_url=f"http://127.0.0.1:{s3_port}",
        s3_access_key_id="bench", s3_secret_access_key="bench",
    )
    api_port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=api_port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    stall: _Stall | None = None
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=CLIENT_TIMEOUT_S) as http:
            stored = http.post("/api/v1/features", json=RSI).json()["id"]
            assert http.post(f"/api/v1/features/{stored}/generate", json=RANGE).status_code == 200
            fresh = http.post("/api/v1/features", json=RSI | {"name": "rsi-2", "parameters": {"period": 21}}).json()["id"]
            moto.stop()
            stall = _Stall(s3_port)
            timings: dict[str, Any] = {}
            for label, method, path, body in (
                ("read (generate, stored dataset)", "POST", f"/api/v1/features/{stored}/generate", RANGE),
                ("write (generate, new dataset)", "POST", f"/api/v1/features/{fresh}/generate", RANGE),
                ("GET /health/ready", "GET", "/health/ready", None),
            ):
                t0 = time.perf_counter()
                response = http.request(method, path, json=body)
                elapsed = time.perf_counter() - t0
                assert response.status_code == 503 and response.json()["dependency"] == "object store", response.text
                timings[label] = {"seconds": round(elapsed, 2), "detail": response.json()["detail"]}
                print(f"[{NAME}] {label}: 503 after {elapsed:.1f} s ({response.json()['detail']})", flush=True)
            return timings
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        if stall is not None:
            stall.close()


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    defaults = result["config"]
    target = f"~{defaults['s3_connect_timeout_s'] + defaults['s3_read_timeout_s']:g} s (connect + read)"
    return [[NAME, f"stall -> 503, {label} (median of {result['config']['runs']})", f"{r['median_s']:.1f} s", target, None]
            for label, r in result["requests"].items()]


def main(argv: list[str] | None = None) -> int:
    from alphaforge.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m bench.object_store_stall", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run instead of three")
    parser.add_argument("--runs", type=int, help="runs (default 3)")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    print(f"[{NAME}] machine: {machine_line(machine_info())}", flush=True)
    defaults = Settings()
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="alphaforge-stall-") as tmp:
            for label, r in one_run(Path(tmp)).items():
                samples.setdefault(label, []).append(r["seconds"])
    result = {
        "config": {"runs": runs, "s3_connect_timeout_s": defaults.s3_connect_timeout_s,
                   "s3_read_timeout_s": defaults.s3_read_timeout_s, "s3_max_attempts": defaults.s3_max_attempts},
        "requests": {label: {"median_s": statistics.median(v), "samples_s": v} for label, v in samples.items()},
    }
    path = write_results(NAME, result, quick=args.quick)
    print(table(summary_rows(result), ["benchmark", "metric", "value", "expected", "met"]))
    print(f"[{NAME}] results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
