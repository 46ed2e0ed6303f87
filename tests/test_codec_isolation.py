"""No native codec runs in a server process (docs/videos.md, "Codecs run in child processes").

libvpx crashed a server process in production-like use (a segfault making a hold frame), and
in embedded mode that takes every room down. Every encode and decode the server needs now runs
in a transcode child: these tests check the code for it, drive the old in-process path through
a real server hundreds of times, and kill a transcoding child with SIGSEGV mid-ingest.
"""

from __future__ import annotations

import ast
import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from server.sync.sqlite_store import SqliteStore
from server.sync.store import RoomRecord
from tests.support import TIMEOUT, join, serve_in_process
from tests.test_layers import graph
from tests.video_support import (
    INGEST_TIMEOUT,
    clip,
    http,
    library_settings,
    transcoders,
    upload,
    wait_for,
)

SERVER = Path(__file__).resolve().parent.parent / "server"
# The modules that open codecs (or run other native media code), run only in child processes:
# `python -m server.library.transcode`, `python -m server.media.mixing`.
CHILD_ONLY = {
    "server.library.transcode",
    "server.library.holdframe",
    "server.library.clip",
    "server.media.mixing",
    "server.media.vad",  # WebRTC's VAD is native code too
}


def test_only_the_transcode_child_opens_a_codec() -> None:
    for path in SERVER.rglob("*.py"):
        name = ".".join(path.relative_to(SERVER.parent).with_suffix("").parts)
        if name in CHILD_ONLY:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "CodecContext":
                pytest.fail(f"{name} opens a codec (CodecContext) in a server process")
    importers = {
        a: sorted(targets & CHILD_ONLY) for a, targets in graph().items() if targets & CHILD_ONLY
    }
    assert set(importers) <= CHILD_ONLY, importers  # children may share code; servers not


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


def sizes() -> list[tuple[int, int]]:
    """From 160x120 to 1920x1080, odd sides included: 200 sizes."""
    found: list[tuple[int, int]] = []
    width, height = 160, 120
    while len(found) < 200:
        found.append((width, height))
        width = 160 + (width - 160 + 89) % 1761  # steps that hit odd and even sides
        height = 120 + (height - 120 + 53) % 961
    return [*found, (1920, 1080), (1, 1), (161, 121)]


async def test_hold_frames_of_every_size_are_made_outside_the_server(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    await store.create_room(RoomRecord(id="r1", title="Lesson one", created=0.0))
    await store.close()
    async with serve_in_process(library_settings(tmp_path)) as running:
        holds = running.server.config.app.state.worker.videos.holds
        async with join(running.base, "r1") as coach:
            wanted = sizes()
            await holds.make(wanted)
            for width, height in wanted:
                frame = await holds.get(width, height)
                # A VP8 inter frame: bit 0 of the frame tag is 1 (RFC 6386 9.1).
                assert frame and frame[0] & 1 == 1, (width, height)
            # This process is the server: it is still here, and still serving the room.
            await coach.send(type="ping", id=1, t0=time.time())
            await coach.expect("pong", id=1)
        assert len(list((tmp_path / "videos" / "holds").glob("*.vp8"))) == len(set(wanted))


async def test_a_transcoder_killed_mid_ingest_is_retried_and_the_rooms_go_on(
    tmp_path: Path, clips: Path
) -> None:
    data = clip(clips, "long.mp4", seconds=8)
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    await store.create_room(RoomRecord(id="r1", title="Lesson one", created=0.0))
    await store.close()
    async with (
        serve_in_process(library_settings(tmp_path)) as running,
        http(running.base) as client,
        join(running.base, "r1") as coach,
    ):
        video_id = await upload(client, data, "long")
        await wait_for(client, video_id, done=("ingesting",), complete=False)
        deadline = time.monotonic() + INGEST_TIMEOUT
        while not (children := transcoders()):
            assert time.monotonic() < deadline, "no transcoder started"
            await asyncio.sleep(0.02)
        os.kill(children[0], signal.SIGSEGV)

        failed = await wait_for(client, video_id, done=("failed",), complete=False)
        assert "crashed (signal 11)" in failed["error"] and "trying again" in failed["error"]
        pings = 0
        deadline = time.monotonic() + INGEST_TIMEOUT
        while True:  # the room is served all along
            await coach.send(type="ping", id=pings, t0=time.time())
            await coach.expect("pong", id=pings, timeout=TIMEOUT)
            pings += 1
            video = (await client.get(f"/api/videos/{video_id}")).json()
            if video["status"] == "ready" and video["progress"] == 1.0:
                break
            assert video["status"] in ("failed", "ingesting", "ready"), video
            assert time.monotonic() < deadline, f"not ingested after the crash: {video}"
            await asyncio.sleep(0.2)
        assert video["error"] is None and pings > 1
