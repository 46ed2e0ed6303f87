"""WHEP with two real worker processes on one Redis, and on a Redis Cluster: a request that
lands on a worker that is not the room's home is answered by the home, and media flows from the
home's own sockets."""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.library.clip import PHONE_MP4, ClipSpec
from tests.clips import write_clip
from tests.media import accept_answer, offer_viewer
from tests.support import (
    ADMIN_KEY,
    TIMEOUT,
    RedisServer,
    WorkerProcess,
    join,
    redis_or_cluster,  # noqa: F401  (the `redis` fixture: one Redis, a cluster)
    start_worker,
    token,
)
from tests.test_multiworker import lease_holder

MEDIA_ENV = {
    "COCOACH_MEDIA_HOST_ADDRESSES": "127.0.0.1",
    "COCOACH_MEDIA_REMOTE_NETWORKS": "loopback",
}


@pytest.fixture
def workers(tmp_path: Path, redis: RedisServer) -> Iterator[list[WorkerProcess]]:
    library = tmp_path / "library"  # the directory every host shares
    env = {**MEDIA_ENV, "COCOACH_LIBRARY": str(library)}
    started = [start_worker(tmp_path / f"w{i}", redis.url, f"w{i}", **env) for i in (1, 2)]
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


def upload_and_wait(base: str, clip: Path) -> str:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(timeout=TIMEOUT) as http:
        response = http.post(
            f"{base}/api/videos?title=Lesson&consent=obtained",
            content=clip.read_bytes(),
            headers={**admin, "content-type": "video/mp4"},
        )
        assert response.status_code in (200, 201, 202), response.text
        video = response.json()["id"]
        deadline = time.monotonic() + 6 * TIMEOUT
        while time.monotonic() < deadline:
            record = http.get(f"{base}/api/videos/{video}", headers=admin).json()
            if record["status"] == "ready":
                return str(video)
            assert record["status"] != "failed", record
            time.sleep(0.2)
    raise AssertionError(f"video {video} was not ingested in time: {record}")


def udp_ports_of(pid: int) -> set[int]:
    """The UDP ports whose sockets process `pid` holds (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def test_a_viewer_on_another_worker_is_served_by_the_home(
    workers: list[WorkerProcess], redis: RedisServer, tmp_path: Path
) -> None:
    one, two = workers
    clip = write_clip(tmp_path / "phone.mp4", ClipSpec(seconds=4, width=320, height=180), PHONE_MP4)
    video = upload_and_wait(one.base, clip)
    room = f"room-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        created = await http.post(
            f"{one.base}/api/rooms",
            json={"id": room, "title": "Questioning", "video": video},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert created.status_code == 201, created.text

    async with join(one.base, room, "coach", "Cal") as coach:
        assert lease_holder(redis, room) == "w1"
        viewer, offer = await offer_viewer()
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                response = await http.post(
                    f"{two.base}/rooms/{room}/whep",  # not the home
                    content=offer,
                    headers={
                        "content-type": "application/sdp",
                        "authorization": f"Bearer {token(room, 'teacher', 'Tia')}",
                    },
                )
            assert response.status_code == 201, response.text
            ports = {
                int(p)
                for p in re.findall(r"a=candidate:\S+ 1 udp \d+ \S+ (\d+) typ", response.text)
            }
            assert ports and ports <= udp_ports_of(one.pid), "media is not at the home"
            assert not ports & udp_ports_of(two.pid)
            await accept_answer(viewer, response.text)
            await viewer.wait_for(lambda v: v.last == 0, what="the first frame, from the home")
            await coach.expect("playback")  # attached
            await coach.send(type="seek", position=2.0)
            await viewer.wait_for(lambda v: v.last == 60, what="the seek, through the home")

            # Leaving goes through the other worker too.
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                left = await http.delete(
                    two.base + response.headers["location"],
                    headers={"authorization": f"Bearer {token(room, 'teacher', 'Tia')}"},
                )
            assert left.status_code == 200, left.text
        finally:
            await viewer.close()

        # Consent withdrawn on the worker that is not the home: the home cuts its viewer off.
        viewer, offer = await offer_viewer()
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                response = await http.post(
                    f"{two.base}/rooms/{room}/whep",
                    content=offer,
                    headers={
                        "content-type": "application/sdp",
                        "authorization": f"Bearer {token(room, 'teacher', 'Tia')}",
                    },
                )
                assert response.status_code == 201, response.text
                await accept_answer(viewer, response.text)
                await viewer.wait_for(lambda v: v.last is not None, what="the lesson again")
                changed = await http.patch(
                    f"{two.base}/api/videos/{video}",
                    json={"consent": "not_obtained"},
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                )
                assert changed.status_code == 200, changed.text
            deadline = time.monotonic() + TIMEOUT
            while not viewer._tasks[0].done():  # the home ended the track (RTCP BYE)
                assert time.monotonic() < deadline, "the viewer was not cut off"
                await asyncio.sleep(0.05)
        finally:
            await viewer.close()
