"""WHEP end to end on one embedded server: real aiortc viewers over loopback, a coach driving
playback over the room protocol, frame numbers read from what each viewer decodes."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from server.library.clip import WEBM_VP8, ClipSpec
from server.sync.sqlite_store import SqliteStore
from server.sync.store import Rendition, RoomRecord, VideoRecord
from tests.clips import write_clip
from tests.media import PeerViewer, accept_answer, offer_viewer
from tests.support import TIMEOUT, Running, join, make_settings, serve_in_process, token
from tests.yclient import ydoc

FPS = 30
SECONDS = 6
MEDIA = {"media_host_addresses": "127.0.0.1", "media_remote_networks": "loopback"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "360p.webm"
    return write_clip(path, ClipSpec(seconds=SECONDS, fps=FPS, width=320, height=180), WEBM_VP8)


def ready_video(data: Path, video_id: str, clip: Path, seconds: float = SECONDS) -> VideoRecord:
    """A lesson as ingest leaves it: a 360p VP8/Opus WebM in the library, and its record."""
    folder = data / "videos" / video_id
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(shutil.copy(clip, folder / "360p.webm"))
    rendition = Rendition(
        name="360p",
        width=320,
        height=180,
        file=f"{video_id}/360p.webm",
        bytes=path.stat().st_size,
        fps=FPS,
        duration=seconds,
    )
    return VideoRecord(
        id=video_id,
        title="Year 7 fractions",
        created=time.time(),
        owner="admin",
        status="ready",
        progress=1.0,
        duration=seconds,
        fps=FPS,
        width=320,
        height=180,
        renditions=(rendition,),
        consent="obtained",
    )


@pytest.fixture
async def lesson_server(tmp_path: Path, clip: Path) -> AsyncIterator[Running]:
    """An embedded server with room `r1` watching video `v1`, and room `empty` with none."""
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    await store.put_video(ready_video(tmp_path, "v1", clip))
    await store.create_room(RoomRecord(id="r1", title="Lesson one", created=0.0, video="v1"))
    await store.create_room(RoomRecord(id="empty", title="No video yet", created=0.0))
    await store.create_room(RoomRecord(id="gone", title="Deleted", created=0.0, video="nope"))
    await store.close()
    async with serve_in_process(make_settings(tmp_path, **MEDIA)) as running:
        yield running


async def post_offer(
    base: str, room: str, offer: str, tok: str | None, **headers: str
) -> httpx.Response:
    sent = {"content-type": "application/sdp", **headers}
    if tok is not None:
        sent["authorization"] = f"Bearer {tok}"
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        return await http.post(f"{base}/rooms/{room}/whep", content=offer, headers=sent)


class Watching:
    def __init__(self, viewer: PeerViewer, location: str) -> None:
        self.viewer, self.location = viewer, location


async def watch(base: str, room: str = "r1", role: str = "teacher", name: str = "Tia") -> Watching:
    viewer, offer = await offer_viewer()
    response = await post_offer(base, room, offer, token(room, role, name))
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/sdp")
    await accept_answer(viewer, response.text)
    return Watching(viewer, response.headers["location"])


async def test_two_viewers_follow_the_room(lesson_server: Running) -> None:
    base = lesson_server.base
    async with join(base, "r1", "coach", "Cal") as coach:
        a = await watch(base, name="Tia")
        b = await watch(base, role="observer", name="Obi")
        try:
            # The first viewer attached the room's video: paused at 0, everyone told.
            state = await coach.expect("playback")
            assert state["playback"]["video"] == "v1" and state["playback"]["position"] == 0.0
            await a.viewer.wait_for(lambda v: v.last == 0, what="frame 0")
            await b.viewer.wait_for(lambda v: v.last == 0, what="frame 0")

            await coach.send(type="seek", position=2.5)  # frame 75; keyframes at 60 and 90
            await coach.expect("playback")
            await a.viewer.wait_for(lambda v: v.last == 75, what="the seek target")
            seen = a.viewer.shown()
            assert seen[seen.index(60) - 1 :] == [0, *range(60, 76)]  # keyframe first

            await coach.send(type="play")
            await coach.expect("playback", timeout=TIMEOUT)
            await a.viewer.wait_for(lambda v: (v.last or 0) >= 100, what="playing on")
            await coach.send(type="pause")
            paused = (await coach.expect("playback"))["playback"]
            assert paused["status"] == "paused"
            expected = int(paused["position"] * FPS + 1e-6)
            assert await a.viewer.settle() == expected
            assert await b.viewer.settle() == expected
            pts = [f.pts for f in a.viewer.frames]
            assert pts == sorted(pts), "RTP time went backwards"
        finally:
            await a.viewer.close()
            await b.viewer.close()


async def test_a_late_joiner_starts_where_the_room_is(lesson_server: Running) -> None:
    base = lesson_server.base
    async with join(base, "r1", "coach", "Cal") as coach:
        first = await watch(base)
        try:
            await coach.expect("playback")  # the video attached
            await coach.send(type="seek", position=2.0)
            await coach.expect("playback")
            await coach.send(type="play")
            await coach.expect("playback")
            await asyncio.sleep(1.0)
            late = await watch(base, role="coach", name="Cal")
            try:
                await late.viewer.wait_for(lambda v: (v.last or 0) >= 95, what="late frames")
                # It started at a keyframe near the room's position, not at the beginning.
                assert late.viewer.numbers[0] in (60, 90)
                await coach.silent(0.3)  # nobody was paused for it
            finally:
                await late.viewer.close()
        finally:
            await first.viewer.close()


async def test_leaving_and_trickle(lesson_server: Running) -> None:
    base = lesson_server.base
    watching = await watch(base, name="Tia")
    tia = token("r1", "teacher", "Tia")
    url = base + watching.location
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            fragment = "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
            patch = {"content-type": "application/trickle-ice-sdpfrag"}
            ok = await http.patch(
                url, content=fragment, headers={**patch, "authorization": f"Bearer {tia}"}
            )
            assert ok.status_code == 204, ok.text
            other = token("r1", "coach", "Cal")
            refused = await http.patch(
                url, content=fragment, headers={**patch, "authorization": f"Bearer {other}"}
            )
            assert refused.status_code == 403
            assert (
                await http.delete(url, headers={"authorization": f"Bearer {other}"})
            ).status_code == 403
            left = await http.delete(url, headers={"authorization": f"Bearer {tia}"})
            assert left.status_code == 200
            again = await http.delete(url, headers={"authorization": f"Bearer {tia}"})
            assert again.status_code == 404
    finally:
        await watching.viewer.close()


@pytest.mark.parametrize(
    ("room", "role", "body", "headers", "status", "code"),
    [
        ("r1", "teacher", "hello", {}, 400, "bad_sdp"),
        ("r1", "teacher", "v=0\r\ns=-\r\n", {}, 400, "bad_sdp"),
        ("r1", "teacher", None, {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        ("r1", "teacher", "v=0\r\n" + "a=x\r\n" * 20000, {}, 413, "frame_too_large"),
        ("r1", None, None, {}, 401, "token_missing"),
        ("r1", "camera", None, {}, 403, "forbidden"),
        ("empty", "teacher", None, {}, 409, "no_video"),
        ("gone", "teacher", None, {}, 409, "no_video"),
        ("nowhere", "teacher", None, {}, 404, "room_not_found"),
    ],
)
async def test_bad_requests_get_clear_errors(
    lesson_server: Running,
    room: str,
    role: str | None,
    body: str | None,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    viewer, offer = await offer_viewer()
    try:
        tok = token(room, role) if role is not None else None
        response = await post_offer(lesson_server.base, room, body or offer, tok, **headers)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code and error["message"]
    finally:
        await viewer.close()
    # Nothing else was disturbed: the room still serves a viewer.
    fine = await watch(lesson_server.base)
    try:
        await fine.viewer.wait_for(lambda v: v.last == 0, what="a good viewer's frame")
    finally:
        await fine.viewer.close()


async def test_an_offer_without_vp8_is_refused(lesson_server: Running) -> None:
    viewer, offer = await offer_viewer()
    try:
        h264_only = offer.replace("VP8/90000", "XYZ/90000")
        response = await post_offer(lesson_server.base, "r1", h264_only, token("r1", "teacher"))
        assert response.status_code == 400
        assert "VP8" in response.json()["error"]["message"]
    finally:
        await viewer.close()


async def test_the_rooms_video_is_in_its_document(lesson_server: Running) -> None:
    """A room created with a video names it in the shared document's meta.video (DESIGN §2)."""
    async with ydoc(lesson_server.base, "r1", token("r1", "observer", "Obi")) as client:
        assert client.meta["video"] == "v1"
    async with ydoc(lesson_server.base, "empty", token("empty", "observer", "Obi")) as client:
        assert "video" not in client.meta
