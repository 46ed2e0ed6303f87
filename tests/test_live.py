"""The live lesson end to end on one embedded server: a real aiortc classroom publishing over
WHIP, real viewers over WHEP, the coach's talk-back, and the recording (docs/live.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest

from server.library.clip import read_frame_number
from server.sync.sqlite_store import SqliteStore
from server.sync.store import RoomRecord
from tests.live_support import (
    COACH_HZ,
    LESSON_HZ,
    delete,
    start_publisher,
    start_talker,
    start_viewer,
)
from tests.support import TIMEOUT, Client, Running, join, serve_in_process, token
from tests.video_support import http, library_settings, wait_for
from tests.yclient import ydoc

MEDIA = {
    "media_host_addresses": "127.0.0.1",
    "media_remote_networks": "loopback",
    "live_resume_seconds": 3.0,
    "home_idle_seconds": 0.5,
}


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[Running]:
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    await store.create_room(RoomRecord(id="r1", title="Live from 7B", created=0.0))
    await store.close()
    async with serve_in_process(library_settings(tmp_path, **MEDIA)) as running:
        yield running


async def live_status(
    client: Client, status: str | None, timeout: float = TIMEOUT
) -> dict[str, Any]:
    """The next `live` message whose status is `status` (None: the lesson ended)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await client.expect("live", timeout=max(0.1, deadline - time.monotonic()))
        live = message["live"]
        if (live is None and status is None) or (live is not None and live["status"] == status):
            return message


def frames(viewer: Any) -> list[int]:
    return [n for n in viewer.numbers if n is not None]


async def test_a_viewer_sees_and_hears_the_classroom(live_server: Running) -> None:
    base = live_server.base
    async with join(base, "r1", "coach", "Cora") as coach:
        assert coach.welcome["live"] is None and coach.welcome["talkback"] is None
        publisher, response = await start_publisher(base, "r1", token("r1", "camera", "Room 7B"))
        assert response.status_code == 201, response.text
        assert response.headers["location"].startswith("/rooms/r1/whip/")
        live = (await live_status(coach, "live"))["live"]
        assert live["publisher"] == "user:room 7b" and live["name"] == "Room 7B"
        viewer, answer = await start_viewer(base, "r1", token("r1", "observer", "Olu"))
        assert answer.status_code == 201, answer.text
        try:
            await viewer.until(lambda: len(frames(viewer)) > 20, "video")
            seen = frames(viewer)
            assert seen == sorted(seen) and seen[-1] > seen[0]
            await viewer.until(lambda: viewer.ear.hears(LESSON_HZ), "the lesson's sound")
        finally:
            await viewer.close()
            await publisher.close()


async def test_a_mid_lesson_joiner_gets_a_key_frame_at_once(live_server: Running) -> None:
    """The publisher's encoder makes key frames only when asked (aiortc: every 100 s or so on
    its own): a joiner that sees video at all within the test's timeout was sent one on
    request. How soon (the goal: within a second) is measured by bench.live."""
    base = live_server.base
    publisher, response = await start_publisher(base, "r1", token("r1", "camera", "Room 7B"))
    assert response.status_code == 201, response.text
    first, _ = await start_viewer(base, "r1", token("r1", "coach", "Cora"))
    try:
        await first.until(lambda: len(frames(first)) > 30, "the first viewer's video")
        await asyncio.sleep(2.0)  # well past the publisher's first key frame
        assert publisher.video is not None
        joined_at = publisher.video.number
        late, answer = await start_viewer(base, "r1", token("r1", "coach", "Cai", sub="cai"))
        assert answer.status_code == 201
        await late.until(lambda: bool(frames(late)), "the late viewer's first frame")
        # The lesson as it is now, from a key frame made after the viewer came.
        assert frames(late)[0] >= joined_at
        await late.close()
    finally:
        await first.close()
        await publisher.close()


async def test_one_publisher_at_a_time(live_server: Running) -> None:
    base = live_server.base
    camera = token("r1", "camera", "Room 7B")
    first, response = await start_publisher(base, "r1", camera)
    assert response.status_code == 201
    _, refused = await start_publisher(base, "r1", token("r1", "teacher", "Tia"))
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "publisher_busy"
    assert "Room 7B" in refused.json()["error"]["message"]
    # The same identity reconnecting replaces its old session.
    again, response = await start_publisher(base, "r1", camera)
    assert response.status_code == 201, response.text
    assert response.headers["location"] != first.location
    viewer, _ = await start_viewer(base, "r1", token("r1", "coach", "Cora"))
    try:
        await viewer.until(lambda: len(frames(viewer)) > 5, "video from the new session")
        gone = await delete(base, first.location, camera)
        assert gone.status_code == 404  # the replaced session is over
    finally:
        await viewer.close()
        await first.close()
        await again.close()


async def test_who_may_publish_and_talk_back(live_server: Running) -> None:
    base = live_server.base
    for role in ("observer", "coach"):
        _, refused = await start_publisher(base, "r1", token("r1", role, "Pat"))
        assert refused.status_code == 403, role
        assert refused.json()["error"]["code"] == "forbidden"
    for role in ("observer", "teacher", "camera"):
        _, refused = await start_talker(base, "r1", token("r1", role, "Pat"))
        assert refused.status_code == 403, role
    _, refused = await start_viewer(base, "r1", token("r1", "observer", "Olu"), source="talkback")
    assert refused.status_code == 403
    assert "hear talk-back" in refused.json()["error"]["message"]
    # Narrowed by a grant: a coach without talk-back.
    _, refused = await start_talker(
        base, "r1", token("r1", "coach", "Cora", grants={"talkback": False})
    )
    assert refused.status_code == 403
    _, not_live = await start_viewer(base, "r1", token("r1", "coach", "Cora"), source="live")
    assert not_live.status_code == 409 and not_live.json()["error"]["code"] == "not_live"


async def test_bad_offers_get_clear_errors(live_server: Running) -> None:
    import httpx

    base = live_server.base
    camera = {"authorization": f"Bearer {token('r1', 'camera', 'Room 7B')}"}
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as client:
        cases = [
            ({"content-type": "text/plain"}, "v=0", 415, "unsupported_media_type"),
            ({"content-type": "application/sdp"}, "hello", 400, "bad_sdp"),
            (
                {"content-type": "application/sdp"},
                "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
                400,
                "bad_sdp",
            ),
        ]
        for headers, body, status, code in cases:
            answer = await client.post(
                "/rooms/r1/whip", content=body, headers={**camera, **headers}
            )
            assert answer.status_code == status, answer.text
            assert answer.json()["error"]["code"] == code
        unauthorised = await client.post(
            "/rooms/r1/whip", content="v=0", headers={"content-type": "application/sdp"}
        )
        assert unauthorised.status_code == 401
    # The server goes on: a good publisher still gets in.
    publisher, response = await start_publisher(base, "r1", token("r1", "camera", "Room 7B"))
    assert response.status_code == 201
    await publisher.close()


async def test_talk_back_reaches_the_teacher_only(live_server: Running) -> None:
    base = live_server.base
    async with join(base, "r1", "observer", "Olu") as observer:
        # The classroom device wears the earpiece: it publishes and hears on one connection.
        camera, response = await start_publisher(
            base, "r1", token("r1", "camera", "Room 7B"), earpiece=True
        )
        assert response.status_code == 201, response.text
        await live_status(observer, "live")
        earpiece, answer = await start_viewer(
            base, "r1", token("r1", "teacher", "Tia"), source="talkback", kinds=("audio",)
        )
        assert answer.status_code == 201, answer.text
        watching, _ = await start_viewer(base, "r1", token("r1", "observer", "Olu"))
        coach_view, _ = await start_viewer(base, "r1", token("r1", "coach", "Cora"))
        talker, response = await start_talker(base, "r1", token("r1", "coach", "Cora"))
        assert response.status_code == 201, response.text
        try:
            on_air = await observer.expect("talkback")
            assert on_air["talkback"]["name"] == "Cora"
            await earpiece.until(lambda: earpiece.ear.hears(COACH_HZ), "the coach, in the earpiece")
            deadline = time.monotonic() + TIMEOUT
            while not camera.ear.hears(COACH_HZ):
                assert time.monotonic() < deadline, f"the classroom heard {camera.ear.heard[-5:]}"
                await asyncio.sleep(0.05)
            await watching.until(lambda: watching.ear.hears(LESSON_HZ), "the lesson")
            await asyncio.sleep(1.0)  # the coach has been talking a while now
            for viewer in (watching, coach_view):
                assert viewer.kinds.count("audio") == 1  # one audio track: the lesson's
                assert all(abs(h - COACH_HZ) > 30 for h in viewer.ear.heard), viewer.ear.heard
            stopped = await delete(base, talker.location, token("r1", "coach", "Cora"))
            assert stopped.status_code == 200
            off_air = await observer.expect("talkback")
            assert off_air["talkback"] is None
        finally:
            for peer in (earpiece, watching, coach_view, talker, camera):
                await peer.close()


async def test_the_recording_becomes_the_rooms_video(live_server: Running) -> None:
    base = live_server.base
    camera = token("r1", "camera", "Room 7B")
    async with join(base, "r1", "coach", "Cora") as coach:
        publisher, response = await start_publisher(base, "r1", camera)
        assert response.status_code == 201
        live = (await live_status(coach, "live"))["live"]
        while live["recording_started_at"] is None:
            live = (await live_status(coach, "live"))["live"]
        await asyncio.sleep(3.0)
        assert publisher.video is not None
        made_at = dict(publisher.video.made_at)
        stopped = await delete(base, publisher.location, camera)
        assert stopped.status_code == 200
        ended = await live_status(coach, None)
        await publisher.close()
    video_id = ended["recording"]
    assert ended["reason"] == "stopped by the publisher" and video_id == live["recording"]
    async with http(base) as client:
        video = await wait_for(client, video_id)
        assert video["status"] == "ready", video["error"]
        assert 2.5 < video["duration"] < 5.0
    async with ydoc(base, "r1", token("r1", "coach", "Cora")) as doc:
        assert doc.doc.get("meta", type=__import__("pycrdt").Map)["video"] == video_id
    # A note made at server time T belongs at recording time T - recording_started_at: the
    # frame there is the one the classroom made at T.
    path = live_server.settings.data / "videos" / video_id / "360p.webm"
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time >= 1.0:
                number = read_frame_number(frame)
                break
    assert number is not None
    made = made_at[number] - live["recording_started_at"]
    assert abs(made - frame.time) < 0.25, (number, made, frame.time)


async def test_a_dropped_publisher_resumes_the_same_recording(live_server: Running) -> None:
    base = live_server.base
    camera = token("r1", "camera", "Room 7B")
    async with join(base, "r1", "observer", "Olu") as observer:
        first, _ = await start_publisher(base, "r1", camera)
        live = (await live_status(observer, "live"))["live"]
        viewer, _ = await start_viewer(base, "r1", token("r1", "coach", "Cora"))
        await viewer.until(lambda: len(frames(viewer)) > 10, "video")
        await first.close()  # the network drops: no DELETE
        interrupted = (await live_status(observer, "interrupted"))["live"]
        assert interrupted["recording"] == live["recording"]
        again, response = await start_publisher(base, "r1", camera)
        assert response.status_code == 201
        back = (await live_status(observer, "live"))["live"]
        assert back["recording"] == live["recording"] and back["part"] == 1
        count = len(frames(viewer))
        await viewer.until(lambda: len(frames(viewer)) > count + 10, "video again, same viewer")
        await again.close()
        await live_status(observer, "interrupted")
        ended = await live_status(observer, None)  # live_resume_seconds pass
        assert ended["recording"] == live["recording"]
        assert ended["reason"] == "the publisher did not come back"
        await viewer.close()
    async with http(base) as client:
        video = await wait_for(client, live["recording"])
        assert video["status"] == "ready", video["error"]


async def test_an_h264_publisher_is_relayed_and_recorded_as_sent(live_server: Running) -> None:
    """OBS Studio publishes H.264 only: relayed as H.264, recorded in Matroska, ingested."""
    base = live_server.base
    camera = token("r1", "camera", "OBS")
    async with join(base, "r1", "coach", "Cora") as coach:
        publisher, response = await start_publisher(base, "r1", camera, video_codec="video/H264")
        assert response.status_code == 201, response.text
        assert "H264/90000" in response.text and "VP8/90000" not in response.text
        live = (await live_status(coach, "live"))["live"]
        viewer, answer = await start_viewer(base, "r1", token("r1", "coach", "Cora"))
        assert answer.status_code == 201, answer.text
        assert "H264/90000" in answer.text and "VP8/90000" not in answer.text
        await viewer.until(lambda: len(frames(viewer)) > 20, "H.264 video")
        seen = frames(viewer)
        assert seen == sorted(seen)
        await viewer.close()
        await delete(base, publisher.location, camera)
        ended = await live_status(coach, None)
        await publisher.close()
    assert ended["recording"] == live["recording"]
    async with http(base) as client:
        video = await wait_for(client, live["recording"])
    assert video["status"] == "ready", video["error"]
    assert video["source"]["video_codec"] == "h264"


async def test_a_classroom_may_publish_to_an_empty_room(live_server: Running) -> None:
    """Nobody has opened the room yet: the home keeps it while the lesson is live."""
    base = live_server.base
    camera = token("r1", "camera", "Room 7B")
    publisher, response = await start_publisher(base, "r1", camera)
    assert response.status_code == 201
    await asyncio.sleep(3.0)  # several idle periods of the home (home_idle_seconds)
    async with join(base, "r1", "coach", "Cora") as coach:
        assert coach.welcome["live"]["status"] == "live"
        viewer, answer = await start_viewer(base, "r1", token("r1", "coach", "Cora"))
        assert answer.status_code == 201, answer.text
        await viewer.until(lambda: len(frames(viewer)) > 5, "video from the classroom")
        await viewer.close()
    await delete(base, publisher.location, camera)
    await publisher.close()


async def test_publishing_and_talk_back_are_audited(live_server: Running) -> None:
    base = live_server.base
    camera = token("r1", "camera", "Room 7B")
    coach = token("r1", "coach", "Cora")
    async with join(base, "r1", "observer", "Olu") as observer:
        publisher, _ = await start_publisher(base, "r1", camera)
        await live_status(observer, "live")
        talker, response = await start_talker(base, "r1", coach)
        assert response.status_code == 201
        await observer.expect("talkback")
        await delete(base, talker.location, coach)
        await delete(base, publisher.location, camera)
        ended = await live_status(observer, None)
        await talker.close()
        await publisher.close()
    async with http(base) as client:
        deadline = time.monotonic() + TIMEOUT
        while True:
            events = (await client.get("/api/audit", params={"room": "r1"})).json()["events"]
            actions = [e["action"] for e in events]
            if "live.end" in actions or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    for action in ("live.publish", "talkback.start", "talkback.stop", "live.end"):
        assert action in actions, actions
    end = next(e for e in events if e["action"] == "live.end")
    assert end["video"] == ended["recording"] and end["actor"]["sub"] == "user:room 7b"
    start = next(e for e in events if e["action"] == "talkback.start")
    assert (start["actor"]["sub"], start["actor"]["role"]) == ("user:cora", "coach")
