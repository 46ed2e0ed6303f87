"""Helpers for the video library's tests: clips made on the spot, tus requests, waiting for an
ingest. No media file is ever committed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx

from server.library.clip import PHONE_MP4, ClipSpec, Encoding, read_frame_number
from server.settings import Settings
from tests.clips import write_clip
from tests.support import ADMIN_KEY, TIMEOUT, make_settings, until

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_TYPE = "application/offset+octet-stream"
INGEST_TIMEOUT = 12 * TIMEOUT  # a transcode shares two cores with everything else running


def library_settings(data: Path, **overrides: Any) -> Settings:
    """The tests' settings, with the transcoder at normal priority: at the server's default
    (nice 10) whatever else runs on a shared test machine starves it and the tests time out."""
    return make_settings(data, **{"ingest_nice": 0, **overrides})


def clip(
    directory: Path,
    name: str,
    encoding: Encoding = PHONE_MP4,
    *,
    seconds: float = 3.0,
    width: int = 640,
    height: int = 360,
) -> bytes:
    path = directory / name
    if not path.exists():
        write_clip(path, ClipSpec(seconds=seconds, width=width, height=height), encoding)
    return path.read_bytes()


def bearer(key: str = ADMIN_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextlib.asynccontextmanager
async def http(base: str, key: str | None = ADMIN_KEY) -> AsyncIterator[httpx.AsyncClient]:
    headers = bearer(key) if key else {}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=TIMEOUT) as client:
        yield client


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def tus_create(client: httpx.AsyncClient, length: int, **meta: str) -> str:
    """The upload URL of a new tus upload."""
    answer = await client.post(
        "/api/videos",
        headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": metadata(**meta)},
    )
    assert answer.status_code == 201, answer.text
    return answer.headers["location"]


async def tus_patch(
    client: httpx.AsyncClient, url: str, offset: int, body: bytes
) -> httpx.Response:
    return await client.patch(
        url,
        content=body,
        headers={**TUS, "Upload-Offset": str(offset), "Content-Type": OFFSET_TYPE},
    )


async def tus_offset(client: httpx.AsyncClient, url: str) -> int:
    answer = await client.head(url, headers=TUS)
    assert answer.status_code == 200, answer.headers
    return int(answer.headers["upload-offset"])


async def upload(client: httpx.AsyncClient, data: bytes, title: str, chunk: int = 64 * 1024) -> str:
    """A whole tus upload in chunks; the video's id."""
    url = await tus_create(client, len(data), filename=f"{title}.bin", title=title)
    for offset in range(0, len(data), chunk):
        answer = await tus_patch(client, url, offset, data[offset : offset + chunk])
        assert answer.status_code == 204, answer.text
    return url.split("/")[3]


async def removed(path: Path, what: str = "the upload") -> None:
    """Wait (bounded) until `path` is gone: the ingest removes a video's upload just after
    it saves the record that says ready, so a reader of that record may still see it."""
    await until(lambda: not path.exists(), f"{what} to be removed: {path}")


async def wait_for(
    client: httpx.AsyncClient,
    video_id: str,
    *,
    done: tuple[str, ...] = ("failed",),
    complete: bool = True,
    timeout: float = INGEST_TIMEOUT,
) -> dict[str, Any]:
    """Poll the video until its status is in `done` or (with `complete`) it is ready with every
    rendition made; the record, and every progress value seen on the way in `seen`."""
    deadline = time.monotonic() + timeout
    seen: list[float] = []
    while True:
        answer = await client.get(f"/api/videos/{video_id}")
        assert answer.status_code == 200, answer.text
        video: dict[str, Any] = answer.json()
        seen.append(video["progress"])
        if video["status"] in done or (
            complete and video["status"] == "ready" and video["progress"] == 1.0
        ):
            video["seen"] = seen
            return video
        assert time.monotonic() < deadline, f"video still {video['status']}: {video}"
        await asyncio.sleep(0.1)


def check_rendition(path: Path, fps: int = 30) -> list[int]:
    """Assert the file is what WebRTC serving needs: VP8 + Opus, a keyframe on every second and
    no other; the frame numbers drawn into its pictures."""
    with av.open(str(path)) as container:
        assert container.format.name == "matroska,webm"
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert video.codec_context.name == "vp8"
        assert audio.codec_context.name == "opus" and audio.sample_rate == 48000
        assert video.average_rate == fps
        keys: list[float] = []
        count = 0
        for packet in container.demux(video):
            if packet.size == 0:
                continue
            if packet.is_keyframe:
                assert packet.pts is not None and packet.time_base is not None
                keys.append(float(packet.pts * packet.time_base))
            count += 1
    assert keys == [float(s) for s in range(len(keys))], f"keyframes at {keys}"
    assert len(keys) == -(-count // fps), f"{len(keys)} keyframes for {count} frames"
    with av.open(str(path)) as container:
        numbers = [read_frame_number(frame) for frame in container.decode(video=0)]
    assert None not in numbers, numbers
    return [n for n in numbers if n is not None]


def transcoders() -> list[int]:
    """Our child processes running the transcoder."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if parent == os.getpid() and b"server.library.transcode" in cmdline:
            found.append(int(proc.name))
    return found
