"""Universes: CRUD with the compare-and-swap PATCH, symbols checked against the bars, spells
that may not overlap, point-in-time membership, and the roles, on both backends.

The expected members are worked out by hand from the spells below, not read back from the
service: a spell [from, to) holds a time t when from <= t < to (to null: no end)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alphaforge.storage.tables import UniverseMember
from conftest import bearer

#: Symbols the sample data lacks, ingested once per module (two bars each is enough: the
#: universe only needs the bar provider to know them).
EXTRA = ("UNVA", "UNVB", "UNV.C")
BARS = [
    {"timestamp": "2020-01-02T00:00:00Z", "open": 10.0, "high": 11.0, "low": 9.5, "close": 10.5, "volume": 1000},
    {"timestamp": "2020-01-03T00:00:00Z", "open": 10.5, "high": 10.8, "low": 10.1, "close": 10.2, "volume": 800},
]

#: UNVA leaves in 2008 and comes back in 2010; UNVB is a member for a while; GSPC since 2000.
SPELLS = [
    {"symbol": "unva", "from": "2010-01-01", "to": None},  # lower case, out of order: both normalised
    {"symbol": "GSPC", "from": "2000-01-01"},
    {"symbol": "UNVA", "from": "2005-01-01", "to": "2008-01-01"},
    {"symbol": "UNVB", "from": "2006-06-30T00:00:00Z", "to": "2009-01-01T00:00:00+00:00"},
]
STORED_SPELLS = [  # by symbol, then from; times in UTC
    {"symbol": "GSPC", "from": "2000-01-01T00:00:00Z", "to": None},
    {"symbol": "UNVA", "from": "2005-01-01T00:00:00Z", "to": "2008-01-01T00:00:00Z"},
    {"symbol": "UNVA", "from": "2010-01-01T00:00:00Z", "to": None},
    {"symbol": "UNVB", "from": "2006-06-30T00:00:00Z", "to": "2009-01-01T00:00:00Z"},
]


@pytest.fixture(scope="module")
def symbols(client: TestClient) -> tuple[str, ...]:
    for symbol in EXTRA:
        response = client.post(f"/api/v1/market-data/{symbol}/bars", json={"bars": BARS})
        assert response.status_code == 200, response.text
    return EXTRA


def unique(name: str) -> str:
    """Names are unique, and the module's tests share one app."""
    return f"{name} {uuid.uuid4().hex[:8]}"


def create(client: TestClient, members: list[dict], **fields: object) -> dict:
    response = client.post("/api/v1/universes", json={"name": unique("universe"), "members": members, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def members_at(client: TestClient, universe_id: str, at: str) -> list[str]:
    response = client.get(f"/api/v1/universes/{universe_id}/members", params={"at": at})
    assert response.status_code == 200, response.text
    return response.json()["symbols"]


# -- create, read, list ------------------------------------------------------------------
def test_create_returns_201_with_spells_normalised_and_ordered(client: TestClient, symbols: tuple) -> None:
    name = unique("S&P members")
    response = client.post("/api/v1/universes", json={"name": name, "description": "test", "members": SPELLS})
    assert response.status_code == 201, response.text
    body = response.json()
    assert uuid.UUID(body["id"])
    assert (body["name"], body["description"], body["version"]) == (name, "test", 1)
    assert body["members"] == STORED_SPELLS
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")
    assert body["created_by"] is not None
    assert client.get(f"/api/v1/universes/{body['id']}").json() == body


def test_a_universe_may_start_empty_and_description_is_optional(client: TestClient) -> None:
    response = client.post("/api/v1/universes", json={"name": unique("empty")})
    assert response.status_code == 201, response.text
    assert response.json()["members"] == [] and response.json()["description"] is None


def test_get_unknown_and_malformed_ids(client: TestClient) -> None:
    missing = client.get(f"/api/v1/universes/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["detail"] == "Universe not found"
    assert client.get(f"/api/v1/universes/{uuid.uuid4()}/members", params={"at": "2010-01-01"}).status_code == 404
    assert client.get("/api/v1/universes/not-a-uuid").status_code == 422


def test_list_pages_in_creation_order(client: TestClient) -> None:
    ids = [create(client, [])["id"] for _ in range(3)]
    listed = [u["id"] for u in client.get("/api/v1/universes", params={"limit": 1000}).json()]
    positions = [listed.index(i) for i in ids]
    assert positions == sorted(positions)
    page = client.get("/api/v1/universes", params={"skip": positions[0] + 1, "limit": 1}).json()
    assert [u["id"] for u in page] == [ids[1]]
    assert client.get("/api/v1/universes", params={"limit": 0}).status_code == 422


def test_names_are_unique(client: TestClient) -> None:
    first = create(client, [])
    again = client.post("/api/v1/universes", json={"name": first["name"]})
    assert again.status_code == 409 and first["name"] in again.json()["detail"]
    other = create(client, [])
    renamed = client.patch(f"/api/v1/universes/{other['id']}", json={"name": first["name"]})
    assert renamed.status_code == 409 and first["name"] in renamed.json()["detail"]
    assert client.get(f"/api/v1/universes/{other['id']}").json() == other
    # renaming a universe to its own name is no conflict
    assert client.patch(f"/api/v1/universes/{other['id']}", json={"name": other["name"]}).status_code == 200


# -- what is refused ---------------------------------------------------------------------
def test_unknown_symbols_are_a_422_naming_every_one(client: TestClient, symbols: tuple) -> None:
    before = client.get("/api/v1/universes", params={"limit": 1000}).json()
    members = [
        {"symbol": "GSPC", "from": "2005-01-01"},
        {"symbol": "nosuch1", "from": "2005-01-01"},
        {"symbol": "UNVA", "from": "2005-01-01"},
        {"symbol": "NOSUCH2", "from": "2001-01-01", "to": "2002-01-01"},
    ]
    response = client.post("/api/v1/universes", json={"name": unique("bad"), "members": members})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "NOSUCH1" in detail and "NOSUCH2" in detail
    assert "GSPC" not in detail and "UNVA" not in detail
    assert client.get("/api/v1/universes", params={"limit": 1000}).json() == before
    universe = create(client, [{"symbol": "GSPC", "from": "2005-01-01"}])
    patched = client.patch(f"/api/v1/universes/{universe['id']}", json={"members": members[1:2]})
    assert patched.status_code == 422 and "NOSUCH1" in patched.json()["detail"]
    assert client.get(f"/api/v1/universes/{universe['id']}").json() == universe


def test_overlapping_spells_of_one_symbol_are_a_422_naming_them(client: TestClient, symbols: tuple) -> None:
    members = [
        {"symbol": "UNVA", "from": "2000-01-01", "to": "2010-01-01"},
        {"symbol": "UNVA", "from": "2002-01-01", "to": "2003-01-01"},
        {"symbol": "UNVA", "from": "2005-06-01", "to": "2006-01-01"},
        {"symbol": "UNVB", "from": "2001-01-01"},  # another symbol over the same years: fine
    ]
    response = client.post("/api/v1/universes", json={"name": unique("overlap"), "members": members})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "UNVA [2000-01-01T00:00:00Z, 2010-01-01T00:00:00Z) and [2002-01-01T00:00:00Z, 2003-01-01T00:00:00Z)" in detail
    assert "UNVA [2000-01-01T00:00:00Z, 2010-01-01T00:00:00Z) and [2005-06-01T00:00:00Z, 2006-01-01T00:00:00Z)" in detail
    assert "UNVB" not in detail
    open_ended = [{"symbol": "UNVB", "from": "2001-01-01"}, {"symbol": "unvb", "from": "2020-01-01", "to": "2021-01-01"}]
    response = client.post("/api/v1/universes", json={"name": unique("overlap"), "members": open_ended})
    assert response.status_code == 422 and "UNVB [2001-01-01T00:00:00Z, open)" in response.json()["detail"]
    twice = [{"symbol": "GSPC", "from": "2001-01-01"}, {"symbol": "GSPC", "from": "2001-01-01"}]
    assert client.post("/api/v1/universes", json={"name": unique("twice"), "members": twice}).status_code == 422
    universe = create(client, [])
    patched = client.patch(f"/api/v1/universes/{universe['id']}", json={"members": open_ended})
    assert patched.status_code == 422 and "UNVB [2001-01-01T00:00:00Z, open)" in patched.json()["detail"]
    assert client.get(f"/api/v1/universes/{universe['id']}").json() == universe


def test_spells_that_touch_do_not_overlap(client: TestClient, symbols: tuple) -> None:
    members = [
        {"symbol": "UNVA", "from": "2001-01-01", "to": "2002-01-01"},
        {"symbol": "UNVA", "from": "2002-01-01", "to": "2003-01-01"},
    ]
    universe = create(client, members)
    assert members_at(client, universe["id"], "2001-12-31T23:59:59Z") == ["UNVA"]
    assert members_at(client, universe["id"], "2002-01-01") == ["UNVA"]
    assert members_at(client, universe["id"], "2003-01-01") == []


@pytest.mark.parametrize(
    ("spell", "expected"),
    [
        ({"symbol": "GSPC", "from": "2005-01-01", "to": "2005-01-01"}, "to (2005-01-01T00:00:00Z) must be after from"),
        ({"symbol": "GSPC", "from": "2005-01-01", "to": "2004-01-01"}, "must be after from (2005-01-01T00:00:00Z)"),
        ({"symbol": "GSPC"}, "members.0.from"),
        ({"symbol": "GSPC", "from": "0001-01-01"}, "outside the supported range"),
        ({"symbol": "ıXIC", "from": "2005-01-01"}, "invalid"),
    ],
)
def test_bad_spells_are_a_422(client: TestClient, spell: dict, expected: str) -> None:
    response = client.post("/api/v1/universes", json={"name": unique("bad spell"), "members": [spell]})
    assert response.status_code == 422, response.text
    assert expected in response.json()["detail"]


# -- edit, delete --------------------------------------------------------------------------
def test_patch_is_partial_bumps_version_and_members_replace_every_spell(client: TestClient, symbols: tuple) -> None:
    universe = create(client, SPELLS, description="first")
    url = f"/api/v1/universes/{universe['id']}"
    renamed = client.patch(url, json={"name": unique("renamed")})
    assert renamed.status_code == 200, renamed.text
    body = renamed.json()
    assert body["version"] == 2 and body["description"] == "first" and body["members"] == STORED_SPELLS
    # replacing spells, one of them keeping an old spell's identity (symbol and from)
    new = [{"symbol": "UNVA", "from": "2005-01-01", "to": "2006-01-01"}, {"symbol": "UNV.C", "from": "2007-01-01"}]
    replaced = client.patch(url, json={"members": new, "version": 2})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["version"] == 3
    assert replaced.json()["members"] == [
        {"symbol": "UNV.C", "from": "2007-01-01T00:00:00Z", "to": None},
        {"symbol": "UNVA", "from": "2005-01-01T00:00:00Z", "to": "2006-01-01T00:00:00Z"},
    ]
    assert client.get(url).json() == replaced.json()
    assert members_at(client, universe["id"], "2007-06-01") == ["UNV.C"]  # GSPC and UNVB are gone
    cleared = client.patch(url, json={"description": None, "members": []}).json()
    assert (cleared["description"], cleared["members"], cleared["version"]) == (None, [], 4)


def test_patch_with_stale_version_is_409_and_changes_nothing(client: TestClient, symbols: tuple) -> None:
    universe = create(client, [{"symbol": "GSPC", "from": "2000-01-01"}])
    url = f"/api/v1/universes/{universe['id']}"
    assert client.patch(url, json={"description": "a", "version": 1}).status_code == 200
    stale = client.patch(url, json={"members": [{"symbol": "IXIC", "from": "2000-01-01"}], "version": 1})
    assert stale.status_code == 409
    assert "stored version 2" in stale.json()["detail"] and stale.json()["stored_version"] == 2
    stored = client.get(url).json()
    assert stored["version"] == 2 and stored["members"] == [{"symbol": "GSPC", "from": "2000-01-01T00:00:00Z", "to": None}]
    assert client.patch(url, json={"description": "b", "version": 2}).json()["version"] == 3


def test_patch_refuses_null_name_and_members_and_unknown_ids(client: TestClient) -> None:
    universe = create(client, [])
    url = f"/api/v1/universes/{universe['id']}"
    for field in ("name", "members"):
        response = client.patch(url, json={field: None})
        assert response.status_code == 422 and f"{field} cannot be null" in response.json()["detail"]
    missing = f"/api/v1/universes/{uuid.uuid4()}"
    assert client.patch(missing, json={"name": "x"}).status_code == 404
    assert client.delete(missing).status_code == 404


def test_concurrent_patches_with_one_version_give_one_200_and_the_rest_409(client: TestClient, symbols: tuple) -> None:
    universe = create(client, [{"symbol": "GSPC", "from": "2000-01-01"}])
    url = f"/api/v1/universes/{universe['id']}"
    barrier = threading.Barrier(8)

    def patch(i: int) -> int:
        barrier.wait()
        members = [{"symbol": "GSPC", "from": "2000-01-01", "to": f"20{10 + i}-01-01"}]
        return client.patch(url, json={"members": members, "version": 1}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(patch, range(8)))
    assert statuses == [200] + [409] * 7
    stored = client.get(url).json()
    assert stored["version"] == 2 and len(stored["members"]) == 1


def test_delete_removes_the_universe_and_its_spells(client: TestClient, symbols: tuple) -> None:
    universe = create(client, SPELLS)
    assert _stored_spells(client, universe["id"]) == len(SPELLS)
    assert client.delete(f"/api/v1/universes/{universe['id']}").status_code == 204
    assert client.get(f"/api/v1/universes/{universe['id']}").status_code == 404
    assert client.get(f"/api/v1/universes/{universe['id']}/members").status_code == 404
    assert _stored_spells(client, universe["id"]) == 0
    # the name is free again
    assert client.post("/api/v1/universes", json={"name": universe["name"]}).status_code == 201


def _stored_spells(client: TestClient, universe_id: str) -> int:
    with client.app.state.ctx.db.session() as session:  # type: ignore[attr-defined]
        query = select(func.count()).select_from(UniverseMember).where(UniverseMember.universe_id == uuid.UUID(universe_id))
        return session.scalar(query)


# -- who was a member when -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("1999-12-31T23:59:59Z", []),  # before every spell
        ("2000-01-01", ["GSPC"]),  # from is inclusive
        ("2005-01-01", ["GSPC", "UNVA"]),
        ("2007-01-01", ["GSPC", "UNVA", "UNVB"]),  # inside all three
        ("2007-12-31T23:59:59.999999Z", ["GSPC", "UNVA", "UNVB"]),
        ("2008-01-01", ["GSPC", "UNVB"]),  # to is exclusive: UNVA left
        ("2007-12-31T20:00:00-05:00", ["GSPC", "UNVB"]),  # 2008-01-01T01:00Z
        ("2009-06-01", ["GSPC"]),  # UNVA between its spells, UNVB gone
        ("2010-01-01", ["GSPC", "UNVA"]),  # UNVA is back
        ("2040-01-01", ["GSPC", "UNVA"]),  # open spells never end
    ],
)
def test_members_at_a_time(client: TestClient, symbols: tuple, at: str, expected: list[str]) -> None:
    universe = _spells_universe(client)
    response = client.get(f"/api/v1/universes/{universe}/members", params={"at": at})
    assert response.status_code == 200, response.text
    assert response.json()["symbols"] == expected
    assert response.json()["universe_id"] == universe


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("1990-01-01", "2000-01-01", []),  # ends where GSPC starts
        ("1990-01-01", "2000-01-02", ["GSPC"]),
        ("2008-06-01", "2010-01-01", ["GSPC", "UNVB"]),  # UNVA out the whole time
        ("2008-06-01", "2010-01-02", ["GSPC", "UNVA", "UNVB"]),
        ("2009-01-01", "2009-12-31", ["GSPC"]),  # UNVB's to is exclusive
    ],
)
def test_members_between(client: TestClient, symbols: tuple, start: str, end: str, expected: list[str]) -> None:
    universe = _spells_universe(client)
    response = client.get(f"/api/v1/universes/{universe}/members", params={"start": start, "end": end})
    assert response.status_code == 200, response.text
    assert response.json()["symbols"] == expected


def test_members_default_to_now_and_refuse_mixed_or_empty_ranges(client: TestClient, symbols: tuple) -> None:
    universe = _spells_universe(client)
    url = f"/api/v1/universes/{universe}/members"
    now = client.get(url).json()
    assert now["symbols"] == ["GSPC", "UNVA"] and now["at"] is not None
    for params in ({"at": "2005-01-01", "start": "2005-01-01", "end": "2006-01-01"}, {"start": "2005-01-01"},
                   {"end": "2005-01-01"}, {"start": "2006-01-01", "end": "2005-01-01"}):
        response = client.get(url, params=params)
        assert response.status_code == 422, (params, response.text)


_SPELLS_UNIVERSE: dict[int, str] = {}


def _spells_universe(client: TestClient) -> str:
    """One universe of SPELLS per app (module and backend), made on first use."""
    if id(client) not in _SPELLS_UNIVERSE:
        _SPELLS_UNIVERSE[id(client)] = create(client, SPELLS)["id"]
    return _SPELLS_UNIVERSE[id(client)]


# -- roles -------------------------------------------------------------------------------------
def test_roles(client: TestClient, keys: dict[str, str], symbols: tuple) -> None:
    read, research = bearer(keys["read"]), bearer(keys["research"])
    body = {"name": unique("by research"), "members": [{"symbol": "GSPC", "from": "2000-01-01"}]}
    refused = client.post("/api/v1/universes", json=body, headers=read)
    assert refused.status_code == 403 and "research" in refused.json()["detail"]
    created = client.post("/api/v1/universes", json=body, headers=research)
    assert created.status_code == 201, created.text
    url = f"/api/v1/universes/{created.json()['id']}"
    me = next(k for k in client.get("/api/v1/keys").json() if keys["research"].startswith(k["prefix"]))
    assert created.json()["created_by"] == me["id"]
    assert client.get(url, headers=read).status_code == 200
    assert client.get("/api/v1/universes", headers=read).status_code == 200
    assert client.get(f"{url}/members", params={"at": "2001-01-01"}, headers=read).json()["symbols"] == ["GSPC"]
    assert client.patch(url, json={"description": "x"}, headers=read).status_code == 403
    assert client.patch(url, json={"description": "x"}, headers=research).status_code == 200
    denied = client.delete(url, headers=research)
    assert denied.status_code == 403 and "admin" in denied.json()["detail"]
    assert client.delete(url, headers=read).status_code == 403
    assert client.delete(url).status_code == 204  # admin
