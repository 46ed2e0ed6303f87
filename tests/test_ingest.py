"""Ingest: phone MP4, MOV and WebM become VP8 + Opus WebM renditions WebRTC can serve as they
are; jobs survive a stopped or crashed worker and stop when their video is deleted."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette

from server.errors import NotFound
from server.library.clip import MOV, WEBM_VP8, ClipSpec, draw
from server.library.library import VideoLibrary
from server.library.renditions import plan_for
from server.library.transcode import NotAVideo, encode, probe, target_size
from server.sync.redis_lease import RedisLease
from server.sync.redis_store import RedisStore
from server.sync.sqlite_store import SqliteStore
from server.sync.store import VideoRecord
from tests.support import TIMEOUT, RedisServer, Running, serve_in_process, token, until
from tests.video_support import (
    check_rendition,
    clip,
    http,
    library_settings,
    transcoders,
    upload,
    wait_for,
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("clips")


def library_of(running: Running) -> VideoLibrary:
    app = running.server.config.app
    assert isinstance(app, Starlette)
    videos: VideoLibrary = app.state.worker.videos
    return videos


# ---- the transcoder alone -----------------------------------------------------------------


def test_sizes_keep_the_aspect_never_upscale_and_stay_even() -> None:
    assert target_size(1920, 1080, 360) == (640, 360)
    assert target_size(1080, 1920, 360) == (360, 640)  # portrait: the short side is 360
    assert target_size(1920, 1080, 720) == (1280, 720)
    assert target_size(640, 360, 720) == (640, 360)  # never up
    assert target_size(853, 479, 360) == (642, 360)  # even
    assert [p.name for p in plan_for(1920, 1080)] == ["360p", "720p"]
    assert [p.name for p in plan_for(640, 360)] == ["360p"]
    assert [p.name for p in plan_for(360, 640)] == ["360p"]


def test_a_sideways_phone_video_without_sound_comes_out_upright_with_silence(
    tmp_path: Path,
) -> None:
    spec = ClipSpec(seconds=2, fps=60, width=640, height=360)
    source = tmp_path / "sideways.mp4"
    with av.open(str(source), "w") as out:
        stream = out.add_stream("libx264", rate=spec.fps)
        stream.width, stream.height = spec.height, spec.width  # stored turned a quarter left
        stream.pix_fmt = "yuv420p"
        stream.set_display_rotation(-90)  # ... and the player is told to turn it back
        for number in range(round(spec.seconds * spec.fps)):
            picture = np.ascontiguousarray(np.rot90(draw(spec, number)))
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = number, Fraction(1, spec.fps)
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    probed = probe(source)
    assert (probed.width, probed.height, probed.rotation, probed.audio_codec) == (
        640,
        360,
        90,
        None,
    )
    done = encode(
        source, tmp_path / "out.webm", short_side=360, video_bitrate=700_000, audio_bitrate=64_000
    )
    assert (done.width, done.height, done.fps, done.frames) == (640, 360, 30, 60)
    numbers = check_rendition(tmp_path / "out.webm")
    assert numbers == list(range(0, 120, 2)), "60 fps becomes 30: every other frame"
    with av.open(str(tmp_path / "out.webm")) as container:
        sound = [f.to_ndarray() for f in container.decode(audio=0)]
    assert sum(s.shape[-1] for s in sound) >= 48000 * 2 - 960
    assert max(float(np.abs(s).max()) for s in sound) < 0.01, "silence"


def test_probe_refuses_what_is_not_a_video(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50)
    with pytest.raises(NotAVideo, match=r"^not a video: cannot read it"):
        probe(text)
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "mono"
        for n in range(20):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 48000, n * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(NotAVideo, match="audio only"):
        probe(sound)
    picture = tmp_path / "still.png"
    with av.open(str(picture), "w", format="image2") as out:
        still = out.add_stream("png", rate=1)
        still.width, still.height, still.pix_fmt = 640, 360, "rgb24"
        for packet in still.encode(av.VideoFrame.from_ndarray(draw(ClipSpec(), 0), "rgb24")):
            out.mux(packet)
        for packet in still.encode(None):
            out.mux(packet)
    with pytest.raises(NotAVideo, match="still image"):
        probe(picture)


# ---- through the server -------------------------------------------------------------------


async def test_phone_mp4_mov_and_webm_all_become_ready(tmp_path: Path, clips: Path) -> None:
    inputs = {
        "phone.mp4": clip(clips, "phone.mp4", width=854, height=480),
        "lesson.mov": clip(clips, "lesson.mov", MOV),
        "lesson.webm": clip(clips, "lesson.webm", WEBM_VP8),
    }
    async with serve_in_process(library_settings(tmp_path)) as running:
        videos = library_of(running)
        async with http(running.base, token("r1", "teacher", "Tess")) as client:
            ids = {name: await upload(client, data, name) for name, data in inputs.items()}
            queued = await videos.get(ids["lesson.webm"])
            assert queued is not None and queued.status in ("queued", "ingesting")
            with pytest.raises(NotFound, match="not ready"):
                videos.file(queued)
            for name, video_id in ids.items():
                video = await wait_for(client, video_id)
                assert video["status"] == "ready" and video["error"] is None, video
                assert video["fps"] == 30 and video["duration"] == pytest.approx(3.0, abs=0.05)
                record = await videos.get(video_id)
                assert record is not None
                small = videos.file(record, "360p")
                assert small == tmp_path / "videos" / video_id / "360p.webm"
                assert check_rendition(small) == list(range(90)), name
                if name == "phone.mp4":
                    assert [(r.name, r.width, r.height) for r in record.renditions] == [
                        ("360p", 640, 360),
                        ("720p", 854, 480),  # not scaled up to 720
                    ]
                    assert record.source is not None and record.source.video_codec == "h264"
                    assert check_rendition(videos.file(record, "720p")) == list(range(90))
                else:
                    assert [r.name for r in record.renditions] == ["360p"]
                    assert videos.file(record, "720p") == small, "720p falls back to 360p"
                assert await videos.path(video_id, "720p") == videos.file(record, "720p")
            with pytest.raises(NotFound, match="does not exist"):
                await videos.path("vnothere")
            with pytest.raises(NotFound, match="no rendition '1080p'"):
                videos.file(record, "1080p")


async def test_a_stopped_or_crashed_worker_leaves_no_video_behind(
    tmp_path: Path, clips: Path
) -> None:
    data = clip(clips, "long.mp4", seconds=8)
    settings = library_settings(tmp_path)
    async with serve_in_process(settings) as running, http(running.base) as client:
        stopped = await upload(client, data, "stopped")
        await wait_for(client, stopped, done=("ingesting",), complete=False)
    # The server stopped mid-ingest and handed the job back. A crash hands nothing back: the
    # record says "ingesting" to nobody. Make one of each kind, and one that keeps crashing.
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    record = await store.get_video(stopped)
    assert record is not None and record.status == "queued" and record.attempts == 0
    crashed = VideoRecord(
        id="vcrashed", title="c", created=time.time(), owner="admin", status="ingesting", attempts=1
    )
    doomed = VideoRecord(
        id="vdoomed", title="d", created=time.time(), owner="admin", status="ingesting", attempts=3
    )
    for orphan in (crashed, doomed):
        (tmp_path / "videos" / orphan.id).mkdir()
        (tmp_path / "videos" / orphan.id / "upload").write_bytes(data)
        await store.put_video(orphan)
    await store.close()
    async with serve_in_process(settings) as running, http(running.base) as client:
        for video_id in (stopped, crashed.id):
            video = await wait_for(client, video_id)
            assert video["status"] == "ready", video
        video = await wait_for(client, doomed.id)
        assert video["status"] == "failed" and "interrupted 3 times" in video["error"]


async def test_a_dead_workers_ingest_is_taken_over_on_redis(
    tmp_path: Path, clips: Path, redis: RedisServer
) -> None:
    data = clip(clips, "lesson.mp4")
    client = aioredis.Redis.from_url(redis.url)
    store, lease = RedisStore(client), RedisLease(client)
    video_id = f"v{os.urandom(6).hex()}"
    (tmp_path / "videos" / video_id).mkdir(parents=True)
    (tmp_path / "videos" / video_id / "upload").write_bytes(data)
    await store.put_video(
        VideoRecord(id=video_id, title="t", created=time.time(), owner="admin", status="ingesting")
    )
    held = 1.0 * TIMEOUT / 5
    assert await lease.acquire(f"ingest:{video_id}", "w-dead", held)  # its worker just died
    settings = library_settings(tmp_path, redis=redis.url, ingest_sweep_seconds=0.2)
    try:
        async with serve_in_process(settings) as running, http(running.base) as http_client:
            started = time.monotonic()
            video = await wait_for(http_client, video_id)
            assert video["status"] == "ready", video
            assert time.monotonic() - started >= held * 0.8, "not while the lease was held"
    finally:
        await client.aclose()


async def test_deleting_a_video_mid_ingest_stops_its_transcoder(
    tmp_path: Path, clips: Path
) -> None:
    data = clip(clips, "long.mp4", seconds=8)
    async with (
        serve_in_process(library_settings(tmp_path)) as running,
        http(running.base) as client,
    ):
        video_id = await upload(client, data, "long")
        await wait_for(client, video_id, done=("ingesting",), complete=False)
        # Its steps (probe, then each rendition) are children one after another: wait for one
        # to be running, not a fixed moment that may fall between two on a loaded machine.
        await until(transcoders, "the transcoder to run in a child process")
        assert (await client.delete(f"/api/videos/{video_id}")).status_code == 204
        await until(lambda: not transcoders(), "the transcoder to be stopped")
        await asyncio.sleep(0.5)
        assert (await client.get(f"/api/videos/{video_id}")).status_code == 404
        assert not (tmp_path / "videos" / video_id).exists()
