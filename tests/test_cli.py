"""The ``alphaforge`` command line, run as a user would."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import threading
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


class Server:
    """`alphaforge serve` as a user starts it; its output is collected as it comes."""

    def __init__(self, port: int) -> None:
        executable = shutil.which("alphaforge", path=os.path.dirname(sys.executable))
        assert executable, "the alphaforge console script is installed with the package"
        env = {k: v for k, v in os.environ.items() if k != "ALPHAFORGE_ADMIN_API_KEY"}
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([executable, "serve", "--port", str(port)], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        threading.Thread(target=lambda: self.output.extend(self.process.stdout), daemon=True).start()
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}/health", timeout=2)
                return
            except httpx.TransportError:
                assert self.process.poll() is None, "".join(self.output)
                assert time.monotonic() < deadline, "server did not start within 60 s"
                time.sleep(0.2)

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=30)
        return "".join(self.output)


SP20 = set("AAPL AMD BAC BBY CVX GE HD JNJ JPM KO LLY MRK MSFT PEP PFE PG RRC UNH WMT XOM".split())


def test_serve_prints_the_admin_key_once_and_the_api_needs_it(data_dir: Path) -> None:
    server = Server(free_port())
    try:
        symbols = f"{server.url}/api/v1/market-data/symbols"
        assert httpx.get(symbols, timeout=5).status_code == 401
        key = (data_dir / "admin-api-key").read_text().strip()
        assert stat.S_IMODE((data_dir / "admin-api-key").stat().st_mode) == 0o600
        for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
            response = httpx.get(symbols, headers=headers, timeout=5)
            assert response.status_code == 200
            # The two index series and the SP20 stocks named in issue 13, written out here.
            assert {s["symbol"] for s in response.json()["symbols"]} == {"GSPC", "IXIC"} | SP20
    finally:
        first = server.stop()
    assert re.findall(r"af_[A-Za-z0-9_-]{43}", first) == [key]  # printed, once
    again = Server(free_port())
    try:  # the second start creates and prints no new key; the first still works
        response = httpx.get(f"{again.url}/api/v1/features", headers={"X-API-Key": key}, timeout=5)
        assert response.status_code == 200
    finally:
        assert "af_" not in again.stop()


def test_keys_create_list_revoke(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from alphaforge.auth.keys import KeyStore
    from alphaforge.settings import Settings
    from alphaforge.storage.db import Database

    assert main(["keys", "create", "--name", "alice", "--role", "research"]) == 0
    created = capsys.readouterr().out
    key = created.strip().splitlines()[-1]
    key_id = created.split()[3]
    db = Database(Settings().resolved_database_url)
    try:
        principal = KeyStore(db).authenticate(key)
        assert principal is not None and principal.name == "alice" and principal.role == "research"
        assert main(["keys", "list"]) == 0
        listed = capsys.readouterr().out
        assert key_id in listed and "research" in listed and key not in listed
        assert main(["keys", "revoke", key_id]) == 0
        assert f"revoked key {key_id}" in capsys.readouterr().out
        assert KeyStore(db).authenticate(key) is None
        assert main(["keys", "list"]) == 0 and key_id not in capsys.readouterr().out
        assert main(["keys", "list", "--all"]) == 0 and "revoked" in capsys.readouterr().out
        assert main(["keys", "revoke", "not-a-uuid"]) == 2
        assert "is not a key id" in capsys.readouterr().err
    finally:
        db.dispose()


NEWS_CSV = (
    "published_at,headline,body,source,url\n"
    "2018-01-02T15:30:00+01:00,Stocks open higher,Equities rose.,Wire,https://example.com/1\n"
    "2018-01-02T09:00:00-05:00,Fed minutes due,,,\n"
    "2018-01-02T14:30:00Z,Stocks open higher,A rewrite,Other,\n"
)


def _news_fingerprint(articles: list[tuple[str, str, str | None]]) -> str:
    """The documented NewsArticles fingerprint, from (UTC ISO time, headline, body)."""
    import hashlib

    import pandas as pd

    digest = hashlib.sha256(b"alphaforge.news/1\n")
    for stamp, headline, body in sorted(articles):
        text = f"{headline}\n\n{body}" if body else headline
        digest.update(f"{pd.Timestamp(stamp).value} {hashlib.sha256(text.encode()).hexdigest()}\n".encode())
    return digest.hexdigest()


def test_ingest_news_from_csv_and_json_then_list(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    csv = tmp_path / "news.csv"
    csv.write_text(NEWS_CSV)
    assert main(["ingest-news", "abc", str(csv)]) == 0
    stored = [("2018-01-02T14:00:00Z", "Fed minutes due", None),
              ("2018-01-02T14:30:00Z", "Stocks open higher", "Equities rose.")]
    assert capsys.readouterr().out.strip() == (
        f"ABC: 3 received, 2 new, 1 duplicate(s); 2 articles, fingerprint {_news_fingerprint(stored)[:12]}"
    )
    wrapped, plain = tmp_path / "more.json", tmp_path / "plain.json"
    wrapped.write_text(json.dumps({"articles": [
        {"published_at": "2018-01-03T08:00:00+00:00", "headline": "Jobs beat", "source": "Daily"}]}))
    plain.write_text(json.dumps([{"published_at": "2018-01-01T23:00:00-02:00", "headline": "Late note"},
                                 {"published_at": "2018-01-03T08:00:00Z", "headline": "Jobs beat"}]))
    assert main(["ingest-news", "ABC", str(wrapped)]) == 0
    assert "ABC: 1 received, 1 new, 0 duplicate(s); 3 articles" in capsys.readouterr().out
    assert main(["ingest-news", "ABC", str(plain)]) == 0
    stored += [("2018-01-03T08:00:00Z", "Jobs beat", None), ("2018-01-02T01:00:00Z", "Late note", None)]
    assert capsys.readouterr().out.strip() == (
        f"ABC: 2 received, 1 new, 1 duplicate(s); 4 articles, fingerprint {_news_fingerprint(stored)[:12]}"
    )

    assert main(["news", "abc"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2018-01-02 01:00:00Z  -  Late note",
        "2018-01-02 14:00:00Z  -  Fed minutes due",
        "2018-01-02 14:30:00Z  Wire  Stocks open higher",
        "2018-01-03 08:00:00Z  Daily  Jobs beat",
    ]
    assert main(["news", "ABC", "--start", "2018-01-02T14:00:00Z", "--end", "2018-01-03T08:00:00Z"]) == 0
    assert capsys.readouterr().out.splitlines() == ["2018-01-02 14:00:00Z  -  Fed minutes due",
                                                    "2018-01-02 14:30:00Z  Wire  Stocks open higher"]
    assert main(["news", "ABC", "--limit", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["2018-01-02 01:00:00Z  -  Late note"] and "1 of 4" in captured.err
    assert main(["news", "NONE"]) == 1
    assert "no news for NONE" in capsys.readouterr().err


def test_ingest_news_gate_failure_exits_2_and_stores_nothing(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("published_at,headline\n2018-01-02T14:30:00Z,Fine\n2018-01-02,Bare date\n")
    assert main(["ingest-news", "ABC", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "row 2 " in err and "date without a time" in err and "nothing was stored" in err
    assert main(["news", "ABC"]) == 1
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["ingest-news", "ABC", str(broken)]) == 2
    assert "cannot read the JSON file" in capsys.readouterr().err


def test_ingest_fundamentals(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np
    import pandas as pd

    from alphaforge.marketdata.pit import PitSeries

    csv = tmp_path / "fundamentals.csv"
    csv.write_text(
        "period_end,available_at,field,value\n"
        "2016-03-31,2016-04-28T21:00:00Z,eps,23.0\n"
        "2016-06-30,2016-07-28,eps,25.5\n"
        "2016-03-31,2016-04-28T21:00:00Z,book_value_per_share,800\n"
    )

    def fingerprint(obs: list[str], avail: list[str], values: list[float]) -> str:
        ns = [pd.Timestamp(t, tz="UTC").value if pd.Timestamp(t).tz is None else pd.Timestamp(t).value
              for t in obs + avail]
        pit = PitSeries(np.asarray(ns[: len(obs)]), np.asarray(ns[len(obs):]), np.asarray(values, dtype="float64"))
        return pit.fingerprint()[:12]

    eps = fingerprint(["2016-03-31", "2016-06-30"], ["2016-04-28T21:00:00Z", "2016-07-28"], [23.0, 25.5])
    bvps = fingerprint(["2016-03-31"], ["2016-04-28T21:00:00Z"], [800.0])
    assert main(["ingest-fundamentals", "xyz", str(csv)]) == 0
    assert capsys.readouterr().out.strip() == (
        f"XYZ: 3 received, 3 new, 0 unchanged; 3 records, fingerprints book_value_per_share {bvps}, eps {eps}"
    )
    assert main(["ingest-fundamentals", "XYZ", str(csv)]) == 0
    assert "XYZ: 3 received, 0 new, 3 unchanged; 3 records" in capsys.readouterr().out
    csv.write_text("period_end,available_at,field,value\n2016-09-30,2016-09-01,eps,1\n")
    assert main(["ingest-fundamentals", "XYZ", str(csv)]) == 2
    assert "available_at is before period_end" in capsys.readouterr().err


def test_ingest_reads_a_large_csv_from_its_file(data_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A CSV of several read blocks, in mixed time formats and zones, straight from disk."""
    import pandas as pd

    n = 30_000
    stamps = pd.date_range("2001-01-01", periods=n, freq="h", tz="UTC")
    text = [t.strftime("%Y-%m-%dT%H:%M:%SZ") if i % 2 else t.tz_convert("Asia/Tokyo").isoformat()
            for i, t in enumerate(stamps)]
    csv = tmp_path / "hourly.csv"
    csv.write_text("timestamp,open,high,low,close,volume\n"
                   + "".join(f"{t},10,11,9,10.5,{i}\n" for i, t in enumerate(text)))
    assert csv.stat().st_size > 1 << 20
    assert main(["ingest", "big", str(csv), "--timeframe", "1h"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"BIG 1h: {n} received, {n} new, 0 replaced; {n} bars from 2001-01-01 to {stamps[-1]:%Y-%m-%d}"
    )
    bad = tmp_path / "bad_many.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n"
                   + "".join(f"{t},10,9,8,8.5,1\n" for t in text[:25]))  # open > high, 25 times
    assert main(["ingest", "BIG", str(bad), "--timeframe", "1h"]) == 2
    err = capsys.readouterr().err
    assert "25 bar(s) for BIG failed the data-quality gate" in err and "; and 5 more" in err
    assert "row 20 (" in err and "row 21 (" not in err
