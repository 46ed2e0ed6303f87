"""What the server does for the page: `/r/{room}` and `/admin` with their headers, the built
bundle under `/static`, a clear page when the bundle was never built, and invite links minted
with the admin key (`POST /api/rooms/{room}/invites`)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from server.rooms.roles import Role
from server.tokens import verify
from tests.support import ADMIN_KEY, SECRET, TIMEOUT, Running

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for web/dist, so these tests do not depend on npm."""
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "session.html").write_text("<!doctype html><title>session</title>")
    (dist / "admin.html").write_text("<!doctype html><title>admin</title>")
    (dist / "session-ABC.js").write_text("console.log(1)")
    monkeypatch.setenv("COCOACH_WEB_DIST", str(dist))
    return dist


async def get(base: str, path: str, **kw: object) -> httpx.Response:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        return await http.get(base + path, **kw)  # type: ignore[arg-type]


async def post(base: str, path: str, **kw: object) -> httpx.Response:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        return await http.post(base + path, **kw)  # type: ignore[arg-type]


@pytest.mark.usefixtures("built")
async def test_pages_and_bundle_are_served_with_private_headers(embedded: Running) -> None:
    page = await get(embedded.base, "/r/r1?token=anything")
    assert page.status_code == 200 and "<title>session</title>" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    admin = await get(embedded.base, "/admin")
    assert admin.status_code == 200 and "<title>admin</title>" in admin.text
    assert admin.headers["referrer-policy"] == "no-referrer"
    bundle = await get(embedded.base, "/static/session-ABC.js")
    assert bundle.status_code == 200 and "immutable" in bundle.headers["cache-control"]
    # Pages only through their routes (with their headers), and nothing outside dist.
    assert (await get(embedded.base, "/static/session.html")).status_code == 404
    assert (await get(embedded.base, "/static/../pyproject.toml")).status_code == 404
    assert (await get(embedded.base, "/static/nothing.js")).status_code == 404


async def test_a_page_never_built_says_how_to_build_it(
    embedded: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COCOACH_WEB_DIST", str(tmp_path / "never-built"))
    for path in ("/r/r1?token=x", "/admin"):
        page = await get(embedded.base, path)
        assert page.status_code == 503
        assert "make run" in page.text and "npm run build" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"


async def test_invites_mint_a_link_per_person(embedded: Running) -> None:
    body = {
        "ttl": 3600,
        "org": "north-trust",
        "invites": [
            {"role": "coach", "name": "Ann Lee", "sub": "staff-1042"},
            {"role": "teacher", "name": "Tom"},
        ],
    }
    response = await post(embedded.base, "/api/rooms/r1/invites", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    made = response.json()
    assert made["room"] == "r1"
    coach, teacher = made["invites"]
    assert coach["path"] == f"/r/r1?token={coach['token']}"
    assert coach["url"] == embedded.settings.base_url + coach["path"]
    claims = verify(SECRET, coach["token"], room="r1")
    assert (claims.role, claims.name, claims.sub, claims.org) == (
        Role.COACH,
        "Ann Lee",
        "staff-1042",
        "north-trust",
    )
    assert abs(claims.exp - made["expires"]) <= 1
    tom = verify(SECRET, teacher["token"], room="r1")
    # A person of its own, never made from the name (as `cocoach token` mints it).
    assert tom.role == Role.TEACHER and tom.sub.startswith("u-") and "tom" not in tom.sub


async def test_invites_default_to_coach_teacher_and_observer(embedded: Running) -> None:
    response = await post(embedded.base, "/api/rooms/r1/invites", json={}, headers=ADMIN)
    assert response.status_code == 201, response.text
    assert [i["role"] for i in response.json()["invites"]] == ["coach", "teacher", "observer"]


@pytest.mark.parametrize(
    ("room", "body", "headers", "status", "code"),
    [
        ("r1", {}, {}, 401, "unauthorized"),
        ("r1", {}, {"authorization": "Bearer wrong-key-123"}, 401, "unauthorized"),
        ("nowhere", {}, ADMIN, 404, "room_not_found"),
        ("r1", {"invites": [{"role": "king", "name": "X"}]}, ADMIN, 400, "invalid_field"),
        ("r1", {"invites": [{"role": "coach", "name": " "}]}, ADMIN, 400, "invalid_field"),
        ("r1", {"invites": []}, ADMIN, 400, "invalid_field"),
        ("r1", {"ttl": 10}, ADMIN, 400, "invalid_field"),
        ("r1", {"ttl": 30 * 86400}, ADMIN, 400, "invalid_field"),
        ("r1", {"colour": "red"}, ADMIN, 400, "invalid_field"),
    ],
)
async def test_invites_refusals(
    embedded: Running,
    room: str,
    body: dict[str, object],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = await post(embedded.base, f"/api/rooms/{room}/invites", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
