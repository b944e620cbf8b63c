"""News ingestion: the data-quality gate (zoned times, sane text, nothing stored when a row
is bad), deduplication on (symbol, published_at, headline), append-only storage, reading a
time range, on both backends.

Expected values (UTC times, text hashes, fingerprints) are computed here from the uploads."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient



def _url(symbol: str) -> str:
    return f"/api/v1/market-data/{symbol}/news"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text_hash(headline: str, body: str | None) -> str:
    return _sha(f"{headline}\n\n{body}" if body else headline)


def _ns(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1) * 1000


def _fingerprint(articles: list[tuple[datetime, str, str | None]]) -> str:
    """The documented fingerprint: SHA-256 over "<ns> <text hash>" lines in time, headline order."""
    digest = hashlib.sha256(b"alphaforge.news/1\n")
    for moment, headline, body in sorted(articles, key=lambda a: (a[0], a[1])):
        digest.update(f"{_ns(moment)} {_text_hash(headline, body)}\n".encode())
    return digest.hexdigest()


def _ingest(client: TestClient, symbol: str, articles: list[dict]) -> dict:
    response = client.post(_url(symbol), json={"articles": articles})
    assert response.status_code == 200, response.text
    return response.json()


def _count(client: TestClient, symbol: str) -> int:
    response = client.get(_url(symbol))
    if response.status_code == 404:
        return 0
    assert response.status_code == 200, response.text
    return response.json()["n_articles"]


ARTICLES = [
    {"published_at": "2018-01-02T15:30:00+01:00", "headline": "  Stocks open higher  ", "body": "Equities rose.",
     "source": "Wire", "url": "https://example.com/1"},
    {"published_at": "2018-01-02T09:00:00-05:00", "headline": "Fed minutes due", "body": ""},
    {"published_at": "2018-01-01T23:59:59Z", "headline": "Year starts quietly", "source": "Daily"},
]


def test_json_ingest_then_get_in_utc_order(client: TestClient) -> None:
    report = _ingest(client, "NWSA", ARTICLES)
    expected = [  # (UTC time, stripped headline, body or None), computed from the upload
        (_utc("2018-01-02T15:30:00+01:00"), "Stocks open higher", "Equities rose."),
        (_utc("2018-01-02T09:00:00-05:00"), "Fed minutes due", None),
        (_utc("2018-01-01T23:59:59Z"), "Year starts quietly", None),
    ]
    assert report == {"symbol": "NWSA", "received": 3, "inserted": 3, "duplicates": 0, "n_articles": 3,
                      "fingerprint": _fingerprint(expected)}
    body = client.get(_url("nwsa")).json()
    assert body["symbol"] == "NWSA" and body["n_articles"] == 3 and body["start"] is None
    got = body["articles"]
    by_time = sorted(expected)
    assert [_utc(a["published_at"]) for a in got] == [e[0] for e in by_time]
    assert [_utc(a["published_at"]).hour for a in got] == [23, 14, 14]
    assert [a["headline"] for a in got] == [e[1] for e in by_time]
    assert [a["body"] for a in got] == [e[2] for e in by_time]
    assert [a["source"] for a in got] == ["Daily", None, "Wire"]
    assert got[2]["url"] == "https://example.com/1" and got[0]["url"] is None
    assert [a["text_hash"] for a in got] == [_text_hash(h, b) for _, h, b in by_time]
    assert all(a["published_at"].endswith(("Z", "+00:00")) for a in got)


def test_csv_multipart_with_any_case_of_column_names(client: TestClient) -> None:
    csv = (
        "Published_At,HEADLINE,Body,Source,URL\n"
        "2018-03-01T10:00:00+02:00,Oil slips,Crude fell 2%.,Wire,http://example.com/oil\n"
        "2018-03-01T08:30:00Z,Gold steady,,,\n"
    ).encode()
    response = client.post(_url("NWSB"), files={"file": ("news.csv", csv, "text/csv")})
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == 2 and response.json()["n_articles"] == 2
    got = client.get(_url("NWSB")).json()["articles"]
    assert [(_utc(a["published_at"]), a["headline"]) for a in got] == [
        (datetime(2018, 3, 1, 8, 0, tzinfo=timezone.utc), "Oil slips"),
        (datetime(2018, 3, 1, 8, 30, tzinfo=timezone.utc), "Gold steady"),
    ]
    assert got[1]["body"] is None and got[1]["source"] is None and got[1]["url"] is None
    assert got[0]["text_hash"] == _sha("Oil slips\n\nCrude fell 2%.")


def test_reupload_is_all_duplicates_and_a_new_article_changes_the_fingerprint(client: TestClient) -> None:
    first = _ingest(client, "NWSC", ARTICLES)
    again = _ingest(client, "NWSC", ARTICLES)
    assert again["inserted"] == 0 and again["duplicates"] == len(ARTICLES)
    assert again["n_articles"] == first["n_articles"] == 3 and again["fingerprint"] == first["fingerprint"]
    new = {"published_at": "2018-01-03T12:00:00Z", "headline": "Jobs report beats"}
    more = _ingest(client, "NWSC", [new])
    assert more["inserted"] == 1 and more["n_articles"] == 4 and more["fingerprint"] != first["fingerprint"]
    assert more["fingerprint"] == _fingerprint([
        (_utc(a["published_at"]), a["headline"].strip(), a.get("body") or None) for a in [*ARTICLES, new]
    ])


def test_identity_is_time_and_headline_and_the_first_stored_wins(client: TestClient) -> None:
    base = {"published_at": "2018-02-05T14:00:00Z", "headline": "Markets tumble", "body": "First version."}
    _ingest(client, "NWSD", [base])
    later = {**base, "published_at": "2018-02-05T15:00:00Z"}  # same headline, another time: new
    rewritten = {**base, "body": "Second version.", "source": "Other", "url": "https://example.com/x"}
    same_instant = {**base, "published_at": "2018-02-05T09:00:00-05:00", "body": "Third."}  # 14:00 UTC
    report = _ingest(client, "NWSD", [later, rewritten, same_instant])
    assert (report["inserted"], report["duplicates"], report["n_articles"]) == (1, 2, 2)
    got = client.get(_url("NWSD")).json()["articles"]
    assert [a["body"] for a in got] == ["First version.", "First version."]
    assert got[0]["source"] is None and got[0]["url"] is None
    # duplicates inside one upload collapse to the first
    twice = [{"published_at": "2018-02-06T10:00:00Z", "headline": "Rebound", "body": "one"},
             {"published_at": "2018-02-06T10:00:00Z", "headline": " Rebound ", "body": "two"}]
    report = _ingest(client, "NWSD", twice)
    assert (report["received"], report["inserted"], report["duplicates"], report["n_articles"]) == (2, 1, 1, 3)
    assert client.get(_url("NWSD")).json()["articles"][-1]["body"] == "one"


GOOD = {"published_at": "2018-04-02T14:30:00Z", "headline": "A fine article"}


def _future() -> str:
    return (datetime.now(timezone.utc) + timedelta(days=3)).isoformat()


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"published_at": "2018-04-02T14:30:00", "headline": "Naive time"}, "no time zone"),
        ({"published_at": "2018-04-02", "headline": "Bare date"}, "date without a time"),
        ({"published_at": "2018-04-02T14:30:00Z", "headline": "   "}, "headline is missing or empty"),
        ({"published_at": "2018-04-02T14:30:00Z", "headline": "Bad url", "url": "ftp://example.com/a"},
         "does not start with http:// or https://"),
        ({"published_at": None, "headline": "Future"}, "in the future"),
        ({"published_at": "2018-04-02T14:30:00Z", "headline": "x" * 1001}, "longer than 1000"),
    ],
    ids=["naive", "bare-date", "empty-headline", "bad-url", "future", "long-headline"],
)
def test_gate_names_the_bad_row_and_stores_nothing(client: TestClient, bad: dict, expected: str) -> None:
    if bad["published_at"] is None:
        bad = {**bad, "published_at": _future()}
    _ingest(client, "NWSE", [{**GOOD, "headline": "Seed"}])
    before = _count(client, "NWSE")
    response = client.post(_url("NWSE"), json={"articles": [GOOD, bad, {**GOOD, "headline": "Another"}]})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["n_bad_rows"] == 1 and [b["row"] for b in body["bad_rows"]] == [2]
    assert expected in body["bad_rows"][0]["problems"][0]
    assert "row 2 " in body["detail"] and "nothing was stored" in body["detail"]
    assert _count(client, "NWSE") == before


def test_gate_names_every_bad_row(client: TestClient) -> None:
    rows = [GOOD, {"published_at": "2018-04-02", "headline": "b"}, {"published_at": "2018-04-02T10:00:00+01:00",
                                                                      "headline": ""}]
    response = client.post(_url("NWSE2"), json={"articles": rows})
    assert response.status_code == 422
    assert [b["row"] for b in response.json()["bad_rows"]] == [2, 3]
    assert response.json()["bad_rows"][1]["published_at"].startswith("2018-04-02T09:00:00")
    assert client.get(_url("NWSE2")).status_code == 404


def test_missing_columns_and_empty_uploads_are_422(client: TestClient) -> None:
    response = client.post(_url("NWSG"), json={"articles": [{"published_at": "2018-04-02T14:30:00Z"}]})
    assert response.status_code == 422 and "missing: headline" in response.json()["detail"]
    csv = b"headline,body\nSomething,else\n"
    response = client.post(_url("NWSG"), files={"file": ("n.csv", csv, "text/csv")})
    assert response.status_code == 422 and "missing: published_at" in response.json()["detail"]
    assert client.post(_url("NWSG"), json={"articles": []}).status_code == 422
    empty = client.post(_url("NWSG"), files={"file": ("n.csv", b"published_at,headline\n", "text/csv")})
    assert empty.status_code == 422 and "no articles" in empty.json()["detail"]
    assert client.get(_url("NWSG")).status_code == 404


def test_range_start_inclusive_end_exclusive_and_limit(client: TestClient) -> None:
    times = ["2018-05-01T10:00:00Z", "2018-05-02T10:00:00Z", "2018-05-03T10:00:00Z", "2018-05-04T10:00:00Z"]
    _ingest(client, "NWSF", [{"published_at": t, "headline": f"Story {i}"} for i, t in enumerate(times)])
    window = client.get(_url("NWSF"), params={"start": times[1], "end": times[3]}).json()
    assert window["n_articles"] == 2 and [a["headline"] for a in window["articles"]] == ["Story 1", "Story 2"]
    assert _utc(window["start"]) == _utc(times[1]) and _utc(window["end"]) == _utc(times[3])
    # a naive bound is UTC; an offset bound is converted: 12:00+02:00 is 10:00 UTC, inclusive
    naive = client.get(_url("NWSF"), params={"start": "2018-05-03T10:00:00"}).json()
    assert [a["headline"] for a in naive["articles"]] == ["Story 2", "Story 3"]
    offset = client.get(_url("NWSF"), params={"start": "2018-05-02T12:00:00+02:00"}).json()
    assert [a["headline"] for a in offset["articles"]] == ["Story 1", "Story 2", "Story 3"]
    limited = client.get(_url("NWSF"), params={"limit": 3}).json()
    assert limited["n_articles"] == 4 and [a["headline"] for a in limited["articles"]] == ["Story 0", "Story 1",
                                                                                           "Story 2"]
    for bad in (0, 10_001):
        assert client.get(_url("NWSF"), params={"limit": bad}).status_code == 422
    assert client.get(_url("NWSF"), params={"start": times[2], "end": times[2]}).status_code == 422
    empty = client.get(_url("NWSF"), params={"start": "2019-01-01T00:00:00Z"}).json()
    assert empty["n_articles"] == 0 and empty["articles"] == []


def test_unknown_symbol_is_404_bad_symbol_422_and_text_is_415(client: TestClient) -> None:
    response = client.get(_url("NONEWS"))
    assert response.status_code == 404 and "POST /api/v1/market-data/NONEWS/news" in response.json()["detail"]
    assert client.get(_url("bad symbol!")).status_code == 422
    assert client.post(_url("bad symbol!"), json={"articles": [GOOD]}).status_code == 422
    plain = client.post(_url("NWSH"), content=b"published_at,headline\n", headers={"content-type": "text/plain"})
    assert plain.status_code == 415
    assert client.post(_url("NWSH"), content=b"{not json", headers={"content-type": "application/json"}
                       ).status_code == 422


def test_store_get_articles_is_sorted_and_hashed(client: TestClient) -> None:
    articles = [
        {"published_at": "2018-06-01T12:00:00Z", "headline": "Zeta", "body": "later tie"},
        {"published_at": "2018-06-01T09:00:00-03:00", "headline": "Alpha", "body": "same instant, first"},
        {"published_at": "2018-05-31T08:00:00Z", "headline": "Early"},
    ]
    _ingest(client, "NWSS", articles)
    store = client.app.state.ctx.news  # type: ignore[attr-defined]
    got = store.get_articles("nwss")
    expected = sorted((_utc(a["published_at"]), a["headline"], a.get("body")) for a in articles)
    assert got.headline == tuple(e[1] for e in expected) == ("Early", "Alpha", "Zeta")
    assert got.published.tolist() == [_ns(e[0]) for e in expected]
    assert got.published.dtype == np.int64 and got.body == (None, "same instant, first", "later tie")
    assert got.text_hash == tuple(_sha(e[1] if e[2] is None else f"{e[1]}\n\n{e[2]}") for e in expected)
    assert got.fingerprint() == _fingerprint(expected)
    assert store.get_articles("NWSS") is got  # cached while the symbol's rows are unchanged
    window = store.get_articles("NWSS", start=datetime(2018, 6, 1), end=pd.Timestamp("2018-06-02", tz="UTC"))
    assert window.headline == ("Alpha", "Zeta")
    total, records = store.list_articles("NWSS", limit=1)
    assert total == 3 and records[0]["headline"] == "Early" and records[0]["published_at"] == expected[0][0]
    _ingest(client, "NWSS", [{"published_at": "2018-06-02T00:00:00Z", "headline": "Newer"}])
    assert len(store.get_articles("NWSS")) == 4
    assert ("NWSS", 4, expected[0][0], _utc("2018-06-02T00:00:00Z")) in store.symbols()
