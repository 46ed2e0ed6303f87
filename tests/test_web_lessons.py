"""A room with two lessons, in the page (docs/web.md, "Lessons"): the upload the room was made
with and a live lesson's recording. Each page shows the notes, marks and counts of the lesson on
screen only; the coach switches lessons for everyone; a new note names its lesson and author; and
a moment written in the plan is a link that moves the room there."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from playwright.async_api import ConsoleMessage, Page, expect
from pycrdt import Array, Map, Text

from server.documents.lessons import Lesson
from server.library.clip import WEBM_VP8, ClipSpec
from server.sync.sqlite_store import SqliteStore
from server.sync.store import RoomRecord
from tests.clips import write_clip
from tests.support import ADMIN_KEY, TIMEOUT, Running, make_settings, serve_in_process, token
from tests.test_web import MEDIA, WAIT, invite
from tests.test_whep import FPS, ready_video
from tests.web_support import artifact, chromium
from tests.yclient import ydoc

UPLOAD_SECONDS, RECORDING_SECONDS = 8, 6
UPLOAD_TITLE = "Fractions: halves and quarters"
RECORDING_TITLE = "Recorded live in 7B"
# The room was made (and its upload added) three days ago; the recording is from today.
ROOM_CREATED = time.time() - 3 * 86400
LIVE_LABEL = re.compile(r"^Live lesson, \d{1,2} \w{3} \d\d:\d\d$")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return (
        write_clip(
            folder / "upload.webm",
            ClipSpec(seconds=UPLOAD_SECONDS, fps=FPS, width=320, height=180),
            WEBM_VP8,
        ),
        write_clip(
            folder / "recording.webm",
            ClipSpec(seconds=RECORDING_SECONDS, fps=FPS, width=320, height=180),
            WEBM_VP8,
        ),
    )


def note(doc: Any, key: str, start: float, tag: str, text: str, video: str) -> None:
    """A note by Ada, who has left by the time the pages open: only `authorName` names her."""
    with doc.transaction():
        doc.get("timeline", type=Map)[key] = Map(
            {
                "start": start,
                "text": Text(text),
                "tags": Array([tag]),
                "author": "user:ada",
                "authorName": "Ada Lovelace",
                "created": time.time(),
                "replies": Array([]),
                "video": video,
            }
        )


@pytest.fixture
async def two_lessons(tmp_path: Path, clips: tuple[Path, Path]) -> AsyncIterator[Running]:
    """Room `r1` showing its upload `v1` (the admin's), which also holds `v2`, the recording of
    a live lesson Tia published (hers: the coach may read its record only while it is shown).
    Ada, a coach who has left, wrote one note on each."""
    upload, recording = clips
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    await store.put_video(
        msgspec.structs.replace(
            ready_video(tmp_path, "v1", upload, seconds=UPLOAD_SECONDS), title=UPLOAD_TITLE
        )
    )
    await store.put_video(
        msgspec.structs.replace(
            ready_video(tmp_path, "v2", recording, seconds=RECORDING_SECONDS),
            title=RECORDING_TITLE,
            owner="user:tia",
            room="r1",
        )
    )
    await store.create_room(
        RoomRecord(
            id="r1",
            title="Year 7 fractions",
            created=ROOM_CREATED,
            video="v1",
            framework="questioning",
        )
    )
    await store.close()
    async with serve_in_process(make_settings(tmp_path, **MEDIA)) as running:
        async with ydoc(running.base, "r1", token("r1", "coach", "Ada", sub="user:ada")) as ada:
            # The room is open, showing its upload. A live lesson's recording became its lesson
            # when the lesson ended, as the server does it; then the room went back to the upload.
            worker = running.server.config.app.state.worker
            await worker.show_lesson("r1", Lesson("v2", time.time(), "recording"))
            await worker.show_lesson("r1", Lesson("v1", time.time()))
            lessons = ada.doc.get("lessons", type=Map)
            await ada.until(lambda: len(lessons) == 2 and ada.meta.get("video") == "v1")
            note(ada.doc, "n1", 2.0, "open-question", "Asked why a half is bigger", "v1")
            note(ada.doc, "n2", 1.0, "closed-question", "Closed question on the recording", "v2")
            await ada.flush()
            timeline = ada.doc.get("timeline", type=Map)
            await ada.until(lambda: len(timeline) == 2)
        yield running


class PageErrors:
    """Uncaught errors and console errors of a page. Expected and left out: Chromium logs the
    404 of a lesson's record this token may not read (the switcher labels it by kind and date
    then), and WHEP's 404 for a DELETE of a viewer the server closed when the lesson changed."""

    def __init__(self, page: Page, who: str) -> None:
        self.who = who
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"{who}: {error}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        if "status of 404" in message.text and ("/api/videos/" in url or "/whep/" in url):
            return
        self.errors.append(f"{self.who}: console: {message.text} ({url})")


async def shown(page: Page, text: str, tag: str, other_tag: str) -> None:
    """The page shows exactly one note, `text`, and its lane: one mark, counts 1 and 0."""
    notes = page.locator("#timeline-list .note")
    await expect(notes).to_have_count(1, timeout=WAIT)
    await expect(notes).to_contain_text(text, timeout=WAIT)
    await expect(notes.locator(".note-author")).to_have_text("Ada Lovelace")
    await expect(page.locator(f'#lanes .lane[data-tag="{tag}"] .lane-count')).to_have_text("1")
    await expect(page.locator(f'#lanes .lane[data-tag="{other_tag}"] .lane-count')).to_have_text(
        "0"
    )
    await expect(page.locator("#lanes .mark")).to_have_count(1)
    await expect(page.locator("#scrub-marks .scrub-mark")).to_have_count(1)


async def options(page: Page) -> list[tuple[str, str]]:
    found = await page.locator("#lesson-select option").evaluate_all(
        "(all) => all.map((o) => [o.value, o.textContent])"
    )
    return [(str(value), str(text)) for value, text in found]


async def room_notes(base: str) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as http:
        answer = await http.get(
            "/api/rooms/r1/export.json", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert answer.status_code == 200, answer.text
        body = json.loads(answer.content)
    return {n["id"]: n for n in body["timeline"]}


async def test_each_lesson_shows_its_own_notes_and_the_coach_switches(
    two_lessons: Running,
) -> None:
    base = two_lessons.base
    async with chromium() as browser:
        coach_context = await browser.new_context(viewport={"width": 1280, "height": 720})
        teacher_context = await browser.new_context(viewport={"width": 800, "height": 1180})
        observer_context = await browser.new_context(viewport={"width": 1280, "height": 720})
        coach = await coach_context.new_page()
        teacher = await teacher_context.new_page()
        observer = await observer_context.new_page()
        errors = [PageErrors(coach, "coach"), PageErrors(teacher, "teacher")]
        await coach.goto(invite(base, "coach", "Cal"))
        await teacher.goto(invite(base, "teacher", "Tia"))
        await observer.goto(invite(base, "observer", "Oli"))

        # The upload is on screen: its note, mark and counts only, on every page. Ada has left;
        # her notes still carry her name.
        for page in (coach, teacher, observer):
            await shown(page, "Asked why a half is bigger", "open-question", "closed-question")

        # The switcher lists both lessons, oldest first, the one on screen marked. The coach may
        # not read the recording's record (Tia's video, not on screen): kind and date instead.
        select = coach.locator("#lesson-select")
        await expect(select).to_be_enabled(timeout=WAIT)
        await expect(select).to_have_value("v1")
        await expect(coach.locator("#lesson-select option")).to_have_count(2)
        await expect(coach.locator('#lesson-select option[value="v1"]')).to_have_text(
            f"{UPLOAD_TITLE} (showing)", timeout=WAIT
        )
        listed = await options(coach)
        assert [value for value, _ in listed] == ["v1", "v2"]
        assert LIVE_LABEL.match(listed[1][1]), listed
        await expect(coach.locator('label[for="lesson-select"]')).to_have_text("Lesson")
        # Tia published the recording: her page names it by its title.
        await expect(teacher.locator('#lesson-select option[value="v2"]')).to_have_text(
            RECORDING_TITLE, timeout=WAIT
        )
        await expect(teacher.locator("#lesson-select")).to_be_enabled()
        # An observer sees which lesson it is, but the coach or the teacher chooses it.
        await expect(observer.locator("#lesson-select")).to_be_disabled()
        await expect(observer.locator("#lesson-select")).to_have_value("v1")
        # The page's captions and summary are of the lesson on screen; the spreadsheet of all.
        vtt = await coach.locator('#exports a[href*="export.vtt"]').get_attribute("href")
        assert vtt is not None and vtt.endswith("&video=v1")
        csv = await coach.locator('#exports a[href*="export.csv"]').get_attribute("href")
        assert csv is not None and "video=" not in csv
        await expect(coach.locator("#time-total")).to_have_text("0:08", timeout=WAIT)
        await coach.screenshot(path=artifact("web-lessons-coach-1280x720.png"))

        # The coach shows the recording: every page shows its note, mark and counts, and
        # watches it (the room's playback names it; its length is the recording's).
        await select.select_option("v2")
        for page in (coach, teacher, observer):
            await shown(
                page, "Closed question on the recording", "closed-question", "open-question"
            )
            await expect(page.locator("#lesson-select")).to_have_value("v2", timeout=WAIT)
            await page.wait_for_function(
                "() => window.cocoach.room.playback?.video === 'v2'", timeout=WAIT
            )
        for page in (coach, teacher):
            await expect(page.locator("#time-total")).to_have_text("0:06", timeout=WAIT)
        # Now on screen, the recording's record is the coach's to read: its title shows.
        await expect(coach.locator('#lesson-select option[value="v2"]')).to_have_text(
            f"{RECORDING_TITLE} (showing)", timeout=WAIT
        )
        vtt = await teacher.locator('#exports a[href*="export.vtt"]').get_attribute("href")
        assert vtt is not None and vtt.endswith("&video=v2")

        # A note the coach adds now is the recording's, and names Cal.
        await coach.locator(".watch").focus()
        await coach.keyboard.press("4")
        await expect(coach.locator("#timeline-list .note.mine textarea")).to_be_focused(
            timeout=WAIT
        )
        await coach.keyboard.type("Waited for answers")
        await coach.keyboard.press("Enter")
        theirs = teacher.locator("#timeline-list .note", has_text="Waited for answers")
        await expect(theirs.locator(".note-author")).to_have_text("Cal", timeout=WAIT)
        await expect(teacher.locator("#timeline-list .note")).to_have_count(2)
        notes = await room_notes(base)
        added = [n for key, n in notes.items() if key not in ("n1", "n2")]
        assert len(added) == 1
        assert (added[0]["video"], added[0]["author_name"]) == ("v2", "Cal")
        assert added[0]["author"] == "user:cal" and added[0]["tags"] == ["wait-time"]
        assert (notes["n1"]["video"], notes["n2"]["video"]) == ("v1", "v2")
        # The room's record (what the admin page lists) follows the lesson being watched.
        async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as http:
            listed = await http.get(
                "/api/rooms/r1", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            )
            assert listed.json()["video"] == "v2"

        # A moment in the plan is a link: Tia clicks it and the room goes there for everyone.
        await coach.keyboard.press("p")
        await coach.keyboard.type("Look again at [0:03] together; not [1:75].")
        await coach.keyboard.press("Escape")
        moment = teacher.locator("#plan-editor .cm-moment")
        await expect(moment).to_have_text("[0:03]", timeout=WAIT)
        await expect(moment).to_have_attribute("role", "link")
        await expect(moment).to_have_count(1)  # [1:75] is not a time
        await moment.click()
        await expect(coach.locator("#time-now")).to_have_text("0:03.00", timeout=WAIT)
        await expect(observer.locator("#time-now")).to_have_text("0:03", timeout=WAIT)
        # With the cursor on it (the click put it there), Ctrl+Enter does the same.
        await coach.evaluate("() => window.cocoach.seek(1)")
        await expect(teacher.locator("#time-now")).to_have_text("0:01.00", timeout=WAIT)
        await teacher.keyboard.press("Control+Enter")
        await expect(coach.locator("#time-now")).to_have_text("0:03.00", timeout=WAIT)
        # An observer's click does not move the room: the page says who does.
        await observer.locator("#plan-editor .cm-moment").click()
        await expect(observer.locator(".toast").last).to_contain_text("coach or the teacher")

        # Back to the upload, from the teacher's page: its note again, for the coach too.
        await teacher.locator("#lesson-select").select_option("v1")
        await shown(coach, "Asked why a half is bigger", "open-question", "closed-question")
        await expect(coach.locator("#lesson-select")).to_have_value("v1", timeout=WAIT)

        await teacher.screenshot(path=artifact("web-lessons-teacher-800.png"), full_page=True)
        for page_errors in errors:
            assert page_errors.errors == []
        for context in (coach_context, teacher_context, observer_context):
            await context.close()
