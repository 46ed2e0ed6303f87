"""The room protocol against a real embedded server on port 0 with real WebSocket clients."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from pathlib import Path

import httpx
import msgspec
import pytest
import websockets

from server.codec import encode
from server.errors import CloseCode
from server.rooms.events import AttachVideo
from server.rooms.playback import PlaybackRules
from server.rooms.room import Room
from server.sync.sqlite_store import SqliteStore
from server.sync.store import RoomRecord
from tests.support import (
    ADMIN_KEY,
    TIMEOUT,
    Running,
    connect,
    join,
    make_settings,
    serve_in_process,
    token,
)


async def test_welcome_then_members_join_update_and_leave(embedded: Running) -> None:
    async with join(embedded.base, "r1", "coach", "Ann") as ann:
        welcome = ann.welcome
        assert welcome["protocol"] == 1
        assert welcome["room"] == {"id": "r1", "title": "Lesson one"}
        assert welcome["you"]["name"] == "Ann" and welcome["you"]["role"] == "coach"
        assert [m["id"] for m in welcome["members"]] == [ann.id]
        assert welcome["playback"]["status"] == "paused"
        assert welcome["playback"]["position"] == 0.0
        assert abs(welcome["server_time"] - time.time()) < 5

        async with join(embedded.base, "r1", "teacher", "Tess") as tess:
            assert {m["name"] for m in tess.welcome["members"]} == {"Ann", "Tess"}
            joined = await ann.expect("member_joined")
            assert joined["member"]["name"] == "Tess" and joined["member"]["id"] == tess.id

            await tess.send(type="presence", status="away", state={"cursor": 12})
            updated = await ann.expect("member_updated")
            assert updated["member"]["status"] == "away"
            assert updated["member"]["state"] == {"cursor": 12}
            # The sender hears its own update too: one source of truth for everyone's view.
            await tess.expect("member_updated")
        left = await ann.expect("member_left")
        assert left["id"] == tess.id


async def test_ping_is_answered_at_once(embedded: Running) -> None:
    async with join(embedded.base, "r1") as ann:
        await ann.send(type="ping", id=7, t0=123.5)
        pong = await ann.expect("pong")
        assert pong["id"] == 7 and pong["t0"] == 123.5
        assert abs(pong["server_time"] - time.time()) < 5


async def test_playback_intents_reach_everyone_and_observers_are_refused(embedded: Running) -> None:
    async with (
        join(embedded.base, "r1", "coach", "Ann") as ann,
        join(embedded.base, "r1", "observer", "Obi") as obi,
    ):
        await obi.send(type="play", ref="p1")
        error = await obi.expect("error")
        assert error["code"] == "forbidden" and error["ref"] == "p1"
        await ann.send(type="seek", position=42.0)
        for client in (ann, obi):
            state = (await client.expect("playback"))["playback"]
            assert state["position"] == 42.0 and state["by"] == ann.id and state["seq"] == 1
        await ann.send(type="rate", rate=9)
        assert (await ann.expect("error"))["code"] == "invalid_field"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\xc1\xc1", "malformed"),
        (msgspec.msgpack.encode([1, 2, 3]), "malformed"),
        (msgspec.msgpack.encode({"type": "teleport"}), "unknown_type"),
        (msgspec.msgpack.encode({"type": "seek", "position": "ten"}), "invalid_field"),
        (
            msgspec.msgpack.encode({"type": "ping", "id": 1, "t0": 0, "x": "y" * 70_000}),
            "frame_too_large",
        ),
        ("a text frame", "malformed"),
    ],
)
async def test_bad_frames_get_errors_and_nothing_else_changes(
    embedded: Running, frame: bytes | str, code: str
) -> None:
    async with (
        join(embedded.base, "r1", "coach", "Ann") as ann,
        join(embedded.base, "r1", "teacher", "Tess") as tess,
    ):
        await ann.expect("member_joined")
        await tess.send_raw(frame)
        error = await tess.expect("error")
        assert error["code"] == code and error["message"]
        # The sender's connection goes on, and the other member saw nothing.
        await tess.send(type="ping", id=1, t0=0)
        await tess.expect("pong")
        await ann.silent(0.2)


async def test_oversize_past_transport_cap_closes_with_1009(embedded: Running) -> None:
    async with (
        join(embedded.base, "r1", "teacher", "Tess") as tess,
        join(embedded.base, "r1", "coach", "Ann") as ann,
    ):
        await tess.send_raw(b"\x00" * (3 * 1024 * 1024))
        code, _ = await tess.closed()
        assert code == 1009
        assert (await ann.expect("member_left"))["id"] == tess.id
        await ann.send(type="ping", id=2, t0=0)
        await ann.expect("pong")


async def test_rate_limit_answers_then_flood_closes(embedded: Running) -> None:
    async with (
        join(embedded.base, "r1", "coach", "Ann") as ann,
        join(embedded.base, "r1", "teacher", "Tess") as tess,
    ):
        frame = msgspec.msgpack.encode({"type": "ping", "id": 0, "t0": 0})
        for _ in range(400):
            await tess.send_raw(frame)
        code, reason = await tess.closed()
        assert code == CloseCode.FLOOD and reason.startswith("flood")
        await ann.send(type="ping", id=3, t0=0)
        await ann.expect("pong", id=3)


async def test_rate_limit_error_before_the_flood_close(embedded: Running) -> None:
    async with join(embedded.base, "r1", "coach", "Ann") as ann:
        frame = msgspec.msgpack.encode({"type": "ping", "id": 0, "t0": 0})
        for _ in range(80):  # over the burst (60), under the flood close (100 refused)
            await ann.send_raw(frame)
        error = await ann.expect("error")
        assert error["code"] == "rate_limited"
        await asyncio.sleep(1.0)  # the bucket refills
        await ann.send(type="ping", id=99, t0=0)
        await ann.expect("pong", id=99)


@pytest.mark.parametrize(
    ("make", "close"),
    [
        (lambda: None, CloseCode.TOKEN_MISSING),
        (lambda: "garbage", CloseCode.TOKEN_INVALID),
        (lambda: token("r1", secret="x" * 64), CloseCode.TOKEN_INVALID),
        (lambda: token("r1", ttl=-5), CloseCode.TOKEN_EXPIRED),
        (lambda: token("elsewhere"), CloseCode.TOKEN_WRONG_ROOM),
    ],
)
async def test_bad_tokens_are_refused_before_welcome(
    embedded: Running, make: object, close: int
) -> None:
    async with connect(embedded.base, "r1", make()) as client:  # type: ignore[operator]
        code, reason = await client.closed()
    assert code == close and ":" in reason


async def test_unknown_role_is_refused(embedded: Running) -> None:
    import jwt

    bad = jwt.encode(
        {"sub": "x", "name": "X", "room": "r1", "role": "head", "exp": time.time() + 60},
        embedded.settings.secret,
    )
    async with connect(embedded.base, "r1", bad) as client:
        code, reason = await client.closed()
    assert code == CloseCode.TOKEN_ROLE_UNKNOWN and reason.startswith("token_role_unknown")


async def test_unknown_room_is_refused(embedded: Running) -> None:
    async with connect(embedded.base, "nope", token("nope")) as client:
        code, _ = await client.closed()
    assert code == CloseCode.ROOM_NOT_FOUND


async def test_bearer_header_works_like_the_query_parameter(embedded: Running) -> None:
    url = embedded.base.replace("http", "ws") + "/rooms/r1/ws"
    headers = {"Authorization": f"Bearer {token('r1')}"}
    async with websockets.connect(url, additional_headers=headers) as ws:
        welcome = msgspec.msgpack.decode(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert welcome["type"] == "welcome"


async def test_slow_reader_is_dropped_and_others_are_not(tmp_path: Path) -> None:
    # A small send queue and a high rate limit, so the test fills the queue in seconds.
    settings = make_settings(tmp_path, send_queue=64, rate_per_second=5000, rate_burst=5000)
    await _create_room(tmp_path, "r1")
    async with serve_in_process(settings) as server, join(server.base, "r1", "coach", "Ann") as ann:
        # A client that never reads: a raw socket that does the handshake and then stops.
        _reader, writer = await _never_reading_client(
            server.base, "/rooms/r1/ws?token=" + token("r1", "observer", "Slow")
        )
        try:
            await ann.expect("member_joined")
            left: list[dict[str, object]] = []
            for i in range(20_000):
                await ann.send(type="presence", state={"k": "x" * 900, "i": i})
                if i % 10 == 0:
                    left = [m for m in await _drain(ann) if m["type"] == "member_left"]
                    if left:
                        break
            assert left, "the slow reader was never dropped"
            assert left[0]["reason"] == "slow_consumer"
        finally:
            writer.close()
        await ann.send(type="ping", id=5, t0=0)
        await ann.expect("pong", id=5)


async def _with_lesson(tmp_path: Path) -> None:
    """Room r1 with video v1 (60 s at 25 frames/s) attached, as its media side would."""
    await _create_room(tmp_path, "r1")
    room = Room("r1", "r1")
    room.handle(AttachVideo("v1", 60.0, 25.0, time.time()))
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    await store.save_room_state("r1", encode(room.state))
    await store.close()


async def test_step_moves_a_paused_video_and_a_bad_step_is_an_error(tmp_path: Path) -> None:
    await _with_lesson(tmp_path)
    async with (
        serve_in_process(make_settings(tmp_path)) as server,
        join(server.base, "r1", "coach", "Ann") as ann,
        join(server.base, "r1", "observer", "Obi") as obi,
    ):
        assert ann.welcome["playback"]["video"] == "v1"
        assert ann.welcome["playback"]["presenter"] is None
        await ann.send(type="seek", position=10.0)
        for client in (ann, obi):
            await client.expect("playback")
        await ann.send(type="step", frames=2, ref="s1")
        for client in (ann, obi):
            state = (await client.expect("playback"))["playback"]
            assert state["status"] == "paused" and state["position"] == 10.08
        # Refused by the codec (not a whole number) and by the rules (out of range, playing).
        await ann.send(type="step", frames="two", ref="s2")
        error = await ann.expect("error")
        assert error["code"] == "invalid_field" and "frames" in error["message"]
        assert error["ref"] == "s2"
        await ann.send(type="step", frames=0)
        error = await ann.expect("error")
        assert error["code"] == "invalid_field" and error["ref"] == "step"
        await ann.send(type="play")
        await ann.expect("playback")
        await ann.send(type="step", frames=-1, ref=4)
        error = await ann.expect("error")
        assert error["code"] == "conflict" and "paused" in error["message"] and error["ref"] == 4
        await obi.send(type="step", frames=1)
        assert (await obi.expect("error"))["code"] == "forbidden"
        # The connection goes on.
        await ann.send(type="ping", id=1, t0=0)
        await ann.expect("pong")


async def test_a_stalled_viewer_holds_the_room_until_ready_or_the_timeout(
    embedded: Running,
) -> None:
    async with (
        join(embedded.base, "r1", "coach", "Ann") as ann,
        join(embedded.base, "r1", "observer", "Obi") as obi,
    ):
        await obi.send(type="buffering")  # still loading when it joined: holds nobody
        await obi.send(type="ready")
        await ann.send(type="play")
        for client in (ann, obi):
            assert (await client.expect("playback"))["playback"]["status"] == "playing"
        await obi.send(type="buffering", ref="b1")
        for client in (ann, obi):
            state = (await client.expect("playback"))["playback"]
            assert state["status"] == "waiting" and state["waiting_for"] == [obi.id]
            assert state["by"] == obi.id
        await obi.send(type="ready")
        for client in (ann, obi):
            state = (await client.expect("playback"))["playback"]
            assert state["status"] == "playing" and state["waiting_for"] == []

        # Stalled for good: the home's ticks end the wait after the timeout.
        await obi.send(type="buffering")
        waiting = (await ann.expect("playback"))["playback"]
        assert waiting["status"] == "waiting"
        timeout = PlaybackRules().wait_timeout
        resumed = (await ann.expect("playback", timeout=timeout + TIMEOUT))["playback"]
        assert resumed["status"] == "playing" and resumed["by"] is None
        assert resumed["at"] - waiting["at"] >= timeout


async def test_the_presenter_lock_over_the_socket(embedded: Running) -> None:
    async with join(embedded.base, "r1", "teacher", "Tess") as tess:
        async with join(embedded.base, "r1", "coach", "Ann") as ann:
            await ann.send(type="lock", locked=True)
            state = (await tess.expect("playback"))["playback"]
            assert state["presenter"] == ann.id
            await tess.send(type="play", ref="p")
            error = await tess.expect("error")
            assert error["code"] == "forbidden" and ann.id in error["message"]
            await ann.send(type="lock", locked="yes")
            assert (await ann.expect("error"))["code"] == "invalid_field"
        # The lock leaves with its presenter.
        state = (await tess.expect("playback"))["playback"]
        assert state["presenter"] is None
        await tess.send(type="play")
        assert (await tess.expect("playback"))["playback"]["status"] == "playing"


async def _never_reading_client(
    base: str, path: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert status.startswith(b"HTTP/1.1 101"), status
    return reader, writer  # and never read again


async def _create_room(data: Path, room_id: str) -> None:
    store = SqliteStore(data / "cocoach.sqlite3")
    await store.create_room(RoomRecord(id=room_id, title=room_id, created=0.0))
    await store.close()


async def _drain(client: object) -> list[dict[str, object]]:
    frames = []
    while True:
        try:
            frames.append(await client.recv(0.01))  # type: ignore[attr-defined]
        except TimeoutError:
            return frames


# ---- REST ---------------------------------------------------------------------------------


async def test_admin_room_api(embedded: Running) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=embedded.base) as http:
        assert (await http.post("/api/rooms", json={"title": "x"})).status_code == 401
        wrong = await http.post(
            "/api/rooms", json={"title": "x"}, headers={"Authorization": "Bearer no"}
        )
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
        created = await http.post(
            "/api/rooms", json={"title": "Wait time", "org": "north"}, headers=auth
        )
        assert created.status_code == 201
        room = created.json()
        assert room["title"] == "Wait time" and room["org"] == "north"
        got = await http.get(f"/api/rooms/{room['id']}", headers=auth)
        assert got.json() == room
        assert (await http.get(f"/api/rooms/{room['id']}")).status_code == 401
        missing = await http.get("/api/rooms/none", headers=auth)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "room_not_found"
        dup = await http.post("/api/rooms", json={"title": "t", "id": room["id"]}, headers=auth)
        assert dup.status_code == 409
        for body, words in [
            (b"{", "not valid JSON"),
            (b'{"title": 5}', "$.title"),
            (b'{"title": ""}', "title"),
            (b'{"title": "a", "id": "../x"}', "id must"),
            (b'{"title": "a", "colour": "red"}', "colour"),
        ]:
            bad = await http.post("/api/rooms", content=body, headers=auth)
            assert bad.status_code == 400 and words in bad.json()["error"]["message"], body
        huge = await http.post("/api/rooms", content=b"x" * 100_000, headers=auth)
        assert huge.status_code == 413
        listed = await http.get("/api/rooms", headers=auth)
        assert {r["id"] for r in listed.json()["rooms"]} >= {"r1", room["id"]}

    # The new room is joinable at once.
    async with join(embedded.base, room["id"]) as ann:
        assert ann.welcome["room"]["title"] == "Wait time"


async def test_health_and_readiness(embedded: Running) -> None:
    async with httpx.AsyncClient(base_url=embedded.base) as http:
        assert (await http.get("/healthz")).json()["status"] == "ok"
        ready = (await http.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["mode"] == "embedded"
