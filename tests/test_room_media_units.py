"""A room's media built from fakes of its host (tests/fakes.py): no worker, no HTTP, no broker.

The viewers here are real aiortc peers on loopback reading a real lesson file; what the host
provides (spawning, audit, recordings, the process's viewer count) is faked and inspected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from server.errors import MediaFull, NotFound, NotLive
from server.library.clip import WEBM_VP8, ClipSpec
from server.library.holds import HoldFrames
from server.media.live import LiveRoom
from server.media.room_media import Lesson, RoomMedia
from server.messages import LiveInfo, TalkbackInfo
from tests.clips import write_clip
from tests.fakes import FakeMediaHost, FakeRecordings
from tests.media import accept_answer, offer_viewer
from tests.support import TIMEOUT, make_settings

VIDEO = "v0000000000a1"


@pytest.fixture(scope="module")
def lesson_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lesson") / "360p.webm"
    return write_clip(path, ClipSpec(seconds=2, fps=30, width=320, height=180), WEBM_VP8)


class Room:
    """A RoomMedia and what it told its room: attached lessons, live and talk-back reports."""

    def __init__(self, host: FakeMediaHost, lesson: Lesson, holds: HoldFrames) -> None:
        self.host = host
        self.attached: list[Lesson] = []
        self.live: list[tuple[LiveInfo | None, str | None, str | None]] = []
        self.talkback: list[TalkbackInfo | None] = []
        self.done: list[str] = []

        async def find_lesson(room: str, rendition: str) -> Lesson:
            return lesson

        self.media = RoomMedia(
            host,
            "r1",
            find_lesson=find_lesson,
            hold_frame=holds.get,
            attach=self.attached.append,
            report_live=lambda *report: self.live.append(report),
            report_talkback=self.talkback.append,
            recording_done=self.done.append,
        )


@pytest_asyncio.fixture
async def room(tmp_path: Path, lesson_file: Path) -> AsyncIterator[Room]:
    settings = make_settings(tmp_path, media_remote_networks="loopback", live_resume_seconds=0.3)
    host = FakeMediaHost(settings, FakeRecordings(tmp_path))
    lesson = Lesson(VIDEO, lesson_file, duration=2.0, fps=30.0, size=(320, 180))
    made = Room(host, lesson, HoldFrames(tmp_path))
    try:
        yield made
    finally:
        await made.media.close()
        await host.close()


@pytest_asyncio.fixture
async def offer() -> AsyncIterator[str]:
    viewer, sdp = await offer_viewer()
    yield sdp
    await viewer.close()


async def test_an_unknown_source_is_refused(room: Room, offer: str) -> None:
    with pytest.raises(NotFound, match="no source 'nope'"):
        await room.media.watch(user="u1", name="Cora", offer=offer, rendition="360p", source="nope")
    assert room.media.viewers == {}
    assert room.host.fake_audit.events == []


async def test_a_full_host_refuses_another_viewer(room: Room, offer: str) -> None:
    room.host.viewers = room.host.settings.media_max_viewers
    with pytest.raises(MediaFull):
        await room.media.watch(user="u1", name="Cora", offer=offer, rendition="360p")
    assert room.attached == []


async def test_the_live_source_needs_a_live_lesson(room: Room, offer: str) -> None:
    with pytest.raises(NotLive):
        await room.media.watch(user="u1", name="Cora", offer=offer, rendition="360p", source="live")


async def test_a_viewer_is_audited_and_cut_off_when_its_video_is_withdrawn(room: Room) -> None:
    viewer, offer = await offer_viewer()
    try:
        session, answer = await room.media.watch(
            user="u1", name="Cora", offer=offer, rendition="360p"
        )
        await accept_answer(viewer, answer)
        assert room.media.busy and set(room.media.viewers) == {session}
        assert [lesson.video for lesson in room.attached] == [VIDEO]  # the room's rules hear
        watch = room.host.fake_audit.events[0]
        assert (watch.action, watch.video, watch.actor.sub) == ("video.watch", VIDEO, "u1")

        await room.media.withdraw("v0000000000ff", "another video")  # not this one
        assert set(room.media.viewers) == {session}
        await room.media.withdraw(VIDEO, "consent was withdrawn")
        assert room.media.viewers == {} and not room.media.busy
        unwatch = room.host.fake_audit.events[-1]
        assert unwatch.action == "video.unwatch"
        assert unwatch.detail["reason"] == "consent was withdrawn"
    finally:
        await viewer.close()


async def test_leaving_someone_elses_session_is_refused(room: Room) -> None:
    viewer, offer = await offer_viewer()
    try:
        session, _ = await room.media.watch(user="u1", name="Cora", offer=offer, rendition="360p")
        with pytest.raises(Exception, match="belongs to someone else"):
            await room.media.leave(session, "u2")
        await room.media.leave(session, "u1")
        assert room.media.viewers == {}
    finally:
        await viewer.close()


async def test_a_new_home_keeps_the_old_recording_and_ends_the_lesson_if_nobody_returns(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, live_resume_seconds=0.2)
    recordings = FakeRecordings(tmp_path)
    host = FakeMediaHost(settings, recordings)
    reports: list[tuple[LiveInfo | None, str | None, str | None]] = []
    live = LiveRoom(
        host,
        "r1",
        report_live=lambda *report: reports.append(report),
        report_talkback=lambda info: None,
        recording_done=lambda video: None,
    )
    before = LiveInfo(
        status="live", publisher="cam", name="Room 7B", since=time.time(), recording="v1"
    )
    try:
        await live.adopt(before)
        assert recordings.finished == ["v1"]  # the old home's part goes to the ingest
        assert live.on and reports[0][0] is not None and reports[0][0].status == "interrupted"

        deadline = time.monotonic() + TIMEOUT
        while live.on and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await host.settle()
        assert not live.on
        assert reports[-1] == (None, "the publisher did not come back", None)
        assert host.fake_audit.actions() == ["live.end"]
        assert host.fake_audit.events[0].actor.sub == "cam"
    finally:
        await live.close()
        await host.close()


async def test_a_room_that_was_not_live_adopts_nothing(tmp_path: Path) -> None:
    host = FakeMediaHost(make_settings(tmp_path), FakeRecordings(tmp_path))
    live = LiveRoom(
        host,
        "r1",
        report_live=lambda *report: pytest.fail("nothing to report"),
        report_talkback=lambda info: None,
        recording_done=lambda video: None,
    )
    await live.adopt(None)
    assert not live.on and host.names == []
    await live.close()
