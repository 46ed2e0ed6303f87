"""The admin page end to end in headless Chromium: the admin key, a lesson uploaded with tus
and a progress bar until it is ready to watch, a room made for it, and an invite link that
opens the session."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect

from server.library.clip import ClipSpec, write_clip
from tests.support import ADMIN_KEY, TIMEOUT, Running
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
