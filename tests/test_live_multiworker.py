"""The live lesson across two real worker processes on one Redis: a publisher and a viewer on
the worker that is not the room's home are served by the home, and when the home dies the
recording up to then is kept and a returning publisher starts a numbered part."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest

from server.library.clip import read_frame_number
from tests.live_support import delete, start_publisher, start_viewer
from tests.support import (
    ADMIN_KEY,
    TIMEOUT,
    RedisServer,
    WorkerProcess,
    join,
    start_worker,
    token,
)
from tests.test_live import frames, live_status
from tests.test_multiworker import lease_holder
from tests.test_whep_multiworker import MEDIA_ENV, udp_ports_of
from tests.video_support import INGEST_TIMEOUT, http, wait_for


@pytest.fixture
def workers(tmp_path: Path, redis: RedisServer) -> Iterator[list[WorkerProcess]]:
    library = tmp_path / "library"  # the directory every host shares
    env = {
        **MEDIA_ENV,
        "COCOACH_LIBRARY": str(library),
        "COCOACH_LIVE_RESUME_SECONDS": "30",
        "COCOACH_INGEST_NICE": "0",
    }
    started = [start_worker(tmp_path / f"w{i}", redis.url, f"w{i}", **env) for i in (1, 2)]
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


async def create_room(base: str) -> str:
    room = f"live-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        created = await client.post(
            f"{base}/api/rooms",
            json={"id": room, "title": "Live from 7B"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
    assert created.status_code == 201, created.text
    return room


def numbers_in(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [n for f in container.decode(video=0) if (n := read_frame_number(f)) is not None]


async def test_live_across_workers_and_a_home_that_dies(
    workers: list[WorkerProcess], redis: RedisServer, tmp_path: Path
) -> None:
    one, two = workers
    room = await create_room(one.base)
    camera = token(room, "camera", "Room 7B")
    async with join(one.base, room, "coach", "Cal"), join(two.base, room, "teacher", "Tia") as tia:
        assert lease_holder(redis, room) == "w1"
        publisher, response = await start_publisher(two.base, room, camera)  # not the home
        assert response.status_code == 201, response.text
        ports = {int(p) for p in re.findall(r" udp \d+ \S+ (\d+) typ", response.text)}
        assert ports and ports <= udp_ports_of(one.pid), "the publisher is not at the home"
        first = (await live_status(tia, "live"))["live"]
        viewer, answer = await start_viewer(two.base, room, token(room, "coach", "Cal"))
        assert answer.status_code == 201, answer.text
        await viewer.until(lambda: len(frames(viewer)) > 30, "live video through the home")
        await viewer.close()
        while first["recording_started_at"] is None:
            first = (await live_status(tia, "live"))["live"]
        await asyncio.sleep(1.5)  # a second or more in the recording's clusters

        one.crash()  # the home dies mid-lesson
        await publisher.close()  # its peer connection died with it
        interrupted = (await live_status(tia, "interrupted", 3 * TIMEOUT))["live"]
        assert lease_holder(redis, room) == "w2"
        assert interrupted["recording"] == first["recording"] and interrupted["part"] == 1

        # What the dead home recorded is kept: ingested by the survivor, and it plays.
        async with http(two.base) as client:
            part_one = await wait_for(client, first["recording"], timeout=INGEST_TIMEOUT)
        assert part_one["status"] == "ready", part_one["error"]
        shown = numbers_in(tmp_path / "library" / part_one["renditions"][0]["file"])
        assert len(shown) > 30 and shown == sorted(shown)

        # The classroom comes back, to the new home: a numbered part.
        again, response = await start_publisher(two.base, room, camera)
        assert response.status_code == 201, response.text
        back = (await live_status(tia, "live"))["live"]
        assert back["part"] == 2 and back["recording"] != first["recording"]
        await asyncio.sleep(1.0)
        stopped = await delete(two.base, again.location, camera)
        assert stopped.status_code == 200, stopped.text
        ended = await live_status(tia, None)
        await again.close()
    assert ended["recording"] == back["recording"]
    async with http(two.base) as client:
        part_two = await wait_for(client, back["recording"], timeout=INGEST_TIMEOUT)
    assert part_two["status"] == "ready", part_two["error"]
    assert part_two["title"].endswith("(part 2)")
