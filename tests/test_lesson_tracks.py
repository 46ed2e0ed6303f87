"""Lesson tracks paced by one playback clock, sent to real aiortc viewers over loopback.

The server side here is `Viewer` with its own tracks, without HTTP: the rules of what frame a
viewer shows are checked first at this level; tests/test_whep.py goes through the endpoints.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import msgspec
import pytest

from server.library.clip import WEBM_VP8, ClipSpec
from server.library.holds import HoldFrames
from server.media.clock import PlaybackClock
from server.media.ice import RemotePolicy
from server.media.pacing import display_position, due_at, needs_seek
from server.media.tracks import LessonVideoTrack
from server.media.viewer import Viewer, lesson_viewer
from server.messages import PlaybackInfo
from tests.clips import write_clip
from tests.media import viewer_with

FPS = 30
LOOPBACK = RemotePolicy.parse("loopback")


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lesson") / "lesson.webm"
    return write_clip(path, ClipSpec(seconds=6, fps=FPS, width=320, height=180), WEBM_VP8)


@pytest.fixture
async def hold(lesson: Path) -> bytes:
    """The lesson's hold frame, made as the server makes it: in a transcode child."""
    return await HoldFrames(lesson.parent).get(320, 180)


def paused(position: float, seq: int) -> PlaybackInfo:
    return PlaybackInfo(status="paused", position=position, at=time.time(), seq=seq)


def playing(position: float, seq: int, lead: float = 0.1, rate: float = 1.0) -> PlaybackInfo:
    return PlaybackInfo(
        status="playing", position=position, at=time.time() + lead, seq=seq, rate=rate
    )


class Served:
    def __init__(self, lesson: Path, hold: bytes, clock: PlaybackClock) -> None:
        self.lesson, self.hold, self.clock = lesson, hold, clock
        self.viewers: list[Viewer] = []

    async def answer(self, offer: str) -> str:
        viewer = lesson_viewer(
            user="u",
            name="U",
            path=self.lesson,
            hold=self.hold,
            clock=self.clock,
            kinds={"video", "audio"},
        )
        self.viewers.append(viewer)
        return await viewer.answer_offer(offer, LOOPBACK)

    async def close(self) -> None:
        for viewer in self.viewers:
            await viewer.close()


@pytest.fixture
async def served(lesson: Path, hold: bytes) -> AsyncIterator[Served]:
    served = Served(lesson, hold, PlaybackClock(paused(1.0, 1)))
    yield served
    await served.close()


# ---- the pure pacing rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "pts", "expected"),
    [
        (PlaybackInfo(status="paused", position=2.0, at=100.0), 1.9, float("-inf")),
        (PlaybackInfo(status="paused", position=2.0, at=100.0), 2.0, float("-inf")),
        (PlaybackInfo(status="paused", position=2.0, at=100.0), 2.1, None),
        (PlaybackInfo(status="waiting", position=2.0, at=100.0), 2.1, None),
        (PlaybackInfo(status="playing", position=2.0, at=100.0), 3.0, 101.0),
        (PlaybackInfo(status="playing", position=2.0, at=100.0, rate=2.0), 3.0, 100.5),
        # WebM keeps milliseconds: frame 31 (1.033 s) is shown at position 31/30.
        (PlaybackInfo(status="paused", position=31 / 30, at=100.0), 1.033, float("-inf")),
    ],
)
def test_due_at(state: PlaybackInfo, pts: float, expected: float | None) -> None:
    assert due_at(state, pts) == expected


def test_display_position_and_seeks() -> None:
    state = PlaybackInfo(status="playing", position=10.0, at=100.0, rate=0.5)
    assert display_position(state, 99.0) == 10.0  # a scheduled start holds the position
    assert display_position(state, 104.0) == 12.0
    assert needs_seek(state, 104.0, None)  # a new viewer starts from a keyframe
    assert needs_seek(state, 104.0, 12.5)  # ahead of the room: go back
    assert not needs_seek(state, 104.0, 11.5)  # a little behind: read on
    assert needs_seek(state, 104.0, 10.5)  # over a keyframe interval behind: jump


# ---- real peers ------------------------------------------------------------------------------


async def test_paused_viewers_show_the_same_frame(served: Served) -> None:
    async with viewer_with(served.answer) as a, viewer_with(served.answer) as b:
        await a.wait_for(lambda v: v.last == 30, what="frame 30 (1.0 s, paused)")
        await b.wait_for(lambda v: v.last == 30, what="frame 30 on the second viewer")
        # A paused room starts each viewer at the keyframe before the position, then bursts.
        assert a.numbers[0] == 30 and b.numbers[0] == 30  # 1.0 s is itself a keyframe
        served.clock.update(playing(1.0, 2))
        await a.wait_for(lambda v: (v.last or 0) >= 50, what="playback to move on")
        served.clock.update(paused(display_position(served.clock.state, time.time()), 3))
        last_a, last_b = await a.settle(), await b.settle()
        expected = int(served.clock.state.position * FPS + 1e-6)
        assert last_a == last_b == expected


async def test_seek_shows_the_keyframe_then_catches_up(served: Served) -> None:
    async with viewer_with(served.answer) as viewer:
        await viewer.wait_for(lambda v: v.last == 30, what="the paused frame")
        before = len(viewer.frames)
        served.clock.update(paused(2.5, 2))  # frame 75; keyframes are at 60 and 90
        await viewer.wait_for(lambda v: v.last == 75, what="the target frame")
        # The hold frame sent after frame 30 shows frame 30 again, once the next frame arrives.
        assert viewer.shown(before) == [30, *range(60, 76)]
        served.clock.update(paused(1.5, 3))  # back: keyframe 30, then up to 45
        await viewer.wait_for(lambda v: v.last == 45, what="the earlier target")
        pts = [f.pts for f in viewer.frames]
        assert pts == sorted(pts) and len(set(pts)) == len(pts), "RTP time went backwards"


async def test_playing_follows_the_clock_and_rate(served: Served) -> None:
    async with viewer_with(served.answer) as viewer:
        await viewer.wait_for(lambda v: v.last == 30, what="the paused frame")
        served.clock.update(playing(1.0, 2, lead=0.0, rate=2.0))
        start = time.monotonic()
        await viewer.wait_for(lambda v: (v.last or 0) >= 90, what="two seconds of video")
        elapsed = time.monotonic() - start
        # Two seconds of lesson at 2x take about one second: paced, not dumped at once.
        assert 0.7 < elapsed < 2.0, elapsed
        assert viewer.audio_packets == 0  # at 2x the lesson is silent (no re-encoding)


async def test_audio_flows_while_playing(served: Served) -> None:
    async with viewer_with(served.answer) as viewer:
        await viewer.wait_for(lambda v: v.last == 30, what="the paused frame")
        await viewer.settle(quiet=0.3)
        assert viewer.audio_packets == 0  # paused: silence
        served.clock.update(playing(1.0, 2, lead=0.0))
        await viewer.wait_for(lambda v: v.audio_packets > 20, what="audio")


def test_states_compare_by_value() -> None:
    # PlaybackClock.update skips an equal state: msgspec Structs compare by value.
    assert paused(1.0, 1) != msgspec.structs.replace(paused(1.0, 1), seq=2)


def test_hold_frames_change_nothing(lesson: Path, hold: bytes) -> None:
    """Decoding the lesson with hold frames inserted anywhere gives the same pictures, and
    each hold frame shows the picture before it again."""

    def pictures(packets: list[bytes]) -> list[bytes]:
        decoder: Any = av.CodecContext.create("libvpx", "r")
        return [
            hashlib.sha256(frame.to_ndarray(format="yuv420p").tobytes()).digest()
            for data in packets
            for frame in decoder.decode(av.Packet(data))
        ]

    with av.open(str(lesson)) as container:
        stream = container.streams.video[0]
        packets = [bytes(p) for p in container.demux(stream) if p.size]
        assert (stream.codec_context.width, stream.codec_context.height) == (320, 180)
    plain = pictures(packets)
    mixed: list[bytes] = []
    expected: list[bytes] = []
    for index, packet in enumerate(packets):
        mixed.append(packet)
        expected.append(plain[index])
        for _ in range(index % 3):  # none, one or two holds after each frame
            mixed.append(hold)
            expected.append(plain[index])
    assert pictures(mixed) == expected
    assert len(hold) < 100


async def test_seek_while_playing_bursts_to_the_target_without_stalling(served: Served) -> None:
    """A seek while playing: keyframe, burst to the target, then paced again; and the event
    loop stays free meanwhile (a packet at the target is part of the burst, never 'late')."""
    lags: list[float] = []

    async def watch_loop() -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - start - 0.01)

    async with viewer_with(served.answer) as viewer:
        await viewer.wait_for(lambda v: v.last == 30, what="the paused frame")
        served.clock.update(playing(1.0, 2, lead=0.0))
        await viewer.wait_for(lambda v: (v.last or 0) >= 40, what="playing")
        ticker = asyncio.create_task(watch_loop())
        try:
            before = len(viewer.frames)
            served.clock.update(playing(4.5, 3, lead=0.2))  # frame 135; keyframe at 120
            await viewer.wait_for(lambda v: 135 in v.numbers[before:], what="the seek target")
            seen = viewer.shown(before)
            start = seen.index(120)
            assert seen[start : start + 16] == list(range(120, 136))
            await viewer.wait_for(lambda v: (v.last or 0) >= 150, what="playing on after it")
        finally:
            ticker.cancel()
        assert max(lags) < 0.25, f"the event loop stalled for {max(lags):.3f} s"


async def test_picture_loss_sends_the_picture_again_from_its_keyframe(served: Served) -> None:
    """Without an encoder, a PLI is answered from the file: the keyframe before the position,
    then the frames up to it, even while the room stands still."""
    async with viewer_with(served.answer) as viewer:
        served.clock.update(paused(1.5, 2))  # frame 45; its keyframe is 30
        await viewer.wait_for(lambda v: v.last == 45, what="the paused frame")
        before = len(viewer.frames)
        video = next(t for t in served.viewers[0].tracks if t.kind == "video")
        assert isinstance(video, LessonVideoTrack)
        video.request_keyframe()
        await viewer.wait_for(lambda v: 30 in v.numbers[before:] and v.last == 45, what="resent")
        assert viewer.shown(before)[-16:] == list(range(30, 46))
