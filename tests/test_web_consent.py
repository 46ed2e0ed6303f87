"""A lesson video kept without recorded consent (issue 8): the session page says why there is no
picture, and once the admin records consent on the admin page the picture appears by itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from playwright.async_api import expect

from server.sync.sqlite_store import SqliteStore
from server.sync.store import RoomRecord
from tests.support import ADMIN_KEY, Running, make_settings, serve_in_process
from tests.test_web import MEDIA, SECONDS, WAIT, clip, invite  # noqa: F401  (clip: a fixture)
from tests.test_whep import ready_video
from tests.web_support import chromium, wait_for_frame


@pytest.fixture
async def unconsented(tmp_path: Path, clip: Path) -> AsyncIterator[Running]:  # noqa: F811
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    video = ready_video(tmp_path, "v1", clip, seconds=SECONDS)
    await store.put_video(msgspec.structs.replace(video, consent="not_obtained"))
    await store.create_room(RoomRecord(id="r1", title="Year 7 fractions", created=0.0, video="v1"))
    await store.close()
    async with serve_in_process(make_settings(tmp_path, **MEDIA)) as running:
        yield running


async def test_a_video_without_consent_appears_once_consent_is_recorded(
    unconsented: Running,
) -> None:
    async with chromium() as browser:
        coach = await browser.new_page()
        await coach.goto(invite(unconsented.base, "coach", "Cal"))
        await expect(coach.locator("#stage-message")).to_contain_text(
            "until the school records consent", timeout=WAIT
        )

        admin = await browser.new_page(viewport={"width": 1280, "height": 900})
        admin.on("dialog", lambda dialog: dialog.accept())
        await admin.goto(f"{unconsented.base}/admin")
        await admin.locator("#admin-key").fill(ADMIN_KEY)
        await admin.get_by_role("button", name="Use this key").click()
        record = admin.locator('#videos tr[data-video="v1"] .record-consent')
        await expect(record).to_be_visible(timeout=WAIT)
        await record.click()
        await expect(record).to_be_hidden(timeout=WAIT)

        # The session page asks again by itself, and the picture comes.
        await wait_for_frame(coach, "n !== null")
