"""The home page end to end (docs/web.md#the-home-page) in headless Chromium against a real
OpenID Connect provider (`oidc-provider`, tests/oidc_support.py): Ann signs in through the
provider's own form, lands on her home page, starts a session with Ben, opens it with one click
and is in the room without a token in any address, uploads a video of her own, and signs out."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from server.library.clip import ClipSpec
from tests.clips import write_clip
from tests.oidc_support import sign_in_with_httpx
from tests.support import TIMEOUT
from tests.test_sign_in import Env, serve_with_providers
from tests.web_support import DIST, artifact, chromium

WAIT = 3 * TIMEOUT * 1000
INGEST_WAIT = 12 * TIMEOUT * 1000  # a real transcode, in the background


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with serve_with_providers(tmp_path) as running:
        yield running


async def start_session(page: Page, title: str, search: str, person: str) -> None:
    await page.locator("#new-title").fill(title)
    await page.get_by_label("Find a colleague by name").fill(search)
    # The search is made as she types (after a short pause) and picks the one found.
    await expect(page.locator("#new-with")).to_have_value(person, timeout=WAIT)
    await page.get_by_role("button", name="Start the session").click()
    await expect(page.locator("#new-status")).to_contain_text(f"Started “{title}”", timeout=WAIT)


async def test_sign_in_home_page_and_into_a_session(env: Env, tmp_path: Path) -> None:
    if not (DIST / "home.html").is_file():
        pytest.fail("the home page is not built (web/dist/home.html is missing): `make web`")
    # Ben has signed in once, so that he is a person Ann can find.
    async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as ben:
        done = await sign_in_with_httpx(ben, f"{env.base}/login", "ben-2", "b-pass")
        assert done.status_code == 303, done.text
        ben_id = (await ben.get(f"{env.base}/api/me")).json()["id"]

        lesson = write_clip(tmp_path / "Fractions.mp4", ClipSpec(seconds=1, width=320, height=180))
        async with chromium() as browser:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            addresses: list[str] = []
            page.on("framenavigated", lambda frame: addresses.append(frame.url))

            # Signed out, / is the sign-in page; its link goes through the provider's form.
            await page.goto(f"{env.base}/")
            await page.get_by_role("link", name="Sign in with your school account").click()
            await page.locator("input[name=login]").fill("ann@ashby.sch.uk")
            await page.locator("input[name=password]").fill("a-pass")
            await page.locator("button[type=submit]").click()

            # Back on the home page, signed in as Ann, with nothing of hers yet.
            await expect(page.locator("#me")).to_contain_text("Ann Archer", timeout=WAIT)
            assert page.url == f"{env.base}/"
            await expect(page.locator("#me")).to_contain_text("ashby-primary")
            await expect(page.locator("#me")).to_contain_text("teacher")
            await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
            await expect(page.locator("#sessions-empty")).to_be_visible(timeout=WAIT)
            await expect(page.locator("#cycles-empty")).to_be_visible(timeout=WAIT)
            for section in ("Film Club groups", "Trust library"):
                heading = page.get_by_role("heading", name=section)
                await expect(heading.locator("xpath=..")).to_contain_text("Nothing here yet")
            # Ann is not a coach: she may open a session only as its teacher.
            await expect(page.locator("#new-as")).to_have_value("teacher")
            assert await page.locator('#new-as option[value="coach"]').is_disabled()

            # Two sessions with Ben; the newer one is listed first.
            await start_session(page, "Planning", "ben", ben_id)
            await start_session(page, "Coaching: questioning", "Ben B", ben_id)
            rows = page.locator("#sessions tr")
            await expect(rows).to_have_count(2, timeout=WAIT)
            await expect(rows.nth(0).locator(".home-title")).to_have_text("Coaching: questioning")
            await expect(rows.nth(1).locator(".home-title")).to_have_text("Planning")
            await expect(rows.nth(0)).to_contain_text("Ben Brook (coach)")
            await expect(rows.nth(0)).to_contain_text("you: teacher")
            room = await rows.nth(0).get_attribute("data-room")
            assert room
            # Ben has it too, as its coach.
            his = (await ben.get(f"{env.base}/api/me/rooms")).json()["rooms"]
            assert [r["role"] for r in his] == ["coach", "coach"] and his[0]["id"] == room

            # A video of her own, uploaded with tus on her sign-in (no Authorization).
            await page.locator("#upload-file").set_input_files(lesson)
            await page.locator("#upload-title").fill("Fractions")
            await page.locator("#upload-consent").select_option("obtained")
            await page.locator("#upload-button").click()
            await expect(page.locator("#upload-text")).to_contain_text("Uploaded", timeout=WAIT)
            assert await page.locator("#upload-bar").evaluate("bar => bar.value") == 1
            video = page.locator("#videos tr", has_text="Fractions")
            await expect(video).to_contain_text("Obtained", timeout=WAIT)
            await expect(video.locator(".status-ready")).to_be_visible(timeout=INGEST_WAIT)
            mine = await (await context.request.get(f"{env.base}/api/videos")).json()
            assert [v["title"] for v in mine["videos"]] == ["Fractions"]
            theirs = (await ben.get(f"{env.base}/api/videos")).json()["videos"]
            assert theirs == []  # Ben does not see Ann's video
            await page.screenshot(path=artifact("web-home.png"), full_page=True)

            # One click into the session: the room knows her, as its teacher.
            await rows.nth(0).get_by_role("link", name=re.compile(r"^Open")).click()
            await expect(page.locator("#room-title")).to_have_text(
                "Coaching: questioning", timeout=WAIT
            )
            assert page.url == f"{env.base}/r/{room}"
            you = page.locator("#members .member.you")
            await expect(you).to_contain_text("Ann Archer", timeout=WAIT)
            await expect(you).to_have_attribute("data-role", "teacher")
            await expect(page.locator("#fatal")).to_be_hidden()
            assert addresses and not [a for a in addresses if "token=" in a], addresses

            # Signing out: the sign-in page again, and the sign-in is over.
            await page.goto(f"{env.base}/")
            await expect(page.locator("#me")).to_contain_text("Ann Archer", timeout=WAIT)
            await page.get_by_role("button", name="Sign out").click()
            await expect(
                page.get_by_role("link", name="Sign in with your school account")
            ).to_be_visible(timeout=WAIT)
            assert page.url == f"{env.base}/"
            me = await context.request.get(f"{env.base}/api/me")
            assert me.status == 401
            # Her session page, opened again, has no way in without a sign-in or a link.
            await page.goto(f"{env.base}/r/{room}")
            await expect(page.locator("#fatal")).to_be_visible(timeout=WAIT)
            assert not [a for a in addresses if "token=" in a], addresses
