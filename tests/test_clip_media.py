"""A clip's media (docs/groups.md, "Clips"): cut once from its video's largest rendition by the
ingest's child, re-encoded so that it starts on the exact frame of `start` with a keyframe every
second, and served so that nothing outside the range can be seen. Every clip is generated here;
none is committed."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import av
import msgspec
import numpy as np
import pytest
from starlette.applications import Starlette

from server.errors import InvalidField
from server.library.clip import PHONE_MP4, WEBM_VP8, ClipSpec, Encoding
from server.library.library import VideoLibrary
from server.library.transcode import BadCut, encode, main
from server.sync.sqlite_store import SqliteStore
from server.sync.store import VideoRecord
from tests.clips import write_clip
from tests.support import TIMEOUT, Running, join, serve_in_process
from tests.test_whep import MEDIA, ready_video, watch
from tests.video_support import (
    INGEST_TIMEOUT,
    check_rendition,
    clip,
    http,
    library_settings,
    removed,
    upload,
    wait_for,
)

FPS = 30
START, END = 1.37, 3.0  # frame 41.1 to frame 90: neither on a keyframe of the source


def library_of(running: Running) -> VideoLibrary:
    app = running.server.config.app
    assert isinstance(app, Starlette)
    videos: VideoLibrary = app.state.worker.videos
    return videos


def check_cut(numbers: list[int], start: float = START, end: float = END) -> None:
    """The frames of a cut: consecutive, every one within the range, the first the frame at
    `start` (within one frame)."""
    assert numbers, "no frames"
    assert all(start * FPS - 1 < n < end * FPS for n in numbers), numbers
    assert abs(numbers[0] - start * FPS) <= 1, f"first frame {numbers[0]}, start {start * FPS}"
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
    assert len(numbers) == pytest.approx((end - start) * FPS, abs=1)


def beeps(path: Path) -> list[float]:
    """When the test clip's tone beeps (an octave up for 80 ms on each of its whole seconds),
    in the file's time: where its sound sits against its pictures."""
    with av.open(str(path)) as container:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    window = 480  # 10 ms
    starts: list[float] = []
    high = False
    for index in range(0, len(pcm) - window, window):
        crossings = np.count_nonzero(np.diff(np.signbit(pcm[index : index + window])))
        now = bool(crossings / 2 / 0.01 > 660)  # between the 440 Hz tone and the 880 Hz beep
        if now and not high:
            starts.append(index / 48000)
        high = now
    return starts


async def ready(videos: VideoLibrary, video_id: str) -> VideoRecord:
    """Wait (bounded) until the video is ready with every rendition made, or failed."""
    deadline = time.monotonic() + INGEST_TIMEOUT
    while True:
        record = await videos.get(video_id)
        assert record is not None, f"video {video_id} is gone"
        if record.status == "failed" or (record.status == "ready" and record.progress == 1.0):
            return record
        assert time.monotonic() < deadline, f"video still {record.status}: {record}"
        await asyncio.sleep(0.1)


# ---- the transcoder alone -----------------------------------------------------------------


@pytest.mark.parametrize("encoding", [WEBM_VP8, PHONE_MP4], ids=["rendition", "phone"])
def test_a_cut_starts_on_the_frame_of_start_whatever_the_keyframes(
    tmp_path: Path, encoding: Encoding
) -> None:
    # A source with a keyframe every second (as a rendition is): 1.37 s is not on one.
    source = write_clip(
        tmp_path / f"source.{encoding.container}",
        ClipSpec(seconds=5, fps=FPS, width=320, height=180),
        encoding,
    )
    out = tmp_path / "cut.webm"
    done = encode(
        source,
        out,
        short_side=360,
        video_bitrate=700_000,
        audio_bitrate=64_000,
        start=START,
        end=END,
    )
    assert (done.width, done.height, done.fps) == (320, 180, FPS)
    # VP8 + Opus, its first frame a keyframe and one on every second after (check_rendition).
    numbers = check_rendition(out)
    check_cut(numbers)
    assert numbers[0] == 41 and numbers[-1] == 89
    assert done.frames == len(numbers) and done.duration == pytest.approx(END - START, abs=0.04)
    # The sound is cut with the picture: as long, and on its clock (the beep of the source's
    # second 2 sounds 2 - 41/30 s into the cut; the one of second 3 is past its end).
    with av.open(str(out)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    assert samples / 48000 == pytest.approx(done.duration, abs=0.03)
    heard = beeps(out)
    assert heard == [pytest.approx(2 - 41 / FPS, abs=0.02)], heard


def test_a_cut_to_the_end_and_a_cut_past_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_clip(
        tmp_path / "source.webm", ClipSpec(seconds=3, fps=FPS, width=320, height=180), WEBM_VP8
    )
    out = tmp_path / "tail.webm"
    encode(source, out, short_side=360, video_bitrate=700_000, audio_bitrate=64_000, start=2.0)
    assert check_rendition(out) == list(range(60, 90))
    with pytest.raises(BadCut, match="past the end"):
        encode(source, out, short_side=360, video_bitrate=700_000, audio_bitrate=64_000, start=5)
    with pytest.raises(BadCut, match="ends after it starts"):
        encode(
            source,
            out,
            short_side=360,
            video_bitrate=700_000,
            audio_bitrate=64_000,
            start=2,
            end=1,
        )
    # The child says so (not a crash: the ingest does not run it again).
    argv = ["encode", str(source), str(tmp_path / "x.webm"), "--short-side", "360"]
    code = main([*argv, "--video-bitrate", "700000", "--start", "7", "--end", "8"])
    assert code == 1
    assert capsys.readouterr().out.startswith("error: the cut starts at 7.0 s, past the end")
    assert not (tmp_path / "x.webm").exists() and not (tmp_path / "x.webm.part").exists()


# ---- through the server -------------------------------------------------------------------


async def test_a_clip_is_cut_once_from_the_largest_rendition(tmp_path: Path) -> None:
    data = clip(tmp_path, "lesson.mp4", seconds=3.5, width=854, height=480)
    async with serve_in_process(library_settings(tmp_path)) as running:
        videos = library_of(running)
        async with http(running.base) as client:
            lesson = await upload(client, data, "lesson")
            assert (await wait_for(client, lesson))["status"] == "ready"
        parent = await videos.get(lesson)
        assert parent is not None
        assert [r.name for r in parent.renditions] == ["360p", "720p"], parent.error
        folder = tmp_path / "videos" / lesson
        await removed(folder / "upload")
        files = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
        assert sorted(files) == ["360p.webm", "720p.webm"]

        made = await videos.create_clip(parent, START, END, "Wait time")
        assert (made.status, made.room, made.duration) == ("queued", None, None)
        assert (made.clip_of, made.clip_start, made.clip_end) == (lesson, START, END)
        assert (made.owner, made.org, made.consent, made.retention_days) == (
            parent.owner,
            parent.org,
            parent.consent,
            parent.retention_days,
        )
        assert made.id != lesson and made.title == "Wait time"
        record = await ready(videos, made.id)
        assert record.status == "ready" and record.error is None, record
        assert record.duration == pytest.approx(END - START, abs=1.5 / FPS)
        # Cut from the parent's 720p (854x480): a 360p and a 720p of that size, never larger.
        assert [(r.name, r.width, r.height) for r in record.renditions] == [
            ("360p", 640, 360),
            ("720p", 854, 480),
        ]
        for rendition in record.renditions:
            check_cut(check_rendition(tmp_path / "videos" / rendition.file))
            assert rendition.duration == pytest.approx(END - START, abs=1.5 / FPS)
        # Nothing of the parent was ingested again, written or removed.
        assert await videos.get(lesson) == parent
        assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == files
        await removed(tmp_path / "videos" / made.id / "upload")

        # A clip of a clip is refused; so is a range that is not one.
        with pytest.raises(InvalidField, match="is a clip"):
            await videos.create_clip(record, 0.0, 1.0, "Again")
        for start, end in ((1.0, 1.0), (-1.0, 1.0), (0.0, math.nan)):
            with pytest.raises(InvalidField):
                await videos.create_clip(parent, start, end, "Bad")

        # A clip whose video is gone, or has nothing to cut from, or a cut past its end fails
        # and says why.
        gone = await videos.create_clip(
            msgspec.structs.replace(parent, id="vgone00000000"), 0.0, 1.0, "Gone"
        )
        empty = VideoRecord(id="vempty0000000", title="e", created=0.0, owner="admin")
        await videos.store.put_video(msgspec.structs.replace(empty, status="failed"))
        bare = await videos.create_clip(empty, 0.0, 1.0, "Bare")
        late = await videos.create_clip(parent, 10.0, 12.0, "Late")
        for video_id, why in (
            (gone.id, "(vgone00000000) no longer exists"),
            (bare.id, "(vempty0000000) has no rendition to cut from"),
            (late.id, "past the end"),
        ):
            failed = await ready(videos, video_id)
            assert failed.status == "failed" and why in (failed.error or ""), failed
        assert await videos.get(lesson) == parent
        assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == files


async def test_a_clips_viewers_see_nothing_outside_its_range(tmp_path: Path) -> None:
    """The issue's media test: a room showing the clip, a real WHEP viewer, and seeks."""
    source = write_clip(
        tmp_path / "lesson.webm", ClipSpec(seconds=6, fps=FPS, width=320, height=180), WEBM_VP8
    )
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    lesson = ready_video(tmp_path, "vlesson", source)
    await store.put_video(lesson)
    await store.close()
    async with serve_in_process(library_settings(tmp_path, **MEDIA)) as running:
        videos = library_of(running)
        made = await videos.create_clip(lesson, START, END, "Wait time")
        record = await ready(videos, made.id)
        assert record.status == "ready", record
        async with http(running.base) as client:
            answer = await client.post(
                "/api/rooms", json={"title": "A clip", "id": "rclip", "video": made.id}
            )
            assert answer.status_code == 201, answer.text
        async with join(running.base, "rclip", "coach", "Cal") as coach:
            watching = await watch(running.base, room="rclip")
            viewer = watching.viewer
            try:
                state = await coach.expect("playback")  # the clip attached, paused at 0
                assert state["playback"]["video"] == made.id
                await viewer.wait_for(lambda v: v.last is not None, what="a first frame")
                first = viewer.numbers[0]
                assert first is not None and abs(first - START * FPS) <= 1, viewer.numbers[:5]

                await coach.send(type="play")  # to the end of the clip, and no further
                await coach.expect("playback")
                await viewer.wait_for(
                    lambda v: v.last == 89, timeout=TIMEOUT + END - START, what="the last frame"
                )
                await coach.send(type="pause")
                assert (await coach.expect("playback"))["playback"]["status"] == "paused"
                await coach.send(type="seek", position=1000.0)  # far outside the clip
                refused = await coach.expect("error")
                assert "past the end" in refused["message"], refused
                await coach.send(type="seek", position=0.5)  # frame 15 of the clip
                await coach.expect("playback")
                await viewer.wait_for(lambda v: v.last == 56, what="the seek target")
                await coach.send(type="step", frames=300)  # stepping stops at its end too
                await coach.expect("playback")
                await viewer.wait_for(lambda v: v.last == 89, what="the end after a step")
                await coach.send(type="seek", position=1000.0)
                await coach.expect("error")
                assert await viewer.settle() == 89
                numbers = viewer.numbers
                assert None not in numbers, numbers
                assert all(START * FPS - 1 < (n or 0) < END * FPS for n in numbers), numbers
                assert viewer.audio_packets > 0
            finally:
                await viewer.close()
