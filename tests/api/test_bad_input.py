"""Bad input is a 422 naming the field, never a 500 or a silent change, and stores nothing.

The endpoints and fields come from the app's own OpenAPI document (see request_cases.py):
every string of every request gets a NUL and a lone surrogate, every bounded string one
character too many, every date/time values beyond what int64 nanoseconds hold, every
symbol-like value letters whose case mapping is ASCII ('ı' -> 'I', 'ß' -> 'SS').
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, inspect, text

import alphaforge.api.routes as route_modules
from alphaforge.api.app import API_PREFIX
from alphaforge.schemas.request import RequestModel
from request_cases import (
    VALID,
    Case,
    Request,
    cases,
    is_plain_string,
    json_body_schema,
    needs_a_valid_request,
    openapi,
    operations,
    resolve,
    schema_leaves,
    schema_path,
    value_leaves,
    valid_requests,
)

DOC = openapi()
CASES = cases(DOC)
MIN, MAX = "1677-09-21T00:12:43.145225Z", "2262-04-11T23:47:16.854775Z"
#: Strings without a max length, each bounded by the request body limit instead.
UNBOUNDED = {("param_space", "*", "choices", "[]"): "categorical choices: values, checked against the plugin's parameters"}


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ids(client: TestClient) -> dict[str, str]:
    """A feature, a trained model and a universe to aim the requests at, and PIT data for the reads."""
    feature = client.post("/api/v1/features", json=VALID["POST", "/api/v1/features"].body)
    assert feature.status_code == 201, feature.text
    model = client.post("/api/v1/models", json=VALID["POST", "/api/v1/models"].body)
    assert model.status_code == 201, model.text
    universe = client.post("/api/v1/universes", json=VALID["POST", "/api/v1/universes"].body)
    assert universe.status_code == 201, universe.text
    out = {"feature_id": feature.json()["id"], "model_id": model.json()["id"], "universe_id": universe.json()["id"]}
    train = client.post(f"/api/v1/models/{out['model_id']}/train", json=_fill(VALID["POST", "/api/v1/models/{model_id}/train"].body, out))
    assert train.status_code == 200, train.text
    for kind, body in (
        ("fundamentals", {"records": [{"period_end": "2018-09-30", "available_at": "2018-10-25", "field": "eps", "value": 1.0}]}),
        ("news", {"articles": [{"published_at": "2018-01-02T14:30:00Z", "headline": "Stocks rise"}]}),
    ):
        assert client.post(f"/api/v1/market-data/EDGE/{kind}", json=body).status_code == 200
    return out


def _fill(value: Any, ids: dict[str, str]) -> Any:
    text = json.dumps(value)
    for name, value_id in ids.items():
        text = text.replace(f"{{{name}}}", value_id)
    return json.loads(text)


def send(client: TestClient, method: str, path: str, request: Request, ids: dict[str, str]) -> Response:
    params = {**ids, **request.path_params}
    url = path.format(**{k: quote(_fill(v, ids), safe="") for k, v in params.items()})
    # ensure_ascii: a lone surrogate travels as the JSON escape \ud800, as a client would send it
    content = None if request.body is None else json.dumps(_fill(request.body, ids)).encode()
    headers = {"content-type": "application/json"} if content is not None else {}
    return client.request(method, url, params=request.query, content=content, headers=headers)


#: The tables whose every row a snapshot holds.
WATCHED = ("features", "models", "universes", "universe_members", "bar_series")


@functools.cache
def _count_every_table(engine: Engine) -> str:
    """One query counting the rows of every table (read from the schema once per app: the
    ~1,900 cases each take two snapshots)."""
    quote_name = engine.dialect.identifier_preparer.quote
    # the audit trail records every mutating request, refused ones included: that is its job
    tables = [t for t in inspect(engine).get_table_names() if t != "audit_events"]
    return " UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM {quote_name(t)}" for t in tables)


def snapshot(client: TestClient) -> dict[str, Any]:
    """Everything a request could have created or changed: the row count of every table, and
    every row of the definitions the requests aim at (features, models, universes and their
    members) and of the stored bar series. Read in SQL: a row is stricter than its API view
    (every column), and ~1,900 cases each take two snapshots."""
    engine = client.app.state.ctx.db.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        counts = dict(conn.execute(text(_count_every_table(engine))).all())
        rows = {table: conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2")).all() for table in WATCHED}
    return {"rows": counts, **rows}


# -- the contract: every operation, field and parameter is covered --------------------------
def test_every_operation_taking_text_or_times_has_a_valid_request() -> None:
    needed = {(m, p) for m, p, op in operations(DOC) if needs_a_valid_request(DOC, op)}
    assert needed - VALID.keys() == set(), "add a valid request for these to request_cases.VALID"
    assert VALID.keys() - needed == set(), "operations gone from the API"


def test_every_valid_request_sets_every_bounded_string_and_time() -> None:
    for method, path, op in operations(DOC):
        request = VALID.get((method, path))
        if request is None or request.upload or "requestBody" not in op:
            continue
        schema = json_body_schema(op)
        wanted = {p for p, s in schema_leaves(DOC, schema) if "maxLength" in s or s.get("format") == "date-time"}
        given = {
            schema_path(p) for valid in valid_requests((method, path)) for p, _, _ in value_leaves(DOC, schema, valid.body)
        }
        assert wanted - given == set(), f"{method} {path}: set these in its valid request"


def test_every_request_body_is_a_request_model() -> None:
    bodies = {
        (method, f"{API_PREFIX}{route.path}"): route.body_field.field_info.annotation  # type: ignore[union-attr]
        for info in pkgutil.iter_modules(route_modules.__path__)
        for route in getattr(importlib.import_module(f"{route_modules.__name__}.{info.name}"), "router").routes
        if isinstance(route, APIRoute) and route.body_field is not None
        for method in route.methods
    }
    json_bodies = {(m, p) for m, p, op in operations(DOC) if "requestBody" in op and not VALID[m, p].upload}
    assert bodies.keys() == json_bodies
    assert {op: model for op, model in bodies.items() if not issubclass(model, RequestModel)} == {}


def test_every_request_string_is_bounded_and_every_time_in_range() -> None:
    unbounded, unchecked_times = [], []
    for method, path, op in operations(DOC):
        params = [(("parameter", p["name"]), alt) for p in op.get("parameters", []) for alt in resolve(DOC, p["schema"])]
        body = []
        if "requestBody" in op and not VALID.get((method, path), Request()).upload:
            body = list(schema_leaves(DOC, json_body_schema(op)))
        for where, schema in params + body:
            if schema.get("format") == "date-time" and (schema.get("formatMinimum"), schema.get("formatMaximum")) != (MIN, MAX):
                unchecked_times.append((method, path, where))
        for where, schema in body:  # path and query strings are names, checked where they are normalized
            if is_plain_string(schema) and "maxLength" not in schema and where not in UNBOUNDED:
                unbounded.append((method, path, where))
    assert unchecked_times == [] and unbounded == []


# -- each bad request: a 422 naming the field, and nothing stored ---------------------------
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_422_naming_it_and_stores_nothing(client: TestClient, ids: dict[str, str], case: Case) -> None:
    before = snapshot(client)
    response = send(client, case.method, case.path, case.request, ids)
    assert response.status_code == 422, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and body["error"] == "invalid_input"
    if case.expect == "field":  # each error is at the field, or at a part of it, or at the list or dict holding it
        locs = [tuple(e["loc"]) for e in body["errors"]]
        assert locs and all(len(loc) >= 2 and case.where[: len(loc)] == loc[: len(case.where)] for loc in locs), locs
        assert ".".join(locs[0]) in body["detail"]
    else:  # the symbol-like value is refused as written, not read as another one
        assert "invalid" in body["detail"] and repr(case.value) in body["detail"], body["detail"]
    assert snapshot(client) == before


# -- just inside the range still works ---------------------------------------------------------
EDGES = [(MIN, MAX), ("1677-09-21T01:12:43.145225+01:00", "2262-04-11T18:47:16.854775-05:00"),
         ("1677-09-21T00:12:43.145225", "2262-04-11T23:47:16.854775")]


@pytest.mark.parametrize(("start", "end"), EDGES)
def test_reads_accept_the_first_and_last_time(client: TestClient, ids: dict[str, str], start: str, end: str) -> None:
    for timeframe in ("1d", "1w"):
        everything = client.get("/api/v1/market-data/GSPC/bars", params={"timeframe": timeframe}).json()["n_bars"]
        bars = client.get("/api/v1/market-data/GSPC/bars", params={"timeframe": timeframe, "start": start, "end": end})
        assert bars.status_code == 200 and bars.json()["n_bars"] == everything > 1000
    vix = client.get("/api/v1/market-data/macro/VIX")
    bounded = client.get("/api/v1/market-data/macro/VIX", params={"start": start, "end": end, "as_of": end})
    assert bounded.status_code == 200 and bounded.json()["n_records"] == vix.json()["n_records"] > 0
    fundamentals = client.get("/api/v1/market-data/EDGE/fundamentals", params={"as_of": end})
    assert fundamentals.status_code == 200 and fundamentals.json()["n_records"] == 1
    early = client.get("/api/v1/market-data/EDGE/fundamentals", params={"as_of": start})
    assert early.status_code == 200 and early.json()["n_records"] == 0
    news = client.get("/api/v1/market-data/EDGE/news", params={"start": start, "end": end})
    assert news.status_code == 200 and news.json()["n_articles"] == 1


def test_generate_train_and_predict_accept_the_whole_range(client: TestClient, ids: dict[str, str]) -> None:
    everything = client.get("/api/v1/market-data/GSPC/bars").json()["n_bars"]
    span = {"symbol": "GSPC", "start_date": MIN, "end_date": MAX}
    generated = client.post(f"/api/v1/features/{ids['feature_id']}/generate", json=span)
    assert generated.status_code == 200, generated.text
    assert generated.json()["dataset"]["row_count"] == everything
    dataset = {**span, "feature_ids": [ids["feature_id"]]}
    trained = client.post(f"/api/v1/models/{ids['model_id']}/train", json={"dataset": dataset, "cv": {"n_splits": 2}})
    assert trained.status_code == 200, trained.text
    predicted = client.post(f"/api/v1/models/{ids['model_id']}/predict", json={**span, "start_date": "1677-09-21T00:12:43.145225"})
    assert predicted.status_code == 200, predicted.text
    assert 0 < len(predicted.json()["predictions"]) <= everything


# -- uploads: their quality gates name the bad rows --------------------------------------------
def test_bars_beyond_the_nanosecond_range_are_rows_the_gate_names(client: TestClient, ids: dict[str, str]) -> None:
    good = {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}
    stamps = ["2020-01-02", "0001-01-01", "2262-04-11T23:00:00-05:00", "2020-01-03", "9999-12-31T23:59:59Z", MIN, MAX]
    rows = [{"timestamp": t, **good} for t in stamps]
    csv = "timestamp,open,high,low,close,volume\n" + "".join(f"{t},1,1,1,1,1\n" for t in stamps)
    before = snapshot(client)
    for response in (
        client.post("/api/v1/market-data/FARBARS/bars", json={"bars": rows}),
        client.post("/api/v1/market-data/FARBARS/bars", files={"file": ("bars.csv", csv.encode(), "text/csv")}),
    ):
        assert response.status_code == 422, response.text
        assert [r["row"] for r in response.json()["bad_rows"]] == [2, 3, 5]
        assert "row 2" in response.json()["detail"] and "not a date/time" in response.json()["detail"]
    assert snapshot(client) == before
    edges = client.post("/api/v1/market-data/EDGEBARS/bars", json={"bars": [{"timestamp": t, **good} for t in (MIN, MAX)]})
    assert edges.status_code == 200, edges.text
    assert (edges.json()["first_bar"], edges.json()["last_bar"], edges.json()["n_bars"]) == (MIN, MAX, 2)


#: (path, list key, a good record, a column whose text must not hold a NUL, its date column)
UPLOADS = [
    ("market-data/UPL/bars", "bars",
     {"timestamp": "2020-01-02T00:00:00Z", "open": "1", "high": 1, "low": 1, "close": 1, "volume": 1}, "open", "timestamp"),
    ("market-data/macro/UPL", "records",
     {"observation_date": "2020-01-01", "available_at": "2020-01-02", "value": "1.0"}, "value", "observation_date"),
    ("market-data/UPL/fundamentals", "records",
     {"period_end": "2020-01-01", "available_at": "2020-01-02", "field": "eps", "value": 1.0}, "field", "period_end"),
    ("market-data/UPL/news", "articles",
     {"published_at": "2020-01-02T00:00:00Z", "headline": "Stocks rise", "source": "wire"}, "headline", "published_at"),
]


@pytest.mark.parametrize(("path", "key", "record", "text_column", "date_column"), UPLOADS, ids=[u[0] for u in UPLOADS])
def test_uploads_refuse_nul_surrogates_and_far_dates_naming_the_row(
    client: TestClient, ids: dict[str, str], path: str, key: str, record: dict, text_column: str, date_column: str
) -> None:
    url = f"/api/v1/{path}"
    bad_records = [
        {**record, text_column: record[text_column] + "\x00"},
        {**record, date_column: "0001-01-01T00:00:00Z"},
        {**record, date_column: "9999-12-31T23:59:59Z"},
    ]
    csv_with_surrogate = (",".join(record) + "\n" + ",".join(str(v) for v in record.values()) + "\n").encode()
    csv_with_surrogate = csv_with_surrogate.replace(str(record[text_column]).encode(), b"x\xed\xa0\x80", 1)
    before = snapshot(client)
    for bad in bad_records:
        response = client.post(url, json={key: [bad]})
        assert response.status_code == 422, response.text
        assert "row 1" in response.json()["detail"], response.json()["detail"]
    surrogate = client.post(url, content=json.dumps({key: [{**record, text_column: "x\ud800"}]}).encode(),
                            headers={"content-type": "application/json"})
    assert surrogate.status_code == 422, surrogate.text
    csv = client.post(url, files={"file": ("up.csv", csv_with_surrogate, "text/csv")})
    assert csv.status_code == 422 and "cannot read the CSV upload" in csv.json()["detail"], csv.text
    assert snapshot(client) == before


# -- description: bounded, and the bound itself accepted ---------------------------------------
def test_a_description_of_the_maximum_length_is_kept_whole(client: TestClient) -> None:
    note = "é" * 9_999 + "x"  # 10,000 characters, 20,000 bytes in UTF-8
    created = client.post("/api/v1/features", json={**VALID["POST", "/api/v1/features"].body, "description": note})
    assert created.status_code == 201, created.text
    assert client.get(f"/api/v1/features/{created.json()['id']}").json()["description"] == note
    assert client.delete(f"/api/v1/features/{created.json()['id']}").status_code == 204
