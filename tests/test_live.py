"""The live lesson end to end on one embedded server: a real aiortc classroom publishing over
WHIP, real viewers over WHEP, the coach's talk-back, and the recording (docs/live.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.sync.sqlite_store import SqliteStore
from server.sync.store import RoomRecord
from tests.live_support import COACH_HZ, LESSON_HZ, start_publisher, start_viewer
from tests.support import Running, join, make_settings, serve_in_process, token

MEDIA = {"media_host_addresses": "127.0.0.1", "media_remote_networks": "loopback"}


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[Running]:
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    await store.create_room(RoomRecord(id="r1", title="Live from 7B", created=0.0))
    await store.close()
    async with serve_in_process(make_settings(tmp_path, **MEDIA)) as running:
        yield running


async def test_a_viewer_sees_and_hears_the_classroom(live_server: Running) -> None:
    base = live_server.base
    async with join(base, "r1", "coach", "Cora") as coach:
        publisher, response = await start_publisher(base, "r1", token("r1", "camera", "Room 7B"))
        assert response.status_code == 201, response.text
        assert response.headers["location"].startswith("/rooms/r1/whip/")
        live = await coach.expect("live")
        while live["live"] is None or live["live"]["status"] != "live":
            live = await coach.expect("live")
        viewer, answer = await start_viewer(base, "r1", token("r1", "coach", "Cora"))
        assert answer.status_code == 201, answer.text
        try:
            await viewer.until(
                lambda: len([n for n in viewer.numbers if n is not None]) > 20, "video"
            )
            seen = [n for n in viewer.numbers if n is not None]
            assert seen == sorted(seen) and seen[-1] > seen[0]
            await viewer.until(lambda: viewer.ear.hears(LESSON_HZ), "the lesson's sound")
            assert not viewer.ear.hears(COACH_HZ)
        finally:
            await viewer.close()
            await publisher.close()
