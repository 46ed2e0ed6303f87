"""A room's home built from a fake worker context (tests/fakes.py): no worker, no network.

What the home does with intents is the room's rules (tests/test_rooms_pure.py); what is tested
here is the shell around them: it writes ahead, delivers what the rules say to this worker's
connections, declares silent workers' members gone, and turns a finished recording into the
room's video through what it was handed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import pytest_asyncio

from server.media.room_media import Lesson
from server.rooms.member import Member
from server.rooms.roles import Role, permissions_for
from server.session.home import RoomHome
from server.sync.store import RoomRecord
from server.worker_wire import Deliver, ForwardJoin
from tests.fakes import FakeContext, FakeMediaHost, FakeRecordings
from tests.support import TIMEOUT, make_settings


def member(mid: str, worker: str = "w1", role: Role = Role.COACH) -> Member:
    return Member(
        id=mid,
        user=f"user-{mid}",
        name=mid.upper(),
        role=role,
        worker=worker,
        permissions=permissions_for(role),
    )


def frame_type(envelope: Deliver) -> str:
    kind: str = msgspec.msgpack.decode(envelope.frame)["type"]
    return kind


class Home:
    def __init__(self, tmp: Path) -> None:
        settings = make_settings(tmp)
        record = RoomRecord(id="r1", title="Year 9", created=time.time())
        self.context = FakeContext(settings, {"r1": record})
        self.host = FakeMediaHost(settings, FakeRecordings(tmp))
        self.videos: list[tuple[str, str]] = []

        async def find_lesson(room: str, rendition: str) -> Lesson:
            raise AssertionError("no viewer in these tests")

        async def hold_frame(width: int, height: int) -> bytes:
            raise AssertionError("no viewer in these tests")

        async def set_video(room: str, video: str) -> None:
            self.videos.append((room, video))

        self.home = RoomHome(
            self.context,
            "r1",
            "Year 9",
            media_host=self.host,
            find_lesson=find_lesson,
            hold_frame=hold_frame,
            set_video=set_video,
        )

    async def until(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.01)

    def sent(self, kind: str, to: str | None = None) -> list[Deliver]:
        return [d for d in self.context.delivered if frame_type(d) == kind and d.to == to]


@pytest_asyncio.fixture
async def home(tmp_path: Path) -> AsyncIterator[Home]:
    made = Home(tmp_path)
    since = asyncio.get_running_loop().time()
    token = await made.context.lease.take("r1", "w1", made.context.settings.lease_ttl)
    task = asyncio.create_task(made.home.run(token, since))
    await made.until(lambda: made.home.room is not None, "the room to load")
    try:
        yield made
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await made.context.close()
        await made.host.close()


async def test_a_join_is_saved_before_anyone_is_told(home: Home) -> None:
    home.home.submit(ForwardJoin(member("m1")))
    await home.until(lambda: home.sent("welcome", to="m1") != [], "the welcome")
    welcome = home.sent("welcome", to="m1")[0]
    assert welcome.welcome and welcome.origin == "w1"
    # Write ahead: the state that welcome describes was persisted first.
    assert home.context.log.index("persist") < home.context.log.index("deliver")
    assert home.context.fake_store.states["r1"]


async def test_members_of_a_silent_worker_are_declared_gone(home: Home) -> None:
    home.context.alive_workers.add("w2")
    home.home.submit(ForwardJoin(member("m1")))
    home.home.submit(ForwardJoin(member("m2", worker="w2")))
    await home.until(lambda: home.home.room is not None and len(home.home.room.members) == 2, "")

    home.home.check_workers(time.monotonic())  # w2 still heard: nothing happens
    assert len(home.home.room.members) == 2

    home.context.alive_workers.discard("w2")
    home.home.check_workers(time.monotonic())
    await home.until(lambda: set(home.home.room.members) == {"m1"}, "m2 to be gone")
    assert home.sent("member_left")  # told to everyone still here
    assert "worker-lost r1" in home.context.names


async def test_a_finished_recording_becomes_the_rooms_video(home: Home) -> None:
    home.home.media.live._recording_done("v0000000000b2")
    await home.context.settle()
    assert home.videos == [("r1", "v0000000000b2")]


async def test_an_idle_home_says_since_when(home: Home) -> None:
    now = time.monotonic()
    home.home.check_workers(now)
    assert home.home.idle_since == now  # no members: the worker may give the room up
    home.home.submit(ForwardJoin(member("m1")))
    await home.until(lambda: bool(home.home.room and home.home.room.members), "the join")
    home.home.check_workers(now + 1)
    assert home.home.idle_since is None
