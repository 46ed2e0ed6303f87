"""Organisations across EVERY route of the app (docs/organisations.md).

The routes are enumerated from the app itself: a route added without a case here fails
`test_every_route_has_a_case`. Each case says what a token of another trust's school
(`other`) and a token of a school the room is shared with (`shared`) get. One real server on
port 0 with organisations configured, one real video ingested and attached to the shared room.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import websockets
from starlette.routing import Mount, Route, WebSocketRoute

from server.app import create_app
from server.errors import CloseCode
from tests.support import TIMEOUT, Running, serve_in_process, token
from tests.video_support import TUS, bearer, clip, http, library_settings, upload, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

ORGS = "north: ashby, brook; south: carlton"
SHARED_ROOM = "r-shared"  # ashby's, shared with brook
OWN_ROOM = "r-own"  # ashby's, shared with nobody


@dataclass(frozen=True)
class Env:
    base: str
    video: str  # ashby teacher Tess's, attached to SHARED_ROOM


@dataclass(frozen=True)
class Outcome:
    status: int  # HTTP status; 101 for a WebSocket that was let in, else its close code
    code: str | None  # the error code, when refused

    @property
    def admitted(self) -> bool:
        """Past access control: whatever came next (an unknown WHEP session's 404, a bad
        SDP's 400) was not a refusal of the caller."""
        refusals = (401, 403, *range(4001, 4006), CloseCode.FORBIDDEN, CloseCode.ROOM_NOT_FOUND)
        return self.status not in refusals


def tess(room: str = SHARED_ROOM) -> str:
    return token(room, "teacher", "Tess", org="ashby")


def shared_coach(room: str = SHARED_ROOM, role: str = "coach") -> str:
    return token(room, role, "Cole", org="brook")


def other_coach(room: str, role: str = "coach") -> str:
    return token(room, role, "Otto", org="carlton")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    data = tmp_path_factory.mktemp("orgs")
    # Every admin-only route is probed with three refused tokens from one address: more than
    # the default burst of failed authentications, which has its own tests.
    settings = library_settings(
        data, orgs=ORGS, default_org="ashby", allow_download=True, auth_failure_burst=1000.0
    )
    async with serve_in_process(settings) as running:
        async with http(running.base) as admin:
            for room, shared in ((SHARED_ROOM, ["brook"]), (OWN_ROOM, [])):
                made = await admin.post(
                    "/api/rooms",
                    json={"id": room, "title": room, "org": "ashby", "shared": shared},
                )
                assert made.status_code == 201, made.text
        async with http(running.base, tess()) as client:
            video = await upload(client, clip(data, "lesson.mp4", seconds=1.0), "Tess's lesson")
            await wait_for(client, video)
        async with http(running.base) as admin:
            attached = await admin.patch(f"/api/rooms/{SHARED_ROOM}", json={"video": video})
            assert attached.status_code == 200, attached.text
        yield Env(running.base, video)


async def call(env: Env, method: str, path: str, tok: str | None, **kw: object) -> Outcome:
    headers = dict(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
    if tok is not None:
        headers["Authorization"] = f"Bearer {tok}"
    async with httpx.AsyncClient(base_url=env.base, timeout=TIMEOUT) as client:
        answer = await client.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]
    code = None
    if answer.status_code >= 400 and answer.headers.get("content-type", "").startswith("app"):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            code = answer.json()["error"]["code"]
    return Outcome(answer.status_code, code)


async def socket(env: Env, path: str, tok: str) -> Outcome:
    url = f"{env.base.replace('http', 'ws', 1)}{path}?token={tok}"
    async with websockets.connect(url, max_size=None) as ws:
        try:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
            return Outcome(101, None)
        except websockets.ConnectionClosed:
            reason = ws.close_reason or ""
            return Outcome(ws.close_code or 0, reason.split(":")[0])


Probe = Callable[[Env, str, str], Awaitable[Outcome]]  # env, room (for the token), token


def http_probe(method: str, path: str, **kw: object) -> Probe:
    async def probe(env: Env, room: str, tok: str) -> Outcome:
        return await call(env, method, path.format(room=room, video=env.video), tok, **kw)

    return probe


def ws_probe(path: str) -> Probe:
    async def probe(env: Env, room: str, tok: str) -> Outcome:
        return await socket(env, path.format(room=room), tok)

    return probe


SDP = {"headers": {"Content-Type": "application/sdp"}, "content": b"v=0\r\n"}
FRAG = {"headers": {"Content-Type": "application/trickle-ice-sdpfrag"}, "content": b"a=x\r\n"}
CHUNK = {
    "headers": {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
}

# What the two outsiders get, per route:
#   room        other: refused org_forbidden; shared: let in (sharing applies)
#   video_read  other: 404 as if absent; shared: readable, the room's attached video
#   video_write other: 404 as if absent; shared: 403, only the owner (or admin) may
#   admin       the admin key only: any token is refused 401, whatever its org
#   public      carries no room or video data: the same answer for everyone
#   own_scope   acts on the caller's own organisation only (checked in its own test)
#   share       the room's own school's teacher (or the admin key): other refused org_forbidden,
#               shared refused forbidden (a school a room is shared with may not share it on)
CASES: dict[tuple[str, str], tuple[str, Probe]] = {
    ("/", "GET"): ("public", http_probe("GET", "/")),
    ("/healthz", "GET"): ("public", http_probe("GET", "/healthz")),
    ("/readyz", "GET"): ("public", http_probe("GET", "/readyz")),
    # Counts per worker, no room or video in any label (protected by `metrics_token` if set).
    ("/metrics", "GET"): ("public", http_probe("GET", "/metrics")),
    ("/api/rooms", "POST"): ("admin", http_probe("POST", "/api/rooms", json={"title": "x"})),
    ("/api/rooms", "GET"): ("admin", http_probe("GET", "/api/rooms")),
    ("/api/rooms/{room}", "GET"): ("admin", http_probe("GET", "/api/rooms/{room}")),
    ("/api/rooms/{room}", "PATCH"): (
        "share",
        http_probe("PATCH", "/api/rooms/{room}", json={"shared": ["brook", "north"]}),
    ),
    ("/api/rooms/{room}/invites", "POST"): (
        "admin",
        http_probe("POST", "/api/rooms/{room}/invites", json={}),
    ),
    ("/api/rooms/{room}/export.{format}", "GET"): (
        "room",
        http_probe("GET", "/api/rooms/{room}/export.csv"),
    ),
    ("/api/rooms/{room}/summary", "GET"): ("room", http_probe("GET", "/api/rooms/{room}/summary")),
    ("/api/frameworks", "GET"): ("public", http_probe("GET", "/api/frameworks")),
    ("/api/frameworks/{id}", "GET"): ("public", http_probe("GET", "/api/frameworks/questioning")),
    ("/api/videos", "POST"): ("own_scope", http_probe("POST", "/api/videos")),
    ("/api/videos", "GET"): ("own_scope", http_probe("GET", "/api/videos")),
    ("/api/videos", "OPTIONS"): ("public", http_probe("OPTIONS", "/api/videos")),
    ("/api/videos/{video}", "GET"): ("video_read", http_probe("GET", "/api/videos/{video}")),
    ("/api/videos/{video}", "PATCH"): (
        "admin",
        http_probe("PATCH", "/api/videos/{video}", json={"consent": "obtained"}),
    ),
    ("/api/audit", "GET"): ("admin", http_probe("GET", "/api/audit")),
    ("/api/videos/{video}", "DELETE"): (
        "video_write",
        http_probe("DELETE", "/api/videos/{video}"),
    ),
    ("/api/videos/{video}/download", "GET"): (
        "video_write",
        http_probe("GET", "/api/videos/{video}/download"),
    ),
    ("/api/videos/{video}/upload", "HEAD"): (
        "video_write",
        http_probe("HEAD", "/api/videos/{video}/upload", headers=TUS),
    ),
    ("/api/videos/{video}/upload", "PATCH"): (
        "video_write",
        http_probe("PATCH", "/api/videos/{video}/upload", content=b"", **CHUNK),
    ),
    ("/api/videos/{video}/upload", "DELETE"): (
        "video_write",
        http_probe("DELETE", "/api/videos/{video}/upload", headers=TUS),
    ),
    ("/api/videos/{video}/upload", "OPTIONS"): (
        "public",
        http_probe("OPTIONS", "/api/videos/{video}/upload"),
    ),
    ("/r/{room}", "GET"): ("public", http_probe("GET", "/r/{room}")),
    ("/admin", "GET"): ("public", http_probe("GET", "/admin")),
    ("/static", "MOUNT"): ("public", http_probe("GET", "/static/nothing-here.js")),
    ("/rooms/{room}/whep", "POST"): ("room", http_probe("POST", "/rooms/{room}/whep", **SDP)),
    ("/rooms/{room}/whep", "OPTIONS"): ("public", http_probe("OPTIONS", "/rooms/{room}/whep")),
    ("/rooms/{room}/whep/{session}", "PATCH"): (
        "room",
        http_probe("PATCH", "/rooms/{room}/whep/s-none", **FRAG),
    ),
    ("/rooms/{room}/whep/{session}", "DELETE"): (
        "room",
        http_probe("DELETE", "/rooms/{room}/whep/s-none"),
    ),
    ("/rooms/{room}/whip", "POST"): ("room", http_probe("POST", "/rooms/{room}/whip", **SDP)),
    ("/rooms/{room}/whip", "OPTIONS"): ("public", http_probe("OPTIONS", "/rooms/{room}/whip")),
    ("/rooms/{room}/whip/{session}", "PATCH"): (
        "room",
        http_probe("PATCH", "/rooms/{room}/whip/s-none", **FRAG),
    ),
    ("/rooms/{room}/whip/{session}", "DELETE"): (
        "room",
        http_probe("DELETE", "/rooms/{room}/whip/s-none"),
    ),
    ("/rooms/{room}/talkback", "POST"): (
        "room",
        http_probe("POST", "/rooms/{room}/talkback", **SDP),
    ),
    ("/rooms/{room}/talkback", "OPTIONS"): (
        "public",
        http_probe("OPTIONS", "/rooms/{room}/talkback"),
    ),
    ("/rooms/{room}/talkback/{session}", "PATCH"): (
        "room",
        http_probe("PATCH", "/rooms/{room}/talkback/s-none", **FRAG),
    ),
    ("/rooms/{room}/talkback/{session}", "DELETE"): (
        "room",
        http_probe("DELETE", "/rooms/{room}/talkback/s-none"),
    ),
    ("/rooms/{room}/voice", "POST"): ("room", http_probe("POST", "/rooms/{room}/voice", **SDP)),
    ("/rooms/{room}/voice", "OPTIONS"): ("public", http_probe("OPTIONS", "/rooms/{room}/voice")),
    ("/rooms/{room}/voice/{session}", "PATCH"): (
        "room",
        http_probe("PATCH", "/rooms/{room}/voice/s-none", **FRAG),
    ),
    ("/rooms/{room}/voice/{session}", "DELETE"): (
        "room",
        http_probe("DELETE", "/rooms/{room}/voice/s-none"),
    ),
    ("/api/rooms/{room}/talk", "GET"): ("room", http_probe("GET", "/api/rooms/{room}/talk")),
    ("/api/rooms/{room}/talk.csv", "GET"): (
        "room",
        http_probe("GET", "/api/rooms/{room}/talk.csv"),
    ),
    # Signing in, and people: a room token opens none of them (the session cookie does).
    ("/login", "GET"): ("public", http_probe("GET", "/login")),
    ("/auth/callback", "GET"): ("public", http_probe("GET", "/auth/callback")),
    ("/logout", "POST"): ("public", http_probe("POST", "/logout")),
    ("/auth/link/{secret}", "GET"): ("public", http_probe("GET", "/auth/link/x")),
    ("/auth/link/{secret}", "POST"): ("public", http_probe("POST", "/auth/link/x")),
    ("/api/me", "GET"): ("public", http_probe("GET", "/api/me")),
    ("/api/me/rooms", "GET"): ("public", http_probe("GET", "/api/me/rooms")),
    # Coaching cycles: a signed-in person's, never a room token's.
    ("/api/cycles", "GET"): ("public", http_probe("GET", "/api/cycles")),
    ("/api/cycles", "POST"): ("public", http_probe("POST", "/api/cycles", json={})),
    ("/api/cycles/{cycle}", "GET"): ("public", http_probe("GET", "/api/cycles/c-x")),
    ("/api/cycles/{cycle}/accept", "POST"): (
        "public",
        http_probe("POST", "/api/cycles/c-x/accept"),
    ),
    ("/api/cycles/{cycle}/close", "POST"): ("public", http_probe("POST", "/api/cycles/c-x/close")),
    ("/api/cycles/{cycle}/sessions", "POST"): (
        "public",
        http_probe("POST", "/api/cycles/c-x/sessions", json={}),
    ),
    ("/api/cycles/{cycle}/lessons", "POST"): (
        "public",
        http_probe("POST", "/api/cycles/c-x/lessons", json={}),
    ),
    ("/api/cycles/{cycle}/scores", "PUT"): (
        "public",
        http_probe("PUT", "/api/cycles/c-x/scores", json={}),
    ),
    ("/api/cycles/{cycle}/share", "POST"): (
        "public",
        http_probe("POST", "/api/cycles/c-x/share", json={}),
    ),
    ("/api/cycles/{cycle}/export.json", "GET"): (
        "public",
        http_probe("GET", "/api/cycles/c-x/export.json"),
    ),
    ("/api/people/{person}/progress", "GET"): (
        "public",
        http_probe("GET", "/api/people/p-x/progress"),
    ),
    ("/api/cycles/{cycle}/progress", "GET"): (
        "public",
        http_probe("GET", "/api/cycles/c-x/progress"),
    ),
    ("/api/cycles/{cycle}/notes", "GET"): ("public", http_probe("GET", "/api/cycles/c-x/notes")),
    ("/api/cycles/{cycle}/report.html", "GET"): (
        "public",
        http_probe("GET", "/api/cycles/c-x/report.html"),
    ),
    ("/c/{cycle}", "GET"): ("public", http_probe("GET", "/c/c-x")),
    ("/api/clips", "POST"): (
        "public",
        http_probe("POST", "/api/clips", json={}),
    ),
    ("/api/clips", "GET"): ("public", http_probe("GET", "/api/clips")),
    ("/api/clips/{clip}", "GET"): ("public", http_probe("GET", "/api/clips/k-x")),
    ("/api/clips/{clip}", "DELETE"): ("public", http_probe("DELETE", "/api/clips/k-x")),
    ("/api/clips/{clip}/shares", "POST"): (
        "public",
        http_probe("POST", "/api/clips/k-x/shares", json={}),
    ),
    ("/api/clips/{clip}/shares/{group}", "DELETE"): (
        "public",
        http_probe("DELETE", "/api/clips/k-x/shares/g-x"),
    ),
    ("/api/clips/{clip}/watch", "POST"): (
        "public",
        http_probe("POST", "/api/clips/k-x/watch", json={}),
    ),
    ("/api/groups", "POST"): (
        "public",
        http_probe("POST", "/api/groups", json={}),
    ),
    ("/api/groups", "GET"): ("public", http_probe("GET", "/api/groups")),
    ("/api/groups/{group}", "GET"): ("public", http_probe("GET", "/api/groups/g-x")),
    ("/api/groups/{group}/members", "POST"): (
        "public",
        http_probe("POST", "/api/groups/g-x/members", json={}),
    ),
    ("/api/groups/{group}/members/{person}", "DELETE"): (
        "public",
        http_probe("DELETE", "/api/groups/g-x/members/p-x"),
    ),
    ("/api/groups/{group}/sessions", "POST"): (
        "public",
        http_probe("POST", "/api/groups/g-x/sessions", json={}),
    ),
    ("/api/library", "POST"): (
        "public",
        http_probe("POST", "/api/library", json={}),
    ),
    ("/api/library", "GET"): ("public", http_probe("GET", "/api/library")),
    ("/api/library/{clip}", "DELETE"): ("public", http_probe("DELETE", "/api/library/k-x")),
    ("/g/{group}", "GET"): ("public", http_probe("GET", "/g/g-x")),
    ("/library", "GET"): ("public", http_probe("GET", "/library")),
    ("/clips/{clip}", "GET"): ("public", http_probe("GET", "/clips/k-x")),
    ("/api/rooms/{room}/token", "POST"): ("public", http_probe("POST", "/api/rooms/{room}/token")),
    ("/rooms/{room}/join", "GET"): ("public", http_probe("GET", "/rooms/{room}/join")),
    ("/api/people", "GET"): ("public", http_probe("GET", "/api/people?q=a")),
    ("/api/people/{person}", "PATCH"): (
        "admin",
        http_probe("PATCH", "/api/people/p-none", json={"roles": ["coach"]}),
    ),
    ("/rooms/{room}/ws", "WS"): ("room", ws_probe("/rooms/{room}/ws")),
    ("/yjs/{room}", "WS"): ("room", ws_probe("/yjs/{room}")),
}


# The role a route's outsiders come with, so that their role passes and only their organisation
# is judged (a camera publishes; a coach talks back).
ROLE_FOR = {("/rooms/{room}/whip", "POST"): "camera"}


def app_routes(tmp: Path) -> set[tuple[str, str]]:
    app = create_app(library_settings(tmp))
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            found.add((route.path, "WS"))
        elif isinstance(route, Mount):
            found.add((route.path, "MOUNT"))
        else:
            assert isinstance(route, Route), route
            methods = set(route.methods or ())
            if "GET" in methods:
                methods.discard("HEAD")  # Starlette answers HEAD for every GET route
            found |= {(route.path, m) for m in methods}
    return found


async def test_every_route_has_a_case(tmp_path: Path) -> None:
    routes = app_routes(tmp_path)
    assert routes - set(CASES) == set(), "a route without an organisation case"
    assert set(CASES) - routes == set(), "a case for a route the app no longer has"


@pytest.mark.parametrize("key", sorted(CASES), ids=lambda k: f"{k[1]} {k[0]}")
async def test_other_and_shared_organisations_on_every_route(
    env: Env, key: tuple[str, str]
) -> None:
    kind, probe = CASES[key]
    role = ROLE_FOR.get(key, "coach")
    if kind == "room":
        for room in (SHARED_ROOM, OWN_ROOM):
            refused = await probe(env, room, other_coach(room, role))
            assert refused.code == "org_forbidden", (room, refused)
            assert refused.status in (403, CloseCode.FORBIDDEN), refused
        outside = await probe(env, OWN_ROOM, shared_coach(OWN_ROOM, role))
        assert outside.code == "org_forbidden", "brook is shared into one room, not this one"
        let_in = await probe(env, SHARED_ROOM, shared_coach(SHARED_ROOM, role))
        assert let_in.admitted, let_in
        own = await probe(env, SHARED_ROOM, token(SHARED_ROOM, role, "Tess", org="ashby"))
        assert own.admitted, own
    elif kind in ("video_read", "video_write"):
        hidden = await probe(env, OWN_ROOM, other_coach(OWN_ROOM))
        assert (hidden.status, hidden.code) == (404, "not_found") or (
            hidden.status == 404 and key[1] == "HEAD"
        ), hidden
        shared = await probe(env, SHARED_ROOM, shared_coach())
        if kind == "video_read":
            assert shared.status == 200, "the room's attached video can be read by its members"
        else:
            assert shared.status == 403, shared
        # Tess's own video is not reachable with her token for a room that does not show it,
        # by Cole: sharing a room is not sharing a library.
        via_other_room = await probe(env, OWN_ROOM, shared_coach(OWN_ROOM))
        assert via_other_room.status == 404, via_other_room
    elif kind == "share":
        refused = await probe(env, SHARED_ROOM, other_coach(SHARED_ROOM, "teacher"))
        assert refused.code == "org_forbidden", refused
        onward = await probe(env, SHARED_ROOM, shared_coach(SHARED_ROOM, "teacher"))
        assert (onward.status, onward.code) == (403, "forbidden"), onward
        coach = await probe(env, SHARED_ROOM, token(SHARED_ROOM, "coach", "Cy", org="ashby"))
        assert (coach.status, coach.code) == (403, "forbidden"), "sharing is the teacher's"
        assert (await probe(env, SHARED_ROOM, tess())).status == 200
    elif kind == "admin":
        for tok in (other_coach(SHARED_ROOM), shared_coach(), tess()):
            refused = await probe(env, SHARED_ROOM, tok)
            assert refused.status == 401, refused
    elif kind == "public":
        anyone = await probe(env, SHARED_ROOM, other_coach(SHARED_ROOM))
        assert anyone == await probe(env, SHARED_ROOM, tess())
    else:
        assert kind == "own_scope"
        outcome = await probe(env, SHARED_ROOM, other_coach(SHARED_ROOM))
        assert outcome.code != "org_forbidden"  # its own library: see the next test


async def test_a_library_holds_only_its_own_organisations_videos(env: Env) -> None:
    async with http(env.base, other_coach(SHARED_ROOM)) as otto:
        assert (await otto.get("/api/videos")).json()["videos"] == []
        made = await otto.post("/api/videos", headers={**TUS, "Upload-Length": "10"}, content=b"")
        assert made.status_code == 201, made.text
        mine = made.headers["location"].split("/")[3]
        assert [v["id"] for v in (await otto.get("/api/videos")).json()["videos"]] == [mine]
        assert (await otto.get(f"/api/videos/{mine}")).json()["org"] == "carlton"
        asked = await otto.post(
            "/api/videos", headers={"Content-Type": "video/mp4"}, params={"org": "ashby"}
        )
        assert asked.json()["error"]["code"] == "org_forbidden", "a token uploads for its own"
    # The same `sub` in another school is another person.
    async with http(env.base, token(OWN_ROOM, "teacher", "Tess", org="brook")) as namesake:
        assert (await namesake.get(f"/api/videos/{env.video}")).status_code == 404
    async with http(env.base, tess()) as owner:
        listed = [v["id"] for v in (await owner.get("/api/videos")).json()["videos"]]
        assert listed == [env.video]
    async with http(env.base) as admin:
        every = {v["id"] for v in (await admin.get("/api/videos")).json()["videos"]}
        assert {env.video, mine} <= every
        north = (await admin.get("/api/videos", params={"org": "carlton"})).json()["videos"]
        assert [v["id"] for v in north] == [mine]
        assert (await admin.delete(f"/api/videos/{mine}")).status_code == 204


async def test_a_token_must_name_a_known_organisation(env: Env) -> None:
    for tok, code in (
        (token(SHARED_ROOM, "coach", "Nora"), "org_required"),
        (token(SHARED_ROOM, "coach", "Una", org="elsewhere"), "org_unknown"),
    ):
        closed = await socket(env, f"/rooms/{SHARED_ROOM}/ws", tok)
        assert (closed.status, closed.code) == (CloseCode.FORBIDDEN, code)
        answer = await call(env, "GET", f"/api/rooms/{SHARED_ROOM}/summary", tok)
        assert (answer.status, answer.code) == (403, code)
        answer = await call(env, "GET", "/api/videos", tok)
        assert (answer.status, answer.code) == (403, code)


async def test_sharing_is_validated_changed_and_revoked(env: Env) -> None:
    async with http(env.base) as admin:
        outside = await admin.post(
            "/api/rooms", json={"title": "x", "org": "ashby", "shared": ["carlton"]}
        )
        assert outside.status_code == 400
        assert outside.json()["error"]["code"] == "share_outside_trust"
        assert "trust" in outside.json()["error"]["message"]
        unknown = await admin.post("/api/rooms", json={"title": "x", "org": "atlantis"})
        assert unknown.json()["error"]["code"] == "org_unknown"
        room = (await admin.post("/api/rooms", json={"title": "Later", "org": "ashby"})).json()
        assert room["org"] == "ashby" and room["shared"] == []
        assert (await socket(env, f"/yjs/{room['id']}", shared_coach(room["id"]))).code == (
            "org_forbidden"
        )
        changed = await admin.patch(f"/api/rooms/{room['id']}", json={"shared": ["brook"]})
        assert changed.json()["shared"] == ["brook"]
        assert (await socket(env, f"/yjs/{room['id']}", shared_coach(room["id"]))).admitted
        invites = await admin.post(f"/api/rooms/{room['id']}/invites", json={})
        assert invites.status_code == 201
        refused = await admin.post(f"/api/rooms/{room['id']}/invites", json={"org": "carlton"})
        assert refused.json()["error"]["code"] == "org_forbidden"
        revoked = await admin.patch(f"/api/rooms/{room['id']}", json={"shared": []})
        assert revoked.json()["shared"] == []
        assert (await socket(env, f"/yjs/{room['id']}", shared_coach(room["id"]))).code == (
            "org_forbidden"
        )
        # An invite without `org` carries the room's own school, and gets in.
        link = invites.json()["invites"][0]
        assert (await socket(env, f"/rooms/{room['id']}/ws", link["token"])).admitted
        # A room shows only a video of its own organisation.
        away = await admin.post(
            "/api/rooms", json={"title": "x", "org": "brook", "video": env.video}
        )
        assert (away.status_code, away.json()["error"]["code"]) == (404, "not_found")


async def test_downloads_are_audited_and_seekable(env: Env) -> None:
    async with http(env.base, tess()) as owner:
        whole = await owner.get(f"/api/videos/{env.video}/download")
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/webm"
        assert whole.content[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a WebM file
        part = await owner.get(f"/api/videos/{env.video}/download", headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == whole.content[:100]
    async with http(env.base) as admin:
        assert (await admin.get(f"/api/videos/{env.video}")).status_code == 200
        deadline = time.monotonic() + TIMEOUT
        while True:  # the audit log is written behind a queue
            events = (await admin.get("/api/audit", params={"video": env.video})).json()["events"]
            actions = {(e["action"], e["actor"]["sub"]) for e in events}
            if ("video.admin_read", "admin") in actions or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    assert ("video.download", "user:tess") in actions, actions
    assert ("video.admin_read", "admin") in actions, actions


async def test_without_the_setting_there_is_no_download(tmp_path: Path) -> None:
    async with serve_in_process(library_settings(tmp_path)) as running:
        answer = await call(Env(running.base, "v"), "GET", "/api/videos/v/download", None)
        assert (answer.status, answer.code) == (403, "download_disabled")
        async with http(running.base) as admin:
            refused = await admin.get("/api/videos/v/download")
            assert refused.json()["error"]["code"] == "download_disabled"


async def test_without_orgs_every_token_reaches_every_room(tmp_path: Path) -> None:
    """The single-school default: `org` claims are labels, nothing else changes."""
    running: Running
    async with serve_in_process(library_settings(tmp_path)) as running:
        async with http(running.base) as admin:
            made = await admin.post("/api/rooms", json={"id": "r1", "title": "x", "org": "north"})
            assert made.json()["org"] == "north"
            refused = await admin.post("/api/rooms", json={"title": "x", "shared": ["south"]})
            assert refused.json()["error"]["code"] == "org_unknown"
        env = Env(running.base, "none")
        for tok in (token("r1", "coach", "A"), token("r1", "coach", "B", org="south")):
            assert (await socket(env, "/rooms/r1/ws", tok)).admitted
            assert (await call(env, "GET", "/api/rooms/r1/summary", tok)).status == 200


async def test_the_admin_key_reaches_every_organisation(env: Env) -> None:
    async with http(env.base, bearer()["Authorization"][7:]) as admin:
        for room in (SHARED_ROOM, OWN_ROOM):
            assert (await admin.get(f"/api/rooms/{room}/summary")).status_code == 200
        rooms = (await admin.get("/api/rooms", params={"org": "ashby"})).json()["rooms"]
        assert {SHARED_ROOM, OWN_ROOM} <= {r["id"] for r in rooms}


async def test_the_teacher_shares_the_room_and_nothing_else(env: Env) -> None:
    """DOMAIN.md: the teacher controls sharing. Her room token changes `shared` (within the
    trust); the title and the video need the admin key."""
    path = f"/api/rooms/{OWN_ROOM}"
    for change in ({"title": "Renamed"}, {"video": env.video}):
        refused = await call(env, "PATCH", path, tess(OWN_ROOM), json=change)
        assert (refused.status, refused.code) == (403, "forbidden"), change
    outside = await call(env, "PATCH", path, tess(OWN_ROOM), json={"shared": ["carlton"]})
    assert (outside.status, outside.code) == (400, "share_outside_trust"), outside
    shared = await call(env, "PATCH", path, tess(OWN_ROOM), json={"shared": ["brook"]})
    assert shared.status == 200, shared
    let_in = await socket(env, f"/rooms/{OWN_ROOM}/ws", shared_coach(OWN_ROOM))
    assert let_in.admitted, "brook's coach gets in once the teacher shared the room"
    unshared = await call(env, "PATCH", path, tess(OWN_ROOM), json={"shared": []})
    assert unshared.status == 200
    refused_again = await socket(env, f"/rooms/{OWN_ROOM}/ws", shared_coach(OWN_ROOM))
    assert refused_again.code == "org_forbidden"
