"""A video withdrawn at once (DOMAIN.md: a pupil who must not be seen): when its consent is
withdrawn or it is deleted, the viewers already watching it are cut off, not only new ones."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.media import offer_viewer
from tests.support import ADMIN_KEY, TIMEOUT, Running, token
from tests.test_whep import clip, lesson_server, post_offer, watch  # noqa: F401  (fixtures)

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def ended(task: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not task.done():
        assert time.monotonic() < deadline, "the viewer's track is still running"
        await asyncio.sleep(0.05)


async def test_withdrawing_consent_cuts_off_the_viewers_at_once(lesson_server: Running) -> None:  # noqa: F811
    base = lesson_server.base
    watching = await watch(base)
    other = await watch(base, name="Obi")
    try:
        for who in (watching, other):
            await who.viewer.wait_for(lambda v: v.last is not None, what="the lesson")
        async with httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=TIMEOUT) as admin:
            changed = await admin.patch("/api/videos/v1", json={"consent": "not_obtained"})
            assert changed.status_code == 200, changed.text
            for who in (watching, other):
                await ended(who.viewer._tasks[0])  # the server ended the track (RTCP BYE)
            again, offer = await offer_viewer()
            refused = await post_offer(base, "r1", offer, token("r1", "coach", "Cal"))
            await again.close()
            assert (
                refused.status_code == 403 and refused.json()["error"]["code"] == "consent_missing"
            )
            deadline = time.monotonic() + TIMEOUT
            while True:
                events = (await admin.get("/api/audit", params={"video": "v1"})).json()["events"]
                reasons = [
                    e["detail"].get("reason") for e in events if e["action"] == "video.unwatch"
                ]
                if len(reasons) >= 2 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert reasons == ["consent for the video was withdrawn"] * 2, reasons
    finally:
        await watching.viewer.close()
        await other.viewer.close()


async def test_deleting_a_video_cuts_off_its_viewers(lesson_server: Running) -> None:  # noqa: F811
    base = lesson_server.base
    watching = await watch(base)
    try:
        await watching.viewer.wait_for(lambda v: v.last is not None, what="the lesson")
        async with httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=TIMEOUT) as admin:
            assert (await admin.delete("/api/videos/v1")).status_code == 204
        await ended(watching.viewer._tasks[0])
    finally:
        await watching.viewer.close()
