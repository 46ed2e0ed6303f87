"""The admin page end to end in headless Chromium: the admin key, a lesson uploaded with tus
and a progress bar until it is ready to watch, a room made for it, and an invite link that
opens the session."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import msgspec
from playwright.async_api import expect

from server.documents.lessons import Lesson
from server.library.clip import WEBM_VP8, ClipSpec
from server.sync.sqlite_store import SqliteStore
from server.sync.store import RoomRecord
from tests.clips import write_clip
from tests.support import ADMIN_KEY, TIMEOUT, Running, make_settings, serve_in_process
from tests.test_whep import FPS, ready_video
from tests.web_support import artifact, chromium

WAIT = 3 * TIMEOUT * 1000
INGEST_WAIT = 12 * TIMEOUT * 1000  # a real transcode, in the background


async def test_admin_uploads_a_lesson_and_invites_a_coach(
    embedded: Running, tmp_path: Path
) -> None:
    lesson = write_clip(tmp_path / "Year 9 science.mp4", ClipSpec(seconds=2, width=320, height=180))
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(f"{embedded.base}/admin")
        await expect(page.locator("#work")).to_be_hidden()

        await page.locator("#admin-key").fill("not-the-key-at-all")
        await page.get_by_role("button", name="Use this key").click()
        await expect(page.locator("#key-status")).to_contain_text("not this server")
        await page.locator("#admin-key").fill(ADMIN_KEY)
        await page.get_by_role("button", name="Use this key").click()
        await expect(page.locator("#work")).to_be_visible(timeout=WAIT)
        assert await page.evaluate("() => sessionStorage.getItem('cocoach-admin-key')") == ADMIN_KEY

        # Upload with tus: the bar reaches the end, the lesson is prepared and becomes ready.
        await page.locator("#upload-file").set_input_files(lesson)
        await page.locator("#upload-title").fill("Year 9 science")
        await page.locator("#upload-consent").select_option("obtained")
        await page.locator("#upload-button").click()
        await expect(page.locator("#upload-text")).to_contain_text("Uploaded", timeout=WAIT)
        assert await page.locator("#upload-bar").evaluate("bar => bar.value") == 1
        row = page.locator("#videos tr", has_text="Year 9 science")
        await expect(row.locator(".status-ready")).to_be_visible(timeout=INGEST_WAIT)

        # A room for that lesson, with the questioning framework.
        await page.locator("#room-title").fill("Coaching: questioning")
        await page.locator("#room-video").select_option(label="Year 9 science (ready)")
        await page.locator("#room-framework").select_option("questioning")
        await page.get_by_role("button", name="Create room").click()
        await expect(page.locator("#room-status")).to_contain_text("Created room")
        room = page.locator("#rooms tr", has_text="Coaching: questioning")
        await room.get_by_label("Coach\u2019s name").fill("Ann Lee")
        await room.get_by_role("button", name="Make invite links").click()
        link = room.locator('.invite[data-role="coach"] input')
        await expect(link).to_be_visible(timeout=WAIT)
        url = await link.input_value()
        assert url.startswith(f"{embedded.base}/r/") and "?token=" in url
        await page.screenshot(path=artifact("web-admin.png"), full_page=True)

        # The link opens the session as Ann, the coach, with the room's tags.
        session = await browser.new_page(viewport={"width": 1280, "height": 720})
        await session.goto(url)
        await expect(session.locator("#room-title")).to_have_text(
            "Coaching: questioning", timeout=WAIT
        )
        await expect(session.locator("#members .member.you")).to_contain_text("Ann Lee")
        await expect(session.locator("#composer .tag-button")).to_have_count(5, timeout=WAIT)


async def test_the_admin_brings_a_rooms_first_lesson_back(tmp_path: Path) -> None:
    """A live lesson's recording replaced the room's lesson; the admin page puts the upload
    back, and the room's pages and exports follow (issue 20)."""
    clip = write_clip(
        tmp_path / "lesson.webm", ClipSpec(seconds=2, fps=FPS, width=320, height=180), WEBM_VP8
    )
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    upload = msgspec.structs.replace(ready_video(tmp_path, "v1", clip), title="Fractions")
    recording = msgspec.structs.replace(
        ready_video(tmp_path, "v2", clip), title="Live lesson", room="r1"
    )
    for record in (upload, recording):
        await store.put_video(record)
    await store.create_room(RoomRecord(id="r1", title="Year 7", created=time.time(), video="v1"))
    await store.close()
    async with serve_in_process(make_settings(tmp_path)) as running:
        worker = running.server.config.app.state.worker
        await worker.show_lesson("r1", Lesson("v2", time.time(), "recording"))
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(f"{running.base}/admin")
            await page.locator("#admin-key").fill(ADMIN_KEY)
            await page.get_by_role("button", name="Use this key").click()
            choice = page.get_by_label("Lesson shown in Year 7")
            await expect(choice).to_have_value("v2", timeout=WAIT)
            await choice.select_option(label="Fractions")
            room = page.locator("#rooms tr", has_text="Year 7")
            await expect(room).to_contain_text("The room shows “Fractions” now.", timeout=WAIT)
        async with httpx.AsyncClient(base_url=running.base, timeout=TIMEOUT) as http:
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
            assert (await http.get("/api/rooms/r1", headers=admin)).json()["video"] == "v1"
            exported = (await http.get("/api/rooms/r1/export.json", headers=admin)).json()
            assert exported["video"] == "v1"
            assert [lesson["video"] for lesson in exported["lessons"]] == ["v1", "v2"]
