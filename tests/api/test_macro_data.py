"""Macro series, point in time: bundled series with their publication lags, ingestion
behind the quality gate, restatements that add records, history that cannot be rewritten,
fingerprints, the CLI."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from alphaforge.ingestion.bundled import BUNDLED_LAGS, load_bundled_macro
from alphaforge.marketdata.macro import MacroStore
from conftest import app_client

BASE = "/api/v1/market-data/macro"
RECORDS = [
    {"observation_date": "2020-01-01", "available_at": "2020-02-15", "value": 100.0},
    {"observation_date": "2020-02-01", "available_at": "2020-03-15", "value": 101.0},
    {"observation_date": "2020-03-01", "available_at": "2020-04-15T00:00:00Z", "value": 102.0},
]


def _utc(text: str) -> datetime:
    return pd.Timestamp(text, tz="UTC").to_pydatetime()


def _ns(*texts: str) -> np.ndarray:
    return np.array([pd.Timestamp(t, tz="UTC").value for t in texts], dtype="int64")


def _csv(rows: list[dict]) -> bytes:
    return pd.DataFrame(rows).to_csv(index=False).encode()


@pytest.fixture(scope="module")
def store(client: TestClient) -> MacroStore:
    ctx = client.app.state.ctx
    load_bundled_macro(ctx.macro)  # a no-op once app start loads them (see the test below)
    return ctx.macro


def _records(client: TestClient, series: str, **params: str) -> list[dict]:
    response = client.get(f"{BASE}/{series}", params=params)
    assert response.status_code == 200, response.text
    return response.json()["records"]


# -- bundled series ---------------------------------------------------------------------
def test_bundled_series_are_loaded_at_start(make_settings) -> None:  # noqa: ANN001
    with app_client(make_settings()) as fresh:
        listed = {s["series"] for s in fresh.get(BASE).json()["series"]}
        assert set(BUNDLED_LAGS) <= listed
        assert load_bundled_macro(fresh.app.state.ctx.macro) == []  # idempotent


def test_bundled_series_are_listed_with_their_lags(client: TestClient, store: MacroStore) -> None:
    listed = {s["series"]: s for s in client.get(BASE).json()["series"]}
    assert set(BUNDLED_LAGS) <= set(listed)
    assert listed["VIX"]["first_observation"] == "2014-01-03T00:00:00Z"
    assert listed["VIX"]["last_available_at"] == "2019-01-04T00:00:00Z"  # 2019-01-03 close + 1 day
    assert listed["CORE_CPI"]["last_observation"] == "2018-11-01T00:00:00Z"
    assert listed["CORE_CPI"]["last_available_at"] == "2018-12-15T00:00:00Z"
    assert listed["AAA"]["last_available_at"] == "2019-01-02T00:00:00Z"  # Dec 2018 -> Jan 1 + 1 day
    # Fama-French dates re-parsed from YYYYMM to real months (not 1970).
    assert listed["FF_MKT_RF"]["first_observation"] == "1926-07-01T00:00:00Z"
    assert listed["FF_MKT_RF"]["last_observation"] == "2018-11-01T00:00:00Z"
    assert listed["FF_MKT_RF"]["n_records"] == 1109
    assert listed["FF_RF"]["last_available_at"] == "2018-12-31T00:00:00Z"  # Nov 2018 end + 1 month


def test_bundled_values_match_arch(client: TestClient, store: MacroStore) -> None:
    from arch.data import core_cpi, default, frenchdata, vix, wti

    vix_day = _records(client, "VIX", start="2018-12-24", end="2018-12-25")
    assert vix_day == [{"observation_date": "2018-12-24T00:00:00Z", "available_at": "2018-12-25T00:00:00Z",
                        "value": float(vix.load().loc["2018-12-24", "vix"])}]
    raw_wti = wti.load()["DCOILWTICO"]
    assert len(_records(client, "WTI")) == int(raw_wti.notna().sum())  # NaN dropped
    cpi = _records(client, "CORE_CPI", start="2018-06-01", end="2018-06-02")
    assert cpi == [{"observation_date": "2018-06-01T00:00:00Z", "available_at": "2018-07-15T00:00:00Z",
                    "value": float(core_cpi.load().loc["2018-06-01", "CPILFESL"])}]
    baa = _records(client, "baa", start="1919-01-01", end="1919-01-02")
    assert baa[0]["available_at"] == "1919-02-02T00:00:00Z"
    assert baa[0]["value"] == float(default.load().loc["1919-01-01", "BAA"])
    ff = _records(client, "FF_HML", start="1926-07-01", end="1926-09-01")
    raw_ff = frenchdata.load()
    assert [r["observation_date"] for r in ff] == ["1926-07-01T00:00:00Z", "1926-08-01T00:00:00Z"]
    assert [r["available_at"] for r in ff] == ["1926-08-31T00:00:00Z", "1926-09-30T00:00:00Z"]
    assert [r["value"] for r in ff] == [float(v) for v in raw_ff["HML"].iloc[:2]]
    # Point in time: VIX of 2018-12-24 is not usable on 2018-12-24, only from the 25th.
    pit = store.get_series("VIX")
    at = pit.as_of(_ns("2018-12-24T23:59:59", "2018-12-25"))
    assert at[0] == float(vix.load().loc["2018-12-21", "vix"]) and at[1] == vix_day[0]["value"]


# -- ingestion --------------------------------------------------------------------------
def test_ingest_json_then_csv_is_idempotent(client: TestClient, store: MacroStore) -> None:
    created = client.post(f"{BASE}/tst.cpi", json={"records": RECORDS[:2]})
    assert created.status_code == 200, created.text
    body = created.json()
    assert body | {"fingerprint": None} == {
        "series": "TST.CPI", "received": 2, "inserted": 2, "unchanged": 0, "n_records": 2, "fingerprint": None,
    }
    assert body["fingerprint"] == store.fingerprint("TST.CPI")
    again = client.post(f"{BASE}/TST.CPI", files={"file": ("m.csv", _csv(RECORDS), "text/csv")}).json()
    assert (again["received"], again["inserted"], again["unchanged"], again["n_records"]) == (3, 1, 2, 3)
    assert again["fingerprint"] != body["fingerprint"]
    listed = {s["series"]: s for s in client.get(BASE).json()["series"]}["TST.CPI"]
    assert listed == {"series": "TST.CPI", "n_records": 3, "first_observation": "2020-01-01T00:00:00Z",
                      "last_observation": "2020-03-01T00:00:00Z", "last_available_at": "2020-04-15T00:00:00Z"}


def test_time_zones_are_converted_to_utc(client: TestClient) -> None:
    row = {"observation_date": "2020-01-02T16:00:00-05:00", "available_at": "2020-01-02T17:30:00-05:00", "value": 1}
    assert client.post(f"{BASE}/TZM", json={"records": [row]}).status_code == 200
    assert _records(client, "TZM") == [
        {"observation_date": "2020-01-02T21:00:00Z", "available_at": "2020-01-02T22:30:00Z", "value": 1.0}
    ]


def test_restatement_adds_a_record_and_as_of_sees_each_vintage(client: TestClient, store: MacroStore) -> None:
    series = "REST"
    assert client.post(f"{BASE}/{series}", json={"records": RECORDS}).status_code == 200
    fp_before = store.fingerprint(series)
    restated = {"observation_date": "2020-02-01", "available_at": "2020-05-01", "value": 101.7}
    response = client.post(f"{BASE}/{series}", json={"records": [restated]})
    assert response.status_code == 200 and response.json()["inserted"] == 1 and response.json()["n_records"] == 4
    # History kept: both vintages of February are stored.
    feb = _records(client, series, start="2020-02-01", end="2020-02-02")
    assert [(r["available_at"][:10], r["value"]) for r in feb] == [("2020-03-15", 101.0), ("2020-05-01", 101.7)]
    # The vintage view: what was known on a date.
    april = _records(client, series, as_of="2020-04-30", latest_only="true")
    assert [r["value"] for r in april] == [100.0, 101.0, 102.0]
    may = _records(client, series, as_of="2020-05-01", latest_only="true")
    assert [r["value"] for r in may] == [100.0, 101.7, 102.0]
    # PitSeries: lag 1 (the observation before the latest = February) before/after the restatement.
    pit = store.get_series(series)
    assert list(pit.as_of(_ns("2020-04-30", "2020-05-01"), lag=1)) == [101.0, 101.7]
    assert list(pit.as_of(_ns("2020-02-14", "2020-02-15", "2020-05-02"))) == [pytest.approx(np.nan, nan_ok=True), 100.0, 102.0]
    # Fingerprints: the whole series changed; a slice until before the restatement did not.
    assert store.fingerprint(series) != fp_before
    until = _utc("2020-05-01")  # available_at < until
    assert store.fingerprint(series, until) == fp_before
    assert len(store.get_series(series, until)) == 3 and len(store.get_series(series, _utc("2020-05-01T00:00:01"))) == 4
    assert len(store.get_series("NO_SUCH_SERIES")) == 0


def test_rewriting_history_is_a_409_and_stores_nothing(client: TestClient) -> None:
    series = "HIST"
    assert client.post(f"{BASE}/{series}", json={"records": RECORDS}).status_code == 200
    rewrite = [
        {"observation_date": "2020-04-01", "available_at": "2020-05-15", "value": 103.0},  # new, fine alone
        {**RECORDS[1], "value": 999.0},  # same (observation, available_at), other value
    ]
    response = client.post(f"{BASE}/{series}", json={"records": rewrite})
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "row 2" in detail and "rewrite history" in detail and "nothing was stored" in detail
    assert [r["value"] for r in _records(client, series)] == [100.0, 101.0, 102.0]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"available_at": "2019-12-31"}, "available_at is before observation_date"),
        ({"value": None}, "value is missing or not a finite number"),
        ({"value": "abc"}, "value is missing or not a finite number"),
        ({"value": "inf"}, "value is missing or not a finite number"),
        ({"observation_date": "not a date"}, "observation_date 'not a date' is not a date/time"),
        ({"available_at": "9999-01-01"}, "available_at '9999-01-01' is not a date/time"),
    ],
)
def test_quality_gate_names_the_bad_row_and_stores_nothing(
    client: TestClient, store: MacroStore, row: dict, problem: str
) -> None:
    series = "MGATE"
    client.post(f"{BASE}/{series}", json={"records": RECORDS[:1]})
    before = store.fingerprint(series)
    upload = [RECORDS[1], {**RECORDS[0], "observation_date": "2020-01-02", **row}]
    response = client.post(f"{BASE}/{series}", files={"file": ("m.csv", _csv(upload), "text/csv")})
    assert response.status_code == 422, response.text
    body = response.json()
    assert "row 2" in body["detail"] and problem in body["detail"] and "nothing was stored" in body["detail"]
    assert body["n_bad_rows"] == 1 and body["bad_rows"][0]["row"] == 2
    assert store.fingerprint(series) == before


def test_duplicate_records_in_one_upload_are_rejected(client: TestClient) -> None:
    response = client.post(f"{BASE}/MDUP", json={"records": [RECORDS[0], {**RECORDS[0], "value": 5}, RECORDS[1]]})
    assert response.status_code == 422
    assert [b["row"] for b in response.json()["bad_rows"]] == [1, 2]
    assert "duplicate (observation_date, available_at)" in response.json()["detail"]
    assert client.get(f"{BASE}/MDUP").status_code == 404


@pytest.mark.parametrize(
    ("kwargs", "status", "expected"),
    [
        ({"json": {"records": []}}, 422, "JSON upload must be"),
        ({"json": {"records": [{"observation_date": "2020-01-01", "value": 1}]}}, 422, "missing: available_at"),
        ({"content": b"x", "headers": {"content-type": "text/plain"}}, 415, "multipart/form-data"),
        ({"files": {"other": ("m.csv", b"a,b\n1,2\n", "text/csv")}}, 422, "field 'file'"),
    ],
)
def test_malformed_uploads(client: TestClient, kwargs: dict, status: int, expected: str) -> None:
    response = client.post(f"{BASE}/MBAD", **kwargs)
    assert response.status_code == status
    assert expected in response.json()["detail"]


@pytest.mark.parametrize("series", ["..", "x" * 41, "-ABC", "A B"])
def test_invalid_series_names_never_reach_storage(client: TestClient, series: str) -> None:
    response = client.post(f"{BASE}/{series}", json={"records": RECORDS})
    assert response.status_code in (404, 422)
    if response.status_code == 422:
        assert "invalid macro series" in response.json()["detail"]


def test_unknown_series_and_bad_ranges(client: TestClient) -> None:
    missing = client.get(f"{BASE}/ZZZZ")
    assert missing.status_code == 404 and "no macro series ZZZZ" in missing.json()["detail"]
    reversed_range = client.get(f"{BASE}/VIX", params={"start": "2018-01-02", "end": "2018-01-01"})
    assert reversed_range.status_code == 422


# -- CLI --------------------------------------------------------------------------------
def test_cli_ingest_macro_and_macro_series(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from alphaforge.cli import main

    monkeypatch.setenv("ALPHAFORGE_DATA_DIR", str(tmp_path / "data"))
    csv = tmp_path / "cpi.csv"
    csv.write_bytes(_csv(RECORDS))
    assert main(["ingest-macro", "my_cpi", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "MY_CPI: 3 received, 3 new, 0 unchanged; 3 records" in out
    assert main(["ingest-macro", "MY_CPI", str(csv)]) == 0
    assert "MY_CPI: 3 received, 0 new, 3 unchanged; 3 records" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_bytes(_csv([{**RECORDS[0], "available_at": "2019-01-01"}]))
    assert main(["ingest-macro", "MY_CPI", str(bad)]) == 2
    assert "row 1 (2020-01-01T00:00:00+00:00, available 2019-01-01T00:00:00+00:00): available_at is before" \
        in capsys.readouterr().err
    assert main(["macro-series"]) == 0
    out = capsys.readouterr().out
    assert "MY_CPI       2020-01-01 .. 2020-03-01  3 records, last available 2020-04-15" in out
    assert "VIX          2014-01-03 .. 2019-01-03  1259 records, last available 2019-01-04" in out


def test_store_rejects_naive_reads_consistently(store: MacroStore) -> None:
    # Naive until is read as UTC.
    assert store.fingerprint("VIX", datetime(2015, 1, 1)) == store.fingerprint(
        "VIX", datetime(2015, 1, 1, tzinfo=timezone.utc)
    )
