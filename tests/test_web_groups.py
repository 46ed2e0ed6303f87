"""Clips, a Film Club group and the trust library in headless Chromium (docs/groups.md): a
teacher marks a range of her lesson with [ and ] in a session and makes a clip of it, with the
notes of that range; a coach starts a group on the home page with her and a teacher of another
school of the trust; she shares the clip with the group on the clip page; the other school's
teacher comments on it in its discussion; a group session the coach starts plays the clip in
sync for two members; she publishes it, and a member finds it in the library by a tag.
Screenshots of the group page and the library page are kept in tests/artifacts/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeout

from tests.support import ADMIN_KEY
from tests.test_people_api import Env, serve_people
from tests.test_web_cycle import WAIT, seek, signed_in_page, tag, upload_with_consent
from tests.video_support import clip, wait_for
from tests.web_support import artifact, chromium

TITLE = "Wait time after a hard question"
COMMENT = "The silence works: everyone had a go"


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    async with serve_people(tmp_path, monkeypatch) as running:
        yield running


async def ready_page(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT)


async def in_room(page: Page) -> None:
    """A session page that is in its room and shows its lesson: the room has attached the
    video (which resets its clock) and the picture is on screen."""
    await page.wait_for_function(
        "() => Boolean(window.cocoach?.room?.playback?.video)"
        " && document.body.dataset.video === 'connected'",
        timeout=WAIT,
    )


async def playback(page: Page) -> dict[str, object]:
    state: dict[str, object] = await page.evaluate(
        "() => { const p = window.cocoach.room.playback;"
        " return { status: p.status, position: p.position, video: p.video } }"
    )
    return state


async def test_clip_group_and_library_in_the_browser(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await env.person("Cora Coach", "cora@ashby.sch.uk", "ashby-primary", "coach")
    await env.person("Tia Teacher", "tia@ashby.sch.uk", "ashby-primary")
    await env.person("Bo Brook", "bo@brook.sch.uk", "brook-academy")  # another school, one trust
    tia_api = await env.signed_in("tia@ashby.sch.uk", capsys)
    cora_api = await env.signed_in("cora@ashby.sch.uk", capsys)
    data = clip(tmp_path, "lesson.mp4", seconds=6.0, width=320, height=180)
    video = await upload_with_consent(tia_api, data, "Fractions, week 2")
    ready = await wait_for(tia_api, video)
    assert ready["status"] == "ready", ready
    # Her session with her coach, as the home page starts one; its lesson attached by the admin.
    cora_id = (await cora_api.get("/api/me")).json()["id"]
    made = await tia_api.post(
        "/api/rooms", json={"title": "Fractions review", "with": cora_id, "as": "teacher"}
    )
    assert made.status_code == 201, made.text
    room = made.json()["id"]
    async with httpx.AsyncClient(base_url=env.base) as admin:
        attached = await admin.patch(
            f"/api/rooms/{room}",
            json={"video": video},
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert attached.status_code == 200, attached.text
    await tia_api.aclose()
    await cora_api.aclose()

    async with chromium() as browser:
        contexts = [
            await browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(3)
        ]
        tia = await signed_in_page(contexts[0], env, "tia@ashby.sch.uk", capsys)
        cora = await signed_in_page(contexts[1], env, "cora@ashby.sch.uk", capsys)
        bo = await signed_in_page(contexts[2], env, "bo@brook.sch.uk", capsys)
        bo_id = await bo.evaluate("() => document.body.dataset.person")

        # Tia opens her session from her home page and tags moments of her lesson.
        await expect(tia.locator("#clips-empty")).to_be_visible(timeout=WAIT)
        await tia.locator(".home-session").get_by_role("link", name="Open").click()
        await in_room(tia)
        await tia.get_by_label("Tag framework for this room").select_option("questioning")
        await expect(tia.locator(".tag-button")).to_have_count(5, timeout=WAIT)
        make = tia.get_by_role("button", name="Make a clip")
        await expect(make).to_be_visible(timeout=WAIT)
        await seek(tia, 1.0)
        await tag(tia, "1", "Why is a half bigger than a third?")
        await seek(tia, 1.5)
        await tag(tia, "4", "Three seconds of silence before anyone answers")
        await seek(tia, 5.5)
        await tag(tia, "2", "Is it a half?")  # outside the clip's range
        # The range: [ at 0.5 s, ] at 4.5 s (a range note, whose text she types).
        await seek(tia, 0.5)
        await tia.locator(".watch").focus()
        await tia.keyboard.press("[")
        await seek(tia, 4.5)
        await tia.keyboard.press("]")
        await expect(tia.locator("#timeline-list .note textarea:focus")).to_have_count(
            1, timeout=WAIT
        )
        await tia.keyboard.type("The whole exchange")
        await tia.keyboard.press("Enter")
        await expect(tia.locator("#timeline-list .note")).to_have_count(4, timeout=WAIT)

        # Make a clip: the range marked, the notes of that range ticked.
        await make.click()
        dialog = tia.get_by_role("dialog", name="Make a clip")
        await expect(dialog).to_be_visible()
        await expect(dialog.get_by_label("From")).to_have_value("0:00.5")
        await expect(dialog.get_by_label("To")).to_have_value("0:04.5")
        picks = dialog.locator("#clip-notes-pick input[type=checkbox]")
        await expect(picks).to_have_count(3)
        for i in range(3):
            await expect(picks.nth(i)).to_be_checked()
        await dialog.get_by_label("Title").fill(TITLE)
        await dialog.get_by_label("Description (optional)").fill("Year 5, fractions.")
        await dialog.get_by_role("button", name="Make the clip").click()
        made_link = dialog.locator("#clip-made")
        await expect(made_link).to_be_visible(timeout=WAIT)
        await made_link.click()

        # The clip page: cut from the lesson, its notes' times the clip's own.
        await expect(tia.locator("#clip-title")).to_have_text(TITLE, timeout=WAIT)
        clip_url = tia.url
        assert "/clips/" in clip_url
        await expect(tia.locator("body")).to_have_attribute("data-status", "ready", timeout=WAIT)
        notes = tia.locator("#clip-notes .clip-note")
        await expect(notes).to_have_count(3)
        await expect(notes.nth(0)).to_contain_text("0:00\u20130:04")  # an en dash
        await expect(notes.nth(0)).to_contain_text("The whole exchange")
        await expect(tia.locator("#clip-range")).to_contain_text("From 0:00.5 to 0:04.5")
        await expect(tia.locator("#shares-empty")).to_be_visible()

        # Cora starts a Film Club on her home page with Tia and Bo (brook-academy).
        await expect(cora.locator("#group-new")).to_be_visible(timeout=WAIT)
        await cora.get_by_label("Name", exact=True).fill("Film Club: questioning")
        for name in ("Tia", "Bo"):
            await cora.locator("#group-search").fill(name)
            await expect(cora.locator("#group-person")).not_to_have_value("", timeout=WAIT)
            await cora.get_by_role("button", name="Add to the group").click()
        await expect(cora.locator("#group-chosen li")).to_have_count(2)
        await cora.get_by_role("button", name="Start the group").click()
        group_row = cora.locator(".home-group")
        await expect(group_row).to_have_count(1, timeout=WAIT)
        await group_row.get_by_role("link", name="Film Club: questioning").click()
        await expect(cora.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT)
        group_url = cora.url
        assert "/g/" in group_url
        people = cora.locator("#group-people .group-person")
        await expect(people).to_have_count(3)
        await expect(people.filter(has_text="Bo Brook")).to_contain_text("brook-academy")
        await expect(people.filter(has_text="Cora Coach")).to_contain_text("facilitator")

        # Tia shares the clip with the group on its page.
        await ready_page(tia, clip_url)
        await expect(tia.locator("#share-group")).not_to_have_value("", timeout=WAIT)
        await tia.get_by_role("button", name="Share with the group").click()
        await expect(tia.locator(".clip-share")).to_contain_text(
            "Film Club: questioning", timeout=WAIT
        )

        # Bo, of the other school, finds it on the group's page and comments in its discussion.
        await ready_page(bo, env.base + "/")
        await expect(bo.locator(".home-group")).to_have_count(1, timeout=WAIT)
        await bo.locator(".home-group a").click()
        await expect(bo.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT)
        await expect(bo.locator("#group-leave")).to_be_visible()
        await expect(bo.locator("#add-form")).to_be_hidden()
        shared = bo.locator(".group-clip")
        await expect(shared).to_have_count(1)
        await expect(shared).to_contain_text(TITLE)
        await shared.get_by_role("button", name=f"Open the discussion of “{TITLE}”").click()
        await in_room(bo)
        await expect(bo.locator("#timeline-list .note")).to_have_count(3, timeout=WAIT)
        await expect(bo.get_by_role("button", name="Make a clip")).to_be_hidden()
        await bo.locator(".watch").focus()
        await bo.keyboard.press("n")
        await expect(bo.locator("#timeline-list .note textarea:focus")).to_have_count(
            1, timeout=WAIT
        )
        await bo.keyboard.type(COMMENT)
        await bo.keyboard.press("Enter")
        # Tia, opening the same discussion from the group's page, reads it under his name.
        await ready_page(tia, group_url)
        await tia.locator(".group-clip").get_by_role("button", name="Open").click()
        await in_room(tia)
        his = tia.locator(f'#timeline-list .note[data-author="{bo_id}"]')
        await expect(his).to_contain_text(COMMENT, timeout=WAIT)
        await expect(his).to_contain_text("Bo Brook")

        # A group session: Cora at the controls, Tia and Bo watch in sync.
        await ready_page(cora, group_url)
        await expect(cora.locator(".group-clip")).to_have_count(1, timeout=WAIT)
        await cora.get_by_role("button", name=f"Start a group session on “{TITLE}”").click()
        address = await cora.locator(".group-address").input_value(timeout=WAIT)
        assert "/r/" in address
        await cora.locator(".group-join").click()
        await in_room(cora)
        for page in (tia, bo):
            await page.goto(address)
            await in_room(page)
            await expect(page.locator("#play")).to_be_disabled(timeout=WAIT)  # they watch
        await seek(cora, 0.2)
        for page in (tia, bo):
            await page.wait_for_function(
                "() => { const p = window.cocoach.room.playback;"
                " return p.status === 'paused' && Math.abs(p.position - 0.2) < 0.05 }",
                timeout=WAIT,
            )
        await cora.locator("#play").click()
        for page in (tia, bo):
            await page.wait_for_function(
                "() => window.cocoach.room.playback.status === 'playing'", timeout=WAIT
            )
        await cora.locator("#play").click()  # pause
        for page in (cora, tia, bo):
            await page.wait_for_function(
                "() => window.cocoach.room.playback.status === 'paused'", timeout=WAIT
            )
        states = [await playback(page) for page in (cora, tia, bo)]
        assert states[0] == states[1] == states[2], states
        assert 0.2 <= float(str(states[0]["position"])) <= 4.0 + 1e-3, states

        # Tia publishes it; Bo finds it in the library by a tag.
        await ready_page(tia, clip_url)
        await tia.get_by_label("Summary: what to watch for").fill(
            "Three seconds of silence, and every hand goes up"
        )
        await tia.get_by_role("button", name="Publish to the trust library").click()
        await expect(tia.locator("#published")).to_be_visible(timeout=WAIT)
        await expect(tia.locator("#published-text")).to_contain_text("every hand goes up")

        await ready_page(bo, env.base + "/library")
        results = bo.locator("#library-results .library-entry")
        await expect(results).to_have_count(1, timeout=WAIT)
        await bo.get_by_role("button", name="Wait time ≥ 3 s", exact=True).click()
        await expect(
            bo.get_by_role("button", name="Wait time ≥ 3 s", exact=True)
        ).to_have_attribute("aria-pressed", "true")
        await expect(results).to_have_count(1, timeout=WAIT)
        await expect(results).to_contain_text(TITLE)
        await expect(results).to_contain_text("Tia Teacher")
        await expect(results).to_contain_text("0:04 long")
        await expect(results.locator('.clip-tags [data-tag="wait-time"]')).to_contain_text(
            "\u00d71"
        )  # one note with the tag
        await expect(results).to_contain_text("every hand goes up")
        # A tag the clip's notes do not carry (the closed question was outside its range).
        await bo.get_by_role("button", name="Closed question", exact=True).click()
        await expect(bo.locator("#library-count")).to_contain_text("No clip matches", timeout=WAIT)
        await bo.get_by_role("button", name="Closed question", exact=True).click()
        await expect(results).to_have_count(1, timeout=WAIT)
        await bo.locator("#library-q").fill("silenc")  # a word's prefix, in a carried note
        await expect(results).to_have_count(1, timeout=WAIT)
        await bo.screenshot(path=str(artifact("library-page.png")), full_page=True)
        await ready_page(cora, group_url)
        await cora.screenshot(path=str(artifact("group-page.png")), full_page=True)

        # Watch: a viewing room of his own, through the library.
        await ready_page(bo, env.base + "/library")
        await bo.get_by_role("button", name=f"Watch “{TITLE}”").click()
        try:
            await bo.wait_for_url("**/r/*", timeout=WAIT)
        except PlaywrightTimeout:
            said = await bo.locator(".library-entry p.error").inner_text()
            pytest.fail(f"Watch in the library did not open a room: {said}")
        await in_room(bo)
        await expect(bo.locator("#room-title")).to_have_text(TITLE, timeout=WAIT)
