"""Every error is JSON with a string ``detail``, a code and the request id that the
``X-Request-ID`` header also carries; an unexpected exception is a JSON 500 whose traceback
stays in the server log under that id."""

from __future__ import annotations

import logging
import uuid

import pytest
from fastapi.testclient import TestClient


def test_validation_errors_have_a_string_detail_naming_the_field(client: TestClient) -> None:
    response = client.post("/api/v1/features", json={"name": "x", "type": "nope", "plugin_key": "technical.rsi"})
    assert response.status_code == 422
    body = response.json()
    assert isinstance(body["detail"], str) and "body.type" in body["detail"]
    assert body["error"] == "invalid_input"
    assert body["errors"][0]["loc"] == ["body", "type"] and "input" not in body["errors"][0]
    assert body["request_id"] == response.headers["x-request-id"]


def test_a_body_with_many_bad_items_lists_the_first_errors_and_counts_them_all(client: TestClient) -> None:
    members = [{"symbol": f"BAD SYMBOL {i}", "from": "2001-01-01"} for i in range(300)]
    response = client.post("/api/v1/universes", json={"name": "many bad", "members": members})
    assert response.status_code == 422, response.text
    body = response.json()
    assert len(body["errors"]) == 50 and body["errors"][0]["loc"][:3] == ["body", "members", "0"]
    assert "and 290 more (50 listed)" in body["detail"]


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = client.put("/api/v1/features")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert "allow" in {k.lower() for k in wrong.headers}


def test_a_safe_client_request_id_is_kept_and_an_unsafe_one_replaced(client: TestClient) -> None:
    kept = client.get(f"/api/v1/features/{uuid.uuid4()}", headers={"X-Request-ID": "trace-42"})
    assert kept.headers["x-request-id"] == "trace-42" and kept.json()["request_id"] == "trace-42"
    replaced = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert replaced.headers["x-request-id"] != "bad id\twith spaces" and len(replaced.headers["x-request-id"]) == 32


def test_an_unexpected_exception_is_a_json_500_with_the_id_and_a_logged_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("secret detail /var/lib/thing")

    client.app.add_api_route("/broken-for-test", broken)  # type: ignore[attr-defined]
    try:
        with caplog.at_level(logging.ERROR):
            response = client.get("/broken-for-test")
    finally:
        client.app.router.routes.pop()  # type: ignore[attr-defined]
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error" and "secret detail" not in response.text
    assert body["request_id"] == response.headers["x-request-id"] and body["request_id"] in body["detail"]
    logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], RuntimeError)]
    assert logged and "secret detail" in str(logged[0].exc_info[1])
    assert client.get("/health").status_code == 200  # the app still answers
