"""The video library's REST and tus uploads against a real server: embedded, and on real Redis."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from server.library.clip import MOV, WEBM_VP8
from tests.support import (
    TIMEOUT,
    RedisServer,
    Running,
    serve_in_process,
    token,
)
from tests.test_cli import run_cli
from tests.video_support import (
    OFFSET_TYPE,
    TUS,
    check_rendition,
    clip,
    http,
    library_settings,
    metadata,
    removed,
    tus_create,
    tus_offset,
    tus_patch,
    upload,
    wait_for,
)

LIMIT = 2 * 1024 * 1024  # max_upload_bytes in these tests


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The clips these tests upload, made once for the module."""
    yield tmp_path_factory.mktemp("clips")


@pytest.fixture(params=["embedded", "redis"])
async def library(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    redis_url = None
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis")
        redis_url = server.url
    settings = library_settings(tmp_path, max_upload_bytes=LIMIT, redis=redis_url)
    async with serve_in_process(settings) as running:
        yield running


@pytest.fixture
async def embedded_library(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve_in_process(library_settings(tmp_path, max_upload_bytes=LIMIT)) as running:
        yield running


def videos_dir(running: Running) -> Path:
    return running.settings.data / "videos"


def leftovers(running: Running) -> list[Path]:
    root = videos_dir(running)
    return sorted(root.rglob("*")) if root.exists() else []


def coach(room: str = "r1", name: str = "Ann", sub: str | None = None) -> str:
    return token(room, "coach", name, sub=sub or f"user:{name.lower()}-{uuid.uuid4().hex[:6]}")


async def test_tus_upload_resumes_after_a_dropped_connection(library: Running, clips: Path) -> None:
    data = clip(clips, "lesson.mp4")
    chunk = len(data) // 4
    async with http(library.base, coach()) as client:
        options = await client.options("/api/videos")
        assert options.status_code == 204
        assert options.headers["tus-version"] == "1.0.0"
        assert "creation" in options.headers["tus-extension"].split(",")
        assert "termination" in options.headers["tus-extension"].split(",")
        assert options.headers["tus-max-size"] == str(LIMIT)

        url = await tus_create(client, len(data), filename="lesson.mp4", title="Wait time")
        assert url.startswith("/api/videos/v") and url.endswith("/upload")
        video_id = url.split("/")[3]
        answer = await tus_patch(client, url, 0, data[:chunk])
        assert answer.status_code == 204 and answer.headers["upload-offset"] == str(chunk)
        assert answer.headers["tus-resumable"] == "1.0.0"

        # The connection drops halfway through the second chunk.
        await _patch_and_drop(library.base, client, url, chunk, data[chunk : 2 * chunk])
        offset = await _offset_after_drop(client, url, chunk)
        assert chunk < offset < 2 * chunk, "the half that arrived is kept"
        stored = (videos_dir(library) / video_id / "upload").read_bytes()
        assert stored == data[:offset], "what arrived before the drop is kept, byte for byte"

        wrong = await tus_patch(client, url, offset + 1, data[offset + 1 :])
        assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "conflict"
        assert "HEAD" in wrong.json()["error"]["message"]
        assert wrong.headers["tus-resumable"] == "1.0.0"

        listed = (await client.get("/api/videos")).json()["videos"]
        assert [v["status"] for v in listed if v["id"] == video_id] == ["uploading"]

        answer = await tus_patch(client, url, offset, data[offset:])
        assert answer.status_code == 204 and answer.headers["upload-offset"] == str(len(data))
        video = await wait_for(client, video_id)
        assert video["status"] == "ready", video
        assert video["title"] == "Wait time" and video["filename"] == "lesson.mp4"
        assert video["duration"] == pytest.approx(3.0, abs=0.05)
        assert all(0.0 <= p <= 1.0 for p in video["seen"])
        assert [r["name"] for r in video["renditions"]] == ["360p"]  # a 360p source: no 720p
        file = videos_dir(library) / video["renditions"][0]["file"]
        assert check_rendition(file) == list(range(90))
        await removed(videos_dir(library) / video_id / "upload")


async def _patch_and_drop(
    base: str, client: httpx.AsyncClient, url: str, offset: int, body: bytes
) -> None:
    """Send a PATCH that promises `body` but only half of it arrives."""
    host, port = base.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    auth = client.headers["authorization"]
    head = (
        f"PATCH {url} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n"
        f"Content-Type: {OFFSET_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body[: len(body) // 2])
    await writer.drain()
    await asyncio.sleep(TIMEOUT / 25)  # let the server take in what was sent
    writer.transport.abort()  # no FIN handshake: the network went away


async def _offset_after_drop(client: httpx.AsyncClient, url: str, before: int) -> int:
    """HEAD until the server has written what it got before the drop (it learns of the drop
    a moment later); a resuming client does the same."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        offset = await tus_offset(client, url)
        if offset > before or loop.time() > deadline:
            return offset
        await asyncio.sleep(0.05)


async def test_one_shot_upload_and_delete(library: Running, clips: Path) -> None:
    data = clip(clips, "lesson.webm", WEBM_VP8)
    async with http(library.base, coach()) as client:
        answer = await client.post(
            "/api/videos?title=Plenary&filename=plenary.webm",
            content=data,
            headers={"Content-Type": "video/webm"},
        )
        assert answer.status_code == 201, answer.text
        video = answer.json()
        assert answer.headers["location"] == f"/api/videos/{video['id']}"
        assert video["status"] == "queued" and video["title"] == "Plenary"
        assert video["duration"] == pytest.approx(3.0, abs=0.05)  # probed before the answer
        assert video["source"]["video_codec"] == "vp8"
        assert video["upload_length"] == video["upload_offset"] == len(data)
        video = await wait_for(client, video["id"])
        assert video["status"] == "ready", video
        assert (videos_dir(library) / video["id"]).is_dir()

        deleted = await client.delete(f"/api/videos/{video['id']}")
        assert deleted.status_code == 204
        assert not (videos_dir(library) / video["id"]).exists()
        gone = await client.get(f"/api/videos/{video['id']}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


async def test_too_large_is_refused_and_leaves_nothing(library: Running) -> None:
    big = bytes(LIMIT + 1)
    async with http(library.base, coach()) as client:
        created = await client.post(
            "/api/videos",
            headers={**TUS, "Upload-Length": str(LIMIT + 1), "Upload-Metadata": metadata()},
        )
        assert created.status_code == 413, created.text
        assert created.json()["error"]["code"] == "too_large"
        assert str(LIMIT) in created.json()["error"]["message"]

        declared = await client.post(
            "/api/videos", content=big, headers={"Content-Type": "video/mp4"}
        )
        assert declared.status_code == 413 and "limit" in declared.json()["error"]["message"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: found while streaming
            for offset in range(0, len(big), 256 * 1024):
                yield big[offset : offset + 256 * 1024]

        streamed = await client.post(
            "/api/videos", content=chunks(), headers={"Content-Type": "video/mp4"}
        )
        assert streamed.status_code == 413, streamed.text

        # A tus PATCH past the length it declared.
        url = await tus_create(client, 1000, filename="x.mp4")
        past = await tus_patch(client, url, 0, bytes(1001))
        assert past.status_code == 413 and "Upload-Length" in past.json()["error"]["message"]
        assert await tus_offset(client, url) == 0
        terminated = await client.delete(url, headers=TUS)
        assert terminated.status_code == 204

        assert (await client.get("/api/videos")).json()["videos"] == []
    assert leftovers(library) == []


async def test_not_a_video_gets_a_clear_error(library: Running) -> None:
    text = b"These are my lesson notes, not a video.\n" * 100
    async with http(library.base, coach()) as client:
        answer = await client.post(
            "/api/videos?title=Notes", content=text, headers={"Content-Type": "video/mp4"}
        )
        assert answer.status_code == 415, answer.text
        error = answer.json()["error"]
        assert error["code"] == "not_a_video" and error["message"].startswith("not a video: ")
        assert leftovers(library) == []

        form = await client.post(
            "/api/videos", files={"file": ("a.mp4", text)}
        )  # curl -F: a multipart form, not the file
        assert form.status_code == 415 and "--data-binary" in form.json()["error"]["message"]

        video_id = await upload(client, text, "Notes")  # by tus: found out by the ingest
        video = await wait_for(client, video_id, done=("failed", "ready"))
        assert video["status"] == "failed", video
        assert video["error"].startswith("not a video: "), video["error"]
        assert list((videos_dir(library) / video_id).iterdir()) == [], "the upload is removed"


async def test_who_may_see_upload_and_delete(embedded_library: Running, clips: Path) -> None:
    base = embedded_library.base
    data = clip(clips, "lesson.mov", MOV)
    ann, bob = coach("r1", "Ann"), coach("r2", "Bob")
    async with http(base, None) as anonymous:
        missing = await anonymous.get("/api/videos")
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "token_missing"
        bad = await anonymous.get("/api/videos", headers={"Authorization": "Bearer nonsense"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "token_invalid"
        head = await anonymous.head("/api/videos/v1/upload", headers=TUS)
        assert head.status_code == 401
    for role in ("observer", "camera"):
        async with http(base, token("r1", role, "Olly")) as other:
            refused = await other.get("/api/videos")
            assert refused.status_code == 403, refused.text
            assert role in refused.json()["error"]["message"]
            posted = await other.post(
                "/api/videos", content=data, headers={"Content-Type": "video/quicktime"}
            )
            assert posted.status_code == 403
    async with http(base, ann) as client:
        ann_video = await upload(client, data, "Ann's lesson")
        await wait_for(client, ann_video)
    async with http(base, bob) as client:
        assert (await client.get("/api/videos")).json()["videos"] == []
        hidden = await client.get(f"/api/videos/{ann_video}")
        assert hidden.status_code == 404, "another user's video is not there for Bob"
        assert (await client.delete(f"/api/videos/{ann_video}")).status_code == 404
        assert (
            await client.head(f"/api/videos/{ann_video}/upload", headers=TUS)
        ).status_code == 404
        assert (
            await tus_patch(client, f"/api/videos/{ann_video}/upload", 0, b"x")
        ).status_code == 404
        bob_video = await upload(client, data[:1000], "Bob's")  # fails ingest; still his
    async with http(base) as admin:
        listed = {v["id"] for v in (await admin.get("/api/videos")).json()["videos"]}
        assert {ann_video, bob_video} <= listed
        # A room made for Ann's video: its coach Bob may now see it, not delete it.
        room = await admin.post(
            "/api/rooms", json={"id": "r2b", "title": "Shared", "video": ann_video}
        )
        assert room.status_code == 201 and room.json()["video"] == ann_video
    async with http(base, coach("r2b", "Bob", sub="user:bob-r2b")) as client:
        seen = await client.get(f"/api/videos/{ann_video}")
        assert seen.status_code == 200 and seen.json()["status"] == "ready"
        # Private by default: the room's video can be read, but a list shows only your own.
        assert (await client.get("/api/videos")).json()["videos"] == []
        refused = await client.delete(f"/api/videos/{ann_video}")
        assert refused.status_code == 403 and "uploader" in refused.json()["error"]["message"]
    async with http(base) as admin:
        assert (await admin.delete(f"/api/videos/{ann_video}")).status_code == 204
        assert (await admin.delete(f"/api/videos/{ann_video}")).status_code == 404


async def test_tus_protocol_details(embedded_library: Running) -> None:
    async with http(embedded_library.base, coach()) as client:
        old = await client.post(
            "/api/videos", headers={"Tus-Resumable": "0.2.2", "Upload-Length": "5"}
        )
        assert old.status_code == 412 and old.headers["tus-version"] == "1.0.0"
        no_length = await client.post("/api/videos", headers=TUS)
        assert no_length.status_code == 400 and "Upload-Length" in no_length.text
        bad_meta = await client.post(
            "/api/videos", headers={**TUS, "Upload-Length": "5", "Upload-Metadata": "title ***"}
        )
        assert bad_meta.status_code == 400 and "base64" in bad_meta.json()["error"]["message"]

        # creation-with-upload: the first bytes ride on the POST.
        created = await client.post(
            "/api/videos",
            content=b"01234",
            headers={
                **TUS,
                "Upload-Length": "10",
                "Upload-Metadata": metadata(filename="../../etc/lesson.mp4"),
                "Content-Type": OFFSET_TYPE,
            },
        )
        assert created.status_code == 201 and created.headers["upload-offset"] == "5"
        assert "upload-expires" in created.headers
        url = created.headers["location"]
        video = (await client.get(url.removesuffix("/upload"))).json()
        assert video["filename"] == "lesson.mp4" and video["title"] == "lesson"
        assert video["upload_url"] == url
        wrong_type = await client.patch(
            url, content=b"56789", headers={**TUS, "Upload-Offset": "5"}
        )
        assert wrong_type.status_code == 415
        head = await client.head(url, headers=TUS)
        assert head.headers["upload-offset"] == "5" and head.headers["upload-length"] == "10"
        assert head.headers["cache-control"] == "no-store"
        assert (await tus_patch(client, url, 5, b"56789")).status_code == 204
        again = await tus_patch(client, url, 5, b"56789")
        assert again.status_code == 409
        terminated = await client.delete(url, headers=TUS)
        assert terminated.status_code == 204
        assert (await client.head(url, headers=TUS)).status_code == 404
    assert leftovers(embedded_library) == []


async def test_room_video_must_exist(embedded_library: Running) -> None:
    async with http(embedded_library.base) as admin:
        answer = await admin.post("/api/rooms", json={"title": "T", "video": "vnothere"})
        assert answer.status_code == 404, answer.text
        assert "vnothere" in answer.json()["error"]["message"]


async def test_first_run_makes_a_demo_lesson_and_rooms_take_videos(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "COCOACH_DEMO_CLIP_SECONDS": "3",
        "COCOACH_INGEST_NICE": "0",  # see library_settings
    }
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", "0", "--data", str(data)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 3 * TIMEOUT
        while "cocoach listening on" not in log.read_text():
            assert time.monotonic() < deadline and server.poll() is None, log.read_text()
            await asyncio.sleep(0.05)
        base = log.read_text().split("cocoach listening on ")[1].split()[0]
        admin_key = (data / "admin_key").read_text().strip()
        async with http(base, admin_key) as admin:
            room = (await admin.get("/api/rooms/demo")).json()
            assert room["video"], room
            video = await wait_for(admin, room["video"])
            assert video["status"] == "ready" and video["duration"] == pytest.approx(3.0, 0.05)
            assert video["title"] == "Demo lesson clip" and video["owner"] == "admin"
        # The command line attaches a video to a new room, and refuses one that does not exist.
        made = run_cli(
            "room", "create", "--title", "T", "--video", room["video"], "--data", str(data)
        )
        assert made.returncode == 0, made.stderr
        refused = run_cli("room", "create", "--title", "T", "--video", "vnope", "--data", str(data))
        assert refused.returncode == 1 and "vnope" in refused.stderr
        async with http(base, admin_key) as admin:
            created = made.stdout.strip().splitlines()[-1]
            assert (await admin.get(f"/api/rooms/{created}")).json()["video"] == room["video"]
    finally:
        server.terminate()
        server.wait(TIMEOUT)
