"""The ``alphaforge`` command line, run as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from alphaforge.cli import main
from support import free_port

CSV = "timestamp,open,high,low,close,volume\n2021-01-04,10,11,9,10.5,100\n2021-01-05,10.5,12,10,11.5,150\n"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ALPHAFORGE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_migrate_ingest_and_symbols(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    assert (data_dir / "alphaforge.db").exists()
    csv = tmp_path / "bars.csv"
    csv.write_text(CSV)
    assert main(["ingest", "abc", str(csv)]) == 0
    assert "ABC 1d: 2 received, 2 new, 0 replaced; 2 bars from 2021-01-04 to 2021-01-05" in capsys.readouterr().out
    assert main(["symbols"]) == 0
    out = capsys.readouterr().out
    assert "ABC          1d  2021-01-04 .. 2021-01-05  2 bars" in out
    assert "GSPC         1d  1999-01-04 .. 2018-12-31  5031 bars" in out


def test_ingest_of_bad_bars_exits_2_with_the_reason(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(CSV.replace("10,11,9,10.5", "10,11,9,12.5"))
    assert main(["ingest", "ABC", str(csv)]) == 2
    assert "row 1 (2021-01-04T00:00:00+00:00): close > high" in capsys.readouterr().err


def test_serve_answers_on_its_port(data_dir: Path) -> None:
    executable = shutil.which("alphaforge", path=os.path.dirname(sys.executable))
    assert executable, "the alphaforge console script is installed with the package"
    port = free_port()
    process = subprocess.Popen([executable, "serve", "--port", str(port)], env=os.environ.copy(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/v1/market-data/symbols", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "server did not start within 60 s"
                time.sleep(0.2)
        assert response.status_code == 200
        assert {s["symbol"] for s in response.json()["symbols"]} == {"GSPC", "IXIC"}
    finally:
        process.terminate()
        process.wait(timeout=10)
