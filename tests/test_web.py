"""The page end to end (issue 6): a coach and a teacher in real headless Chromium, each in its
own browser context, in one room of a real embedded server. What one does, the other sees:
notes, the plan, replies, and the lesson paused on the same frame, read from the <video>."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, Page, expect

from server.library.clip import WEBM_VP8, ClipSpec
from server.sync.sqlite_store import SqliteStore
from server.sync.store import RoomRecord
from tests.clips import write_clip
from tests.support import TIMEOUT, Running, make_settings, serve_in_process, token
from tests.test_whep import FPS, ready_video
from tests.web_support import artifact, chromium, frame_number, settled_frame, wait_for_frame

SECONDS = 8
MEDIA = {"media_host_addresses": "127.0.0.1", "media_remote_networks": "loopback"}
WAIT = 3 * TIMEOUT * 1000  # ms, for Playwright's expectations
# The banner may show for only half a second: note that it did, whenever it did.
BANNER_WATCH = """() => {
  const banner = document.querySelector('#banner')
  window.__bannerShown = false
  new MutationObserver(() => { if (!banner.hidden) window.__bannerShown = true })
    .observe(banner, { attributes: true })
}"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "360p.webm"
    return write_clip(path, ClipSpec(seconds=SECONDS, fps=FPS, width=320, height=180), WEBM_VP8)


@pytest.fixture
async def lesson(tmp_path: Path, clip: Path) -> AsyncIterator[Running]:
    """Room `r1` watching lesson `v1`, coded with the questioning framework."""
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    await store.put_video(ready_video(tmp_path, "v1", clip, seconds=SECONDS))
    await store.create_room(
        RoomRecord(
            id="r1",
            title="Year 7 fractions",
            created=0.0,
            video="v1",
            framework="questioning",
        )
    )
    await store.close()
    async with serve_in_process(make_settings(tmp_path, **MEDIA)) as running:
        yield running


class PageErrors:
    """Uncaught errors and console errors of a page: a test ends with none."""

    def __init__(self, page: Page, who: str) -> None:
        self.who = who
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"{who}: {error}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{self.who}: console: {message.text}")


def invite(base: str, role: str, name: str, room: str = "r1") -> str:
    return f"{base}/r/{room}?token={token(room, role, name)}"


async def playback(page: Page) -> dict[str, object]:
    state = await page.evaluate("() => window.cocoach.room.playback")
    assert isinstance(state, dict)
    return state


async def test_coach_and_teacher_run_a_session(lesson: Running) -> None:
    base = lesson.base
    async with chromium() as browser:
        coach_context = await browser.new_context(viewport={"width": 1280, "height": 720})
        teacher_context = await browser.new_context(viewport={"width": 800, "height": 1180})
        coach = await coach_context.new_page()
        teacher = await teacher_context.new_page()
        errors = [PageErrors(coach, "coach"), PageErrors(teacher, "teacher")]
        await coach.goto(invite(base, "coach", "Cal"))
        await teacher.goto(invite(base, "teacher", "Tia"))

        # Both in the room, each seeing the other with their role.
        for page in (coach, teacher):
            await expect(page.locator("#room-title")).to_have_text("Year 7 fractions", timeout=WAIT)
            await expect(page.locator("#members .member")).to_have_count(2, timeout=WAIT)
        await expect(teacher.locator('#members .member[data-role="coach"]')).to_contain_text("Cal")
        await expect(coach.locator('#members .member[data-role="teacher"]')).to_contain_text("Tia")

        # The lesson arrives over WHEP: both show frame 0, paused.
        assert await wait_for_frame(coach, "n === 0") == 0
        assert await wait_for_frame(teacher, "n === 0") == 0

        # The coach marks the moment with the "open question" key and types the note.
        await coach.locator(".watch").focus()
        await coach.keyboard.press("1")
        note_text = coach.locator("#timeline-list .note textarea")
        await expect(note_text).to_be_focused(timeout=WAIT)
        await coach.keyboard.type("Open question: why is a half bigger?")
        await coach.keyboard.press("Enter")
        seen = teacher.locator("#timeline-list .note")
        await expect(seen).to_have_count(1, timeout=WAIT)
        await expect(seen).to_contain_text("Open question: why is a half bigger?", timeout=WAIT)
        await expect(seen.locator(".chip")).to_have_text("Open question")
        await expect(seen.locator(".note-author")).to_have_text("Cal")
        lane = teacher.locator('#lanes .lane[data-tag="open-question"]')
        await expect(lane.locator(".lane-count")).to_have_text("1")
        await expect(lane.locator(".mark")).to_have_count(1)

        # The coach writes in the plan; the teacher sees the words and the coach's cursor.
        await coach.keyboard.press("p")
        await coach.keyboard.type("Try think-pair-share after the first question.")
        plan = teacher.locator("#plan-editor .cm-content")
        await expect(plan).to_contain_text("Try think-pair-share after the first question.")
        await expect(teacher.locator("#plan-editor .cm-ySelectionInfo")).to_contain_text("Cal")
        await coach.keyboard.press("Escape")

        # The teacher replies to the note; the coach sees the reply.
        await seen.locator(".reply-input").fill("They guessed from the size of the 2.")
        await seen.locator(".reply-input").press("Enter")
        await expect(coach.locator("#timeline-list .note .replies")).to_contain_text(
            "They guessed from the size of the 2.", timeout=WAIT
        )

        # The teacher presses play; both pictures run. The coach pauses with the keyboard:
        # both stop on the same frame, the one the room's state names.
        await teacher.locator("#play").click()
        await wait_for_frame(coach, "n >= 20")
        await wait_for_frame(teacher, "n >= 20")
        await coach.locator(".watch").focus()
        await coach.keyboard.press("Space")
        await expect(teacher.locator("#play")).to_have_text("Play", timeout=WAIT)
        state = await playback(teacher)
        assert state["status"] == "paused"
        expected = int(float(str(state["position"])) * FPS + 0.001)
        assert await settled_frame(coach) == expected
        assert await settled_frame(teacher) == expected
        await expect(teacher.locator("#who-controls")).to_contain_text("Paused by Cal")

        # A frame step is shared too.
        await coach.keyboard.press(".")
        assert await wait_for_frame(teacher, f"n === {expected + 1}") == expected + 1
        assert await frame_number(coach) in (expected, expected + 1)
        assert await settled_frame(coach) == expected + 1

        await coach.screenshot(path=artifact("web-session-coach-1280x720.png"))
        await teacher.screenshot(path=artifact("web-session-teacher-800.png"), full_page=True)
        for page_errors in errors:
            assert page_errors.errors == []
        await coach_context.close()
        await teacher_context.close()


async def test_lost_connections_come_back_without_losing_typing(lesson: Running) -> None:
    base = lesson.base
    async with chromium() as browser:
        coach = await (await browser.new_context()).new_page()
        teacher = await (await browser.new_context()).new_page()
        await coach.goto(invite(base, "coach", "Cal"))
        await teacher.goto(invite(base, "teacher", "Tia"))
        for page in (coach, teacher):
            await expect(page.locator("#members .member")).to_have_count(2, timeout=WAIT)

        # The coach's document connection drops; what they type meanwhile arrives afterwards.
        await coach.evaluate("() => window.cocoach.shared.provider.disconnect()")
        await coach.locator("#plan-editor .cm-content").click()
        await coach.keyboard.type("Typed while offline.")
        await expect(coach.locator("#banner")).to_contain_text("Reconnecting", timeout=WAIT)
        await asyncio.sleep(0.3)
        await expect(teacher.locator("#plan-editor .cm-content")).not_to_contain_text("offline")
        await coach.evaluate("() => window.cocoach.shared.provider.connect()")
        await expect(teacher.locator("#plan-editor .cm-content")).to_contain_text(
            "Typed while offline.", timeout=WAIT
        )

        # The room connection drops: the page says so and joins again by itself.
        await coach.evaluate(BANNER_WATCH)
        await coach.evaluate("() => window.cocoach.room.ws.close()")
        await coach.wait_for_function("() => window.__bannerShown", timeout=WAIT)
        await expect(coach.locator("#banner")).to_be_hidden(timeout=WAIT)
        await expect(teacher.locator("#members .member")).to_have_count(2, timeout=WAIT)
        await coach.locator(".watch").focus()
        await coach.keyboard.press("Space")
        await expect(teacher.locator("#play")).to_have_text("Pause", timeout=WAIT)


@pytest.mark.parametrize(
    ("link", "message"),
    [
        ("/r/r1", "no access token"),
        ("/r/r1?token=not-a-jwt", "not valid"),
        ("/r/r1?token={expired}", "expired"),
        ("/r/r1?token={other_room}", "another room"),
        ("/r/nowhere?token={nowhere}", "does not exist"),
    ],
)
async def test_a_link_that_cannot_work_says_why(lesson: Running, link: str, message: str) -> None:
    url = lesson.base + link.format(
        expired=token("r1", "coach", "Cal", ttl=-60),
        other_room=token("r2", "coach", "Cal"),
        nowhere=token("nowhere", "coach", "Cal"),
    )
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(url)
        await expect(page.locator("#fatal")).to_be_visible(timeout=WAIT)
        await expect(page.locator("#fatal-text")).to_contain_text(message)


async def test_a_browser_without_webrtc_still_takes_notes(lesson: Running) -> None:
    async with chromium() as browser:
        context = await browser.new_context()
        await context.add_init_script("delete window.RTCPeerConnection")
        page = await context.new_page()
        await page.goto(invite(lesson.base, "teacher", "Tia"))
        await expect(page.locator("#stage-message")).to_contain_text("no WebRTC", timeout=WAIT)
        await page.locator(".watch").focus()
        await page.keyboard.press("2")
        await page.keyboard.type("Closed question")
        await expect(page.locator("#timeline-list .note")).to_have_count(1)


async def test_notes_are_edited_moved_to_and_deleted_and_observers_read(lesson: Running) -> None:
    base = lesson.base
    async with chromium() as browser:
        coach = await (await browser.new_context()).new_page()
        observer = await (await browser.new_context()).new_page()
        await coach.goto(invite(base, "coach", "Cal"))
        await observer.goto(invite(base, "observer", "Oli"))
        await expect(observer.locator("#members .member")).to_have_count(2, timeout=WAIT)

        # An observer watches and reads: no composer, no controls, a read-only plan.
        await expect(observer.locator("#composer")).to_contain_text("You can read the notes")
        await expect(observer.locator("#play")).to_be_disabled()
        await expect(observer.locator("#lock")).to_be_hidden()
        await expect(observer.locator("#plan-editor .cm-content")).to_have_attribute(
            "contenteditable", "false"
        )

        # The coach moves to 3 s and marks a range from there to 5 s with [ and a tag key.
        await coach.locator(".watch").focus()
        await expect(coach.locator("#play")).to_be_enabled(timeout=WAIT)
        await coach.evaluate("() => window.cocoach.seek(3)")
        await expect(coach.locator("#time-now")).to_have_text("0:03.00", timeout=WAIT)
        await coach.keyboard.press("[")
        await coach.evaluate("() => window.cocoach.seek(5)")
        await expect(coach.locator("#time-now")).to_have_text("0:05.00", timeout=WAIT)
        await coach.keyboard.press("3")
        await coach.keyboard.type("Pairs talk")
        await coach.keyboard.press("Escape")
        note = observer.locator("#timeline-list .note")
        await expect(note.locator(".note-time")).to_have_text("0:03\u20130:05", timeout=WAIT)
        await expect(note).to_contain_text("Pairs talk")
        await expect(note.locator(".reply")).to_be_hidden()

        # The coach adds a second tag to it; the observer sees both and the counts.
        mine = coach.locator("#timeline-list .note")
        await mine.hover()
        await mine.locator(".chip", has_text="Wait time").click()
        await expect(note.locator(".chip")).to_have_count(2, timeout=WAIT)
        lane = observer.locator('#lanes .lane[data-tag="wait-time"] .lane-count')
        await expect(lane).to_have_text("1")

        # Clicking a note's time moves the room there. (An observer may not read the video's
        # record, so its clock shows no frames.)
        await coach.evaluate("() => window.cocoach.seek(0)")
        await expect(observer.locator("#time-now")).to_have_text("0:00", timeout=WAIT)
        await mine.locator(".note-time").click()
        await expect(observer.locator("#time-now")).to_have_text("0:03", timeout=WAIT)

        # The export has the note.
        href = await coach.locator('#exports a[href*="export.csv"]').get_attribute("href")
        assert href is not None
        csv = await coach.request.get(base + href)
        assert csv.ok and "Pairs talk" in await csv.text()

        # Deleting asks once more, then the note is gone for everyone.
        await mine.locator(".note-delete").click()
        await expect(mine.locator(".note-delete")).to_have_text("Delete for everyone?")
        await mine.locator(".note-delete").click()
        await expect(note).to_have_count(0, timeout=WAIT)
        await expect(lane).to_have_text("0")
