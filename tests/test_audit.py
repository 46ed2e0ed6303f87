"""The audit log end to end on real servers (embedded, and Redis in distributed mode): a whole
session (room created, invites, join, notes, a real aiortc WHEP viewer, export, summary,
deletion) appears in order, and the stored log holds neither a token nor any note text."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from pycrdt import Array, Map

from server.library.clip import WEBM_VP8, ClipSpec
from server.sync.keys import AUDIT_STREAM
from server.sync.sqlite_store import SqliteStore
from tests.clips import write_clip
from tests.media import accept_answer, offer_viewer
from tests.support import (
    ADMIN_KEY,
    TIMEOUT,
    RedisServer,
    Running,
    join,
    make_settings,
    serve_in_process,
    token,
)
from tests.test_whep import MEDIA, post_offer, ready_video
from tests.yclient import ydoc

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
NOTE = "Pupil in the red jumper answered every question"
PLAN = "Next lesson: cold-call the back row first"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "360p.webm"
    return write_clip(path, ClipSpec(seconds=4, fps=30, width=320, height=180), WEBM_VP8)


@pytest.fixture(params=["embedded", "redis"])
async def server(
    request: pytest.FixtureRequest, tmp_path: Path, clip: Path
) -> AsyncIterator[Running]:
    video = f"v{int(time.time() * 1e6):x}"  # unique across tests sharing one Redis
    settings = make_settings(tmp_path, **MEDIA)
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("redis")
        settings = make_settings(tmp_path, redis=redis.url, **MEDIA)
        client = aioredis.Redis.from_url(redis.url)
        from server.sync.redis_store import RedisStore

        await RedisStore(client).put_video(ready_video(tmp_path, video, clip))
        await client.aclose()
    else:
        store = SqliteStore(tmp_path / "cocoach.sqlite3")
        await store.put_video(ready_video(tmp_path, video, clip))
        await store.close()
    async with serve_in_process(settings) as running:
        running.video = video  # type: ignore[attr-defined]
        yield running


async def audit(http: httpx.AsyncClient, want: int, **filters: str) -> list[dict[str, Any]]:
    """The events matching `filters`, once there are at least `want` (the writer batches)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        answer = await http.get("/api/audit", params={**filters, "limit": "1000"}, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        events: list[dict[str, Any]] = answer.json()["events"]
        if len(events) >= want or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.05)


async def test_a_whole_session_is_in_the_log_in_order_without_secrets(
    server: Running, request: pytest.FixtureRequest
) -> None:
    base, video = server.base, server.video  # type: ignore[attr-defined]
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as http:
        created = await http.post(
            "/api/rooms", json={"title": "Questioning", "video": video}, headers=ADMIN
        )
        assert created.status_code == 201, created.text
        room = created.json()["id"]
        invites = await http.post(
            f"/api/rooms/{room}/invites",
            json={"invites": [{"role": "teacher", "name": "Tia", "sub": "user:tia"}]},
            headers=ADMIN,
        )
        minted = invites.json()["invites"][0]["token"]
        coach = token(room, "coach", "Cal")

        async with join(base, room, "coach", "Cal"):
            async with ydoc(base, room, coach) as notes:
                notes.plan += PLAN
                notes.timeline["n1"] = Map(
                    {
                        "start": 3.0,
                        "text": NOTE,
                        "tags": Array(["open"]),
                        "author": "user:cal",
                        "created": 1.7e9,
                    }
                )
                await notes.flush()
                await asyncio.sleep(0.2)
            viewer, offer = await offer_viewer()
            try:
                answer = await post_offer(base, room, offer, minted)
                assert answer.status_code == 201, answer.text
                await accept_answer(viewer, answer.text)
                await viewer.wait_for(lambda v: v.last is not None, what="a frame")
                left = await http.delete(
                    answer.headers["location"], headers={"Authorization": f"Bearer {minted}"}
                )
                assert left.status_code == 200
            finally:
                await viewer.close()
            exported = await http.get(f"/api/rooms/{room}/export.csv", params={"token": coach})
            assert NOTE in exported.text  # the export has the note; the log must not
            assert (await http.get(f"/api/rooms/{room}/summary", headers=ADMIN)).status_code == 200
        assert (await http.delete(f"/api/videos/{video}", headers=ADMIN)).status_code == 204

        in_room = await audit(http, 10, room=room)
        actions = [(e["action"], e["actor"]["sub"], e["detail"].get("socket")) for e in in_room]
        assert actions == [
            ("room.create", "admin", None),
            ("invites.create", "admin", None),
            ("room.join", "user:cal", "room"),
            ("room.join", "user:cal", "yjs"),
            ("room.leave", "user:cal", "yjs"),
            ("video.watch", "user:tia", None),
            ("video.unwatch", "user:tia", None),
            ("export.read", "user:cal", None),
            ("summary.read", "admin", None),
            ("room.leave", "user:cal", "room"),
        ], actions
        watch, unwatch = in_room[5], in_room[6]
        assert watch["video"] == video and watch["actor"]["name"] == "Tia"
        assert watch["actor"]["role"] == "teacher" and watch["remote"] == "127.0.0.1"
        assert unwatch["detail"]["connected"] is True and unwatch["detail"]["seconds"] >= 0
        assert unwatch["detail"]["session"] == watch["detail"]["session"]
        assert in_room[7]["detail"] == {"format": "csv"}
        of_video = await audit(http, 4, video=video)
        assert [e["action"] for e in of_video][-1] == "video.delete"
        times = [e["time"] for e in in_room]
        assert times == sorted(times)

        # Reading the log is itself recorded, filters and all. Once the reads above are in
        # it, one more look (without waiting for what must not come) finds none in the room.
        reads = await audit(http, 3, action="audit.read")
        assert any(e["detail"].get("room") == room for e in reads)
        assert await audit(http, 0, action="audit.read", room=room) == []

    stored = await stored_log(server, request)
    for secret in (minted, coach, ADMIN_KEY, NOTE, PLAN):
        assert secret.encode() not in stored, f"{secret[:20]}... is in the stored audit log"
    assert room.encode() in stored and b"room.join" in stored  # and we did look in the log


async def stored_log(server: Running, request: pytest.FixtureRequest) -> bytes:
    """Every byte of the stored audit log, as an attacker with the disk or Redis would see it."""
    if server.settings.redis is None:
        return (server.settings.data / "audit.sqlite3").read_bytes() + b"".join(
            p.read_bytes() for p in server.settings.data.glob("audit.sqlite3-*")
        )
    client = aioredis.Redis.from_url(server.settings.redis)
    try:
        entries = await client.xrange(AUDIT_STREAM)
        return b"".join(entry[1][b"e"] for entry in entries)
    finally:
        await client.aclose()


async def test_the_audit_endpoint_needs_the_admin_key_and_checks_its_filters(
    embedded: Running,
) -> None:
    async with httpx.AsyncClient(base_url=embedded.base, timeout=TIMEOUT) as http:
        assert (await http.get("/api/audit")).status_code == 401
        teacher = {"Authorization": f"Bearer {token('r1', 'teacher', 'Tia')}"}
        assert (await http.get("/api/audit", headers=teacher)).status_code == 401
        for params, says in [
            ({"limit": "1001"}, "limit must be a whole number from 1 to 1000"),
            ({"limit": "0"}, "limit"),
            ({"action": "room.explode"}, "action 'room.explode' is not one of"),
            ({"since": "yesterday"}, "since must be Unix seconds or an ISO 8601 time"),
            ({"until": "2026-01-31T09:00:00"}, "time zone"),
            ({"rooom": "r1"}, "unknown filter 'rooom'"),
        ]:
            answer = await http.get("/api/audit", params=params, headers=ADMIN)
            assert answer.status_code == 400, params
            assert answer.json()["error"]["code"] == "invalid_field"
            assert says in answer.json()["error"]["message"], answer.json()
        iso = await http.get(
            "/api/audit", params={"since": "2020-01-01T00:00:00Z", "limit": "1"}, headers=ADMIN
        )
        assert iso.status_code == 200 and set(iso.json()) == {"events", "more", "next"}
