"""An observation in a coaching cycle (docs/cycles.md): the teacher's live lesson, watched from
the cycle's session, is recorded, and the recording becomes that session's lesson and one of
the cycle's, as an uploaded lesson is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.live_support import delete, start_publisher
from tests.support import TIMEOUT, token
from tests.test_people_api import Env, closing, serve_people
from tests.video_support import wait_for

MEDIA = {
    "media_host_addresses": "127.0.0.1",
    "media_remote_networks": "loopback",
    "ingest_nice": 0,
}


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    async with serve_people(tmp_path, monkeypatch, **MEDIA) as running:
        yield running


async def test_an_observed_live_lesson_joins_the_cycle(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    await env.person("Cora Coach", "cora@ashby.sch.uk", "ashby-primary", "coach")
    await env.person("Tia Teacher", "tia@ashby.sch.uk", "ashby-primary")
    cora = await env.signed_in("cora@ashby.sch.uk", capsys)
    tia = await env.signed_in("tia@ashby.sch.uk", capsys)
    async with closing(cora, tia):
        cora_id = (await cora.get("/api/me")).json()["id"]
        made = await tia.post(
            "/api/cycles",
            json={"focus": "Wait time", "framework": "questioning", "coaches": [cora_id]},
        )
        cid = made.json()["id"]
        observed = await cora.post(f"/api/cycles/{cid}/sessions", json={"kind": "observation"})
        assert observed.status_code == 201, observed.text
        room = observed.json()["room"]

        # The classroom's camera goes live in the session's room, and stops after a while.
        camera = token(room, "camera", "Room 7B", org="ashby-primary")
        publisher, answer = await start_publisher(env.base, room, camera)
        assert answer.status_code == 201, answer.text
        await asyncio.sleep(2.5)
        stopped = await delete(env.base, publisher.location, camera)
        assert stopped.status_code == 200, stopped.text
        await publisher.close()

        # Its recording is the session's lesson and the cycle's, once it is made.
        deadline = time.monotonic() + 3 * TIMEOUT
        while True:
            cycle = (await tia.get(f"/api/cycles/{cid}")).json()
            if cycle["lessons"]:
                break
            assert time.monotonic() < deadline, f"no lesson in the cycle: {cycle}"
            await asyncio.sleep(0.1)
        (recording,) = cycle["lessons"]
        assert cycle["sessions"][0]["video"] == recording
        video = await wait_for(tia, recording)
        assert video["status"] == "ready", video
        # Her lesson, among her own videos (to keep or delete), not the classroom camera's.
        assert recording in [v["id"] for v in (await tia.get("/api/videos")).json()["videos"]]
        progress = (await tia.get(f"/api/cycles/{cid}/progress")).json()
        assert [lesson["video"] for lesson in progress["lessons"]] == [recording]
