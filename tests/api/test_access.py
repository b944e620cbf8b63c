"""Keys and roles on every route, the audit trail, who created each row, and the browser
defences (allowed hosts, CORS off by default, body limits), on both backends.

The expected role of each route comes from the rules the issue states (read: every GET;
research: definitions, generate, train, tune, AutoML, predict, cancel; admin: deletes,
market-data ingestion, keys, audit), applied to every route the app serves: a new route is
checked the day it is added."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from alphaforge.settings import Settings
from conftest import CreateFeature, SettingsFactory, app_client, bearer

RANK = {"read": 0, "research": 1, "admin": 2}
PATH_VALUES = {"symbol": "GSPC", "series": "VIX"}


def expected_role(method: str, path: str) -> str:
    """The issue's rules, written independently of the routes' own declarations."""
    if path.startswith(("/api/v1/keys", "/api/v1/audit")):
        return "admin"
    if method == "DELETE":
        return "admin"
    if method == "POST" and path.startswith("/api/v1/market-data/"):
        return "admin"
    if method == "GET":
        return "read"
    return "research"


def api_operations(client: TestClient) -> list[tuple[str, str]]:
    """Every operation the app serves under /api/v1 (FastAPI resolves included routers lazily)."""
    return sorted(
        (method, context.path_format)
        for context in iter_route_contexts(client.app.routes)  # type: ignore[attr-defined]
        if isinstance(context.original_route, APIRoute) and context.path_format.startswith("/api/v1")
        for method in context.methods
    )


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), str(uuid.uuid4())), path)


def call(client: TestClient, method: str, path: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    body = {} if method in ("POST", "PATCH", "PUT") else None
    return client.request(method, path, json=body, headers={"Authorization": "", **headers})


def test_every_route_answers_each_role_as_the_rules_say(client: TestClient, keys: dict[str, str]) -> None:
    operations = api_operations(client)
    assert len(operations) >= 40  # the whole API, not a subset
    mismatches = []
    for method, template in operations:
        needed = expected_role(method, template)
        path = concrete(template)
        anonymous = call(client, method, path, {})
        if anonymous.status_code != 401 or anonymous.json()["error"] != "unauthorized":
            mismatches.append((method, template, "no key", anonymous.status_code))
        for role, key in keys.items():
            response = call(client, method, path, bearer(key))
            if RANK[role] < RANK[needed]:
                ok = response.status_code == 403 and needed in response.json()["detail"]
            else:
                ok = response.status_code not in (401, 403) and response.status_code < 500
            if not ok:
                mismatches.append((method, template, role, response.status_code, response.text[:200]))
    assert mismatches == []


def test_open_routes_stay_open(client: TestClient) -> None:
    anonymous = {"Authorization": ""}
    assert client.get("/health", headers=anonymous).status_code == 200
    assert client.get("/health/ready", headers=anonymous).status_code == 200
    assert client.get("/openapi.json", headers=anonymous).status_code == 200
    assert client.get("/docs", headers=anonymous).status_code == 200


def test_missing_unknown_and_malformed_keys_are_401_with_a_challenge(client: TestClient) -> None:
    for headers in ({"Authorization": ""}, bearer("af_not_a_real_key"), {"Authorization": "Basic dXNlcjpwdw=="},
                    {"Authorization": "", "X-API-Key": "nope"}):
        response = client.get("/api/v1/features", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"] == "unauthorized" and "key" in response.json()["detail"]


def test_x_api_key_is_accepted_too(client: TestClient, keys: dict[str, str]) -> None:
    response = client.get("/api/v1/features", headers={"Authorization": "", "X-API-Key": keys["read"]})
    assert response.status_code == 200


def test_an_unauthenticated_upload_is_refused_before_its_body_is_parsed(client: TestClient) -> None:
    """The cross-origin form POST that used to restate bars: no key, no change."""
    before = client.get("/api/v1/market-data/GSPC/bars", params={"start": "2018-12-28", "end": "2018-12-29"}).json()
    csv = b"timestamp,open,high,low,close,volume\n2018-12-28,1,1,1,1,1\n"
    response = client.post(
        "/api/v1/market-data/GSPC/bars", files={"file": ("evil.csv", csv, "text/csv")},
        headers={"Authorization": "", "Origin": "http://evil.example"},
    )
    assert response.status_code == 401
    assert "access-control-allow-origin" not in response.headers  # CORS is off by default
    after = client.get("/api/v1/market-data/GSPC/bars", params={"start": "2018-12-28", "end": "2018-12-29"}).json()
    assert after == before and after["bars"][0]["close"] != 1.0


def test_keys_are_shown_once_listed_without_secret_and_revoked_for_good(fresh_client: TestClient) -> None:
    client = fresh_client
    created = client.post("/api/v1/keys", json={"name": "temp", "role": "research"})
    assert created.status_code == 201
    body = created.json()
    key, key_id = body["key"], body["id"]
    assert body["role"] == "research" and key.startswith(body["prefix"]) and len(key) > 40
    listed = client.get("/api/v1/keys")
    assert listed.status_code == 200 and key not in listed.text
    assert any(k["id"] == key_id and k["revoked_at"] is None for k in listed.json())
    assert client.get("/api/v1/features", headers=bearer(key)).status_code == 200
    assert client.delete(f"/api/v1/keys/{key_id}").status_code == 204
    assert client.get("/api/v1/features", headers=bearer(key)).status_code == 401
    assert client.delete(f"/api/v1/keys/{key_id}").status_code == 204  # idempotent
    assert client.get("/api/v1/keys", params={"include_revoked": False}).json() == [
        k for k in client.get("/api/v1/keys").json() if k["revoked_at"] is None
    ]
    assert client.delete(f"/api/v1/keys/{uuid.uuid4()}").status_code == 404
    assert client.post("/api/v1/keys", json={"name": "x", "role": "superuser"}).status_code == 422


def test_the_last_admin_key_cannot_be_revoked(fresh_client: TestClient) -> None:
    client = fresh_client
    admins = [k for k in client.get("/api/v1/keys").json() if k["role"] == "admin" and k["revoked_at"] is None]
    assert len(admins) == 1
    refused = client.delete(f"/api/v1/keys/{admins[0]['id']}")
    assert refused.status_code == 409 and "last active admin key" in refused.json()["detail"]
    second = client.post("/api/v1/keys", json={"name": "second admin", "role": "admin"}).json()
    assert client.delete(f"/api/v1/keys/{admins[0]['id']}", headers=bearer(second["key"])).status_code == 204
    assert client.get("/api/v1/keys").status_code == 401  # the bootstrap key itself is now revoked
    assert client.get("/api/v1/keys", headers=bearer(second["key"])).status_code == 200


def test_rows_record_the_key_that_created_them(client: TestClient, keys: dict[str, str], create_feature: CreateFeature) -> None:
    research = bearer(keys["research"])
    me = next(k for k in client.get("/api/v1/keys").json() if keys["research"].startswith(k["prefix"]) and k["role"] == "research")
    feature = client.post("/api/v1/features", headers=research,
                          json={"name": "mine", "type": "statistical", "plugin_key": "statistical.returns"}).json()
    assert feature["created_by"] == me["id"]
    generated = client.post(f"/api/v1/features/{feature['id']}/generate", headers=research,
                            json={"symbol": "GSPC", "start_date": "2015-01-01", "end_date": "2016-01-01"})
    assert generated.status_code == 200, generated.text
    assert generated.json()["dataset"]["created_by"] == me["id"]
    model = client.post("/api/v1/models", headers=research,
                        json={"name": "m", "model_type": "ridge", "family": "machine_learning"}).json()
    assert model["created_by"] == me["id"]
    task = client.post(f"/api/v1/features/{feature['id']}/generate/async", headers=research,
                       json={"symbol": "IXIC", "start_date": "2015-01-01", "end_date": "2016-01-01"}).json()
    assert client.get(f"/api/v1/tasks/{task['task_id']}").json()["created_by"] == me["id"]
    by_admin = create_feature(client, "statistical.returns", {"period": 4})
    admin_id = next(k["id"] for k in client.get("/api/v1/keys").json() if k["name"].startswith("bootstrap admin"))
    assert by_admin["created_by"] == admin_id


def test_a_research_key_cancels_its_own_tasks_only(client: TestClient, keys: dict[str, str]) -> None:
    other = client.post("/api/v1/keys", json={"name": "other researcher", "role": "research"}).json()["key"]
    feature = client.post("/api/v1/features", json={"name": "r", "type": "statistical", "plugin_key": "statistical.returns",
                                                    "parameters": {"period": 6}}).json()
    body = {"feature_ids": [feature["id"]], "symbols": ["GSPC", "IXIC"], "start_date": "2001-01-01", "end_date": "2018-01-01"}
    task = client.post("/api/v1/features/generate", json=body, headers=bearer(keys["research"])).json()["task_id"]
    refused = client.post(f"/api/v1/tasks/{task}/cancel", headers=bearer(other))
    assert refused.status_code == 403 and "another key" in refused.json()["detail"]
    own = client.post(f"/api/v1/tasks/{task}/cancel", headers=bearer(keys["research"]))
    assert own.status_code in (200, 409)  # 409 only if it finished first
    task2 = client.post("/api/v1/features/generate", json=body, headers=bearer(keys["research"])).json()["task_id"]
    assert client.post(f"/api/v1/tasks/{task2}/cancel").status_code in (200, 409)  # admin: any task


def test_mutating_requests_are_audited_with_key_and_outcome(fresh_client: TestClient) -> None:
    client = fresh_client
    reader = client.post("/api/v1/keys", json={"name": "auditee", "role": "read"}).json()
    ok = client.post("/api/v1/features", json={"name": "a", "type": "technical", "plugin_key": "technical.rsi"})
    denied = client.post("/api/v1/features", headers=bearer(reader["key"]),
                         json={"name": "b", "type": "technical", "plugin_key": "technical.rsi"})
    anonymous = client.delete(f"/api/v1/features/{ok.json()['id']}", headers={"Authorization": ""})
    refused = client.post("/api/v1/features", json={"name": "c", "type": "nope", "plugin_key": "x"})
    client.get("/api/v1/features")  # reads are not audited
    events = client.get("/api/v1/audit", params={"limit": 50}).json()
    mine = [(e["method"], e["path"], e["status_code"], e["outcome"], e["key_id"], e["request_id"]) for e in events]
    admin_id = next(k["id"] for k in client.get("/api/v1/keys").json() if k["name"].startswith("bootstrap admin"))
    assert ("POST", "/api/v1/features", 201, "success", admin_id, ok.headers["x-request-id"]) in mine
    assert ("POST", "/api/v1/features", 403, "denied", reader["id"], denied.headers["x-request-id"]) in mine
    assert ("DELETE", f"/api/v1/features/{ok.json()['id']}", 401, "denied", None, anonymous.headers["x-request-id"]) in mine
    assert ("POST", "/api/v1/features", 422, "refused", admin_id, refused.headers["x-request-id"]) in mine
    assert all(e["method"] != "GET" for e in events)
    only_denied = client.get("/api/v1/audit", params={"outcome": "denied"}).json()
    assert {e["status_code"] for e in only_denied} == {401, 403}
    by_reader = client.get("/api/v1/audit", params={"key_id": reader["id"]}).json()
    assert [e["status_code"] for e in by_reader] == [403]
    assert client.get("/api/v1/audit", headers=bearer(reader["key"])).status_code == 403


# -- browser defences and bounds ------------------------------------------------------------
@pytest.fixture
def strict_client(make_settings: SettingsFactory, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    overrides = getattr(request, "param", {})
    with app_client(make_settings(load_sample_data=False, **overrides)) as client:
        yield client


@pytest.mark.parametrize(("host", "status"), [("testserver", 200), ("localhost:8000", 200), ("127.0.0.1", 200),
                                              ("[::1]:8000", 200), ("evil.example", 400), ("evil.example:8000", 400),
                                              ("", 400)])
def test_only_allowed_hosts_are_served(strict_client: TestClient, host: str, status: int) -> None:
    response = strict_client.get("/health", headers={"Host": host})
    assert response.status_code == status
    if status == 400:
        assert response.json()["error"] == "host_not_allowed" and "ALPHAFORGE_ALLOWED_HOSTS" in response.json()["detail"]


@pytest.mark.parametrize("strict_client", [{"cors_origins": ["https://notebooks.example"]}], indirect=True)
def test_cors_answers_only_the_listed_origins(strict_client: TestClient) -> None:
    preflight = {"Origin": "https://notebooks.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = strict_client.options("/api/v1/features", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://notebooks.example"
    other = strict_client.options("/api/v1/features", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    read = strict_client.get("/api/v1/features", headers={"Origin": "https://notebooks.example"})
    assert read.status_code == 200 and read.headers["access-control-allow-origin"] == "https://notebooks.example"


@pytest.mark.parametrize("strict_client", [{"max_json_mb": 0.01, "max_upload_mb": 0.02}], indirect=True)
def test_bodies_over_the_limits_are_413_before_they_are_read(strict_client: TestClient) -> None:
    client = strict_client
    big = {"name": "x", "type": "technical", "plugin_key": "technical.rsi", "description": "d" * 20_000}
    declared = client.post("/api/v1/features", json=big)
    assert declared.status_code == 413 and "ALPHAFORGE_MAX_JSON_MB" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while reading
        yield b'{"name": "x", "type": "technical", "plugin_key": "technical.rsi", "description": "'
        for _ in range(30):
            yield b"d" * 1000
        yield b'"}'

    streamed = client.post("/api/v1/features", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and streamed.json()["error"] == "payload_too_large"
    csv = b"timestamp,open,high,low,close,volume\n" + b"2021-01-04,1,1,1,1,1\n" * 1500  # ~30 KB
    upload = client.post("/api/v1/market-data/ABC/bars", files={"file": ("b.csv", csv, "text/csv")})
    assert upload.status_code == 413 and "ALPHAFORGE_MAX_UPLOAD_MB" in upload.json()["detail"]
    small = client.post("/api/v1/market-data/ABC/bars", files={"file": ("b.csv", csv[:12_000].rsplit(b"\n", 1)[0] + b"\n", "text/csv")})
    assert small.status_code == 422  # under the upload limit (but over the JSON one): read, then judged
    assert client.get("/api/v1/features").json() == []  # nothing was created


@pytest.mark.parametrize("strict_client", [{"docs_enabled": False, "ready_requires_key": True}], indirect=True)
def test_docs_and_readiness_follow_the_settings(strict_client: TestClient) -> None:
    anonymous = {"Authorization": ""}
    assert strict_client.get("/docs", headers=anonymous).status_code == 404
    assert strict_client.get("/openapi.json", headers=anonymous).status_code == 404
    assert strict_client.get("/health/ready", headers=anonymous).status_code == 401
    assert strict_client.get("/health/ready").status_code == 200
    assert strict_client.get("/health", headers=anonymous).status_code == 200


def test_the_schema_declares_both_ways_to_send_a_key_on_every_operation(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"}
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-API-Key"
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/api/v1"):
                assert {"bearer": []} in operation["security"] and {"apiKey": []} in operation["security"], (method, path)
                for status in ("401", "403", "422", "503"):
                    body = operation["responses"][status]["content"]["application/json"]["schema"]
                    assert body == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
            else:
                assert "security" not in operation, (method, path)


def test_a_configured_admin_key_revoked_through_the_api_stays_revoked(make_settings: SettingsFactory) -> None:
    settings: Settings = make_settings(load_sample_data=False)
    with app_client(settings) as client:
        spare = client.post("/api/v1/keys", json={"name": "spare admin", "role": "admin"}).json()
        bootstrap = next(k for k in client.get("/api/v1/keys").json() if k["name"].startswith("bootstrap admin"))
        assert client.delete(f"/api/v1/keys/{bootstrap['id']}").status_code == 204
    with app_client(settings) as client:  # a restart with the same ALPHAFORGE_ADMIN_API_KEY
        assert client.get("/api/v1/features").status_code == 401
        assert client.get("/api/v1/features", headers=bearer(spare["key"])).status_code == 200


def test_an_app_with_a_route_that_declares_no_role_does_not_start() -> None:
    from fastapi import APIRouter, FastAPI

    from alphaforge.api.security import READ, check_every_route_has_a_role

    router = APIRouter(prefix="/api/v1")
    router.add_api_route("/fine", lambda: None, dependencies=[READ])
    router.add_api_route("/forgotten", lambda: None)
    app = FastAPI()
    app.include_router(router)
    with pytest.raises(RuntimeError, match=r"/api/v1/forgotten"):
        check_every_route_has_a_role(app.routes, "/api/v1")
