"""A whole coaching cycle in headless Chromium (docs/cycles.md): the teacher starts it on her home
page with her coach; in a planning session both write action steps and each sees the other's
live; a recorded lesson is reviewed with tags, a note of it linked as an action's evidence and
the action marked tried; both score the lesson on the rubric, side by side; a second lesson is
reviewed; the cycle page charts two points per tag, and a piece of evidence opens its session
at its moment. A screenshot of the cycle page is kept in tests/artifacts/."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, expect

from server.cli import main as cli
from tests.support import TIMEOUT
from tests.test_people_api import Env, serve_people
from tests.video_support import clip, tus_create, tus_patch, wait_for
from tests.web_support import artifact, chromium

WAIT = 3 * TIMEOUT * 1000
TAGS = 5  # the questioning framework's


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    async with serve_people(tmp_path, monkeypatch) as running:
        yield running


async def signed_in_page(
    context: BrowserContext, env: Env, email: str, capsys: pytest.CaptureFixture[str]
) -> Page:
    """A page signed in through a login link (docs/people.md), as a person follows it."""
    capsys.readouterr()
    command = ["login-link", "--email", email, "--data", str(env.settings.data)]
    assert await asyncio.to_thread(cli, command) == 0
    link = capsys.readouterr().out.strip()
    page = await context.new_page()
    await page.goto(env.base + "/auth/link/" + link.rsplit("/", 1)[1])
    await page.get_by_role("button").first.click()
    await expect(page.locator("#me")).not_to_have_text("Loading…", timeout=WAIT)
    return page


async def open_session(page: Page, number: int) -> None:
    """From the cycle page into its session `number` (1-based), with one click."""
    await page.locator(".cycle-session").nth(number - 1).get_by_role("link", name="Open").click()
    await expect(page.locator("#room-title")).to_contain_text(f" {number}", timeout=WAIT)
    await expect(page.locator("#actions")).to_be_visible(timeout=WAIT)


async def new_session(page: Page, kind: str, lesson: str | None) -> None:
    sessions = page.locator(".cycle-session")
    before = await sessions.count()
    await page.locator("#session-kind").select_option(kind)
    if lesson is not None:
        await page.locator("#session-video").select_option(label=lesson)
    await page.get_by_role("button", name="Start the session").click()
    await expect(sessions).to_have_count(before + 1, timeout=WAIT)


async def tag(page: Page, key: str, text: str) -> None:
    """A tagged note at the moment on screen, as the tag's key makes one."""
    await page.locator(".watch").focus()
    await page.keyboard.press(key)
    await expect(page.locator("#timeline-list .note textarea:focus")).to_have_count(1, timeout=WAIT)
    await page.keyboard.type(text)
    await page.keyboard.press("Enter")
    await page.wait_for_function(
        "(text) => [...document.querySelectorAll('#timeline-list .note textarea')]"
        ".some((field) => field.value === text && document.activeElement !== field)",
        arg=text,
        timeout=WAIT,
    )


async def upload_with_consent(client: httpx.AsyncClient, data: bytes, title: str) -> str:
    """Her lesson, with the consent of everyone in it recorded (else it is kept, not shown)."""
    url = await tus_create(
        client, len(data), filename=f"{title}.mp4", title=title, consent="obtained"
    )
    answer = await tus_patch(client, url, 0, data)
    assert answer.status_code == 204, answer.text
    return url.split("/")[3]


# What the page knows when its evidence picker lacks a note (a failure's diagnosis).
PICKER_JS = """() => {
  try {
    return {
      options: [...document.querySelectorAll('#actions .evidence-add option')].map((o) => o.text),
      notes: window.cocoach.shared.timeline.toJSON(),
      lesson: window.cocoach.currentLesson(),
      start: window.cocoach.currentTime(),
      playback: window.cocoach.room.playback,
      actions: window.cocoach.shared.doc.getMap('actions').toJSON(),
      active: document.activeElement?.className,
      visible: document.visibilityState,
    }
  } catch (error) {
    return String(error)
  }
}"""


async def seek(page: Page, seconds: float) -> None:
    """The room to `seconds`, for everyone, as the scrubber moves it."""
    await page.evaluate(f"() => window.cocoach.seek({seconds})")
    await page.wait_for_function(
        f"() => Math.abs(window.cocoach.room.playback.position - {seconds}) < 0.05", timeout=WAIT
    )
    clock = await page.evaluate(
        "() => ({now: window.cocoach.currentTime(), info: window.cocoach.videoInfo,"
        " playback: window.cocoach.room.playback, video: window.cocoach.videoId})"
    )
    assert abs(clock["now"] - seconds) < 0.05, f"the page's clock after the seek: {clock}"


async def to_cycle(page: Page, cycle_url: str) -> None:
    await page.goto(cycle_url)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT)


async def test_a_whole_cycle_in_the_browser(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await env.person("Cora Coach", "cora@ashby.sch.uk", "ashby-primary", "coach")
    await env.person("Tia Teacher", "tia@ashby.sch.uk", "ashby-primary")
    tia_api = await env.signed_in("tia@ashby.sch.uk", capsys)
    lessons = []
    for title, seconds in (("Fractions, week 1", 2.0), ("Fractions, week 3", 3.0)):
        data = clip(tmp_path, f"{title}.mp4", seconds=seconds, width=320, height=180)
        video = await upload_with_consent(tia_api, data, title)
        ready = await wait_for(tia_api, video)
        assert ready["status"] == "ready", ready
        lessons.append(video)
    await tia_api.aclose()

    async with chromium() as browser:
        tia_context = await browser.new_context(viewport={"width": 1280, "height": 900})
        cora_context = await browser.new_context(viewport={"width": 1280, "height": 900})
        tia = await signed_in_page(tia_context, env, "tia@ashby.sch.uk", capsys)
        cora = await signed_in_page(cora_context, env, "cora@ashby.sch.uk", capsys)

        # Tia starts her cycle with Cora on her home page.
        await expect(tia.locator("#cycles-empty")).to_be_visible(timeout=WAIT)
        await tia.locator("#cycle-focus").fill("My questions only reach the same five pupils")
        await tia.locator("#cycle-framework").select_option("questioning")
        await tia.locator("#cycle-search").fill("Cora")
        await expect(tia.locator("#cycle-with")).not_to_have_value("", timeout=WAIT)
        await tia.locator("#cycle-criteria").fill("Half my questions open\nTen pupils answer")
        await tia.get_by_role("button", name="Start the cycle").click()
        row = tia.locator(".home-cycle")
        await expect(row).to_have_count(1, timeout=WAIT)
        await expect(row).to_contain_text("My questions only reach the same five pupils")
        await row.get_by_role("link", name="Open").click()
        await expect(tia.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT)
        cycle_url = tia.url
        assert "/c/c-" in cycle_url
        await expect(tia.locator("#cycle-people")).to_contain_text("Coach: Cora Coach")
        await expect(tia.locator("#criteria li")).to_have_count(2)

        # Cora has it on her home page too, as its coach.
        await cora.reload()
        await expect(cora.locator(".home-cycle")).to_contain_text("coach", timeout=WAIT)

        # The planning session: both write action steps; each sees the other's as typed.
        await new_session(tia, "planning", None)
        await open_session(tia, 1)
        await to_cycle(cora, cycle_url)
        await open_session(cora, 1)
        await tia.locator(".action-add input").fill("Draw names at random for every question")
        await tia.locator(".action-add button").click()
        await expect(cora.locator("#actions .action")).to_have_count(1, timeout=WAIT)
        await expect(cora.locator("#actions .action textarea")).to_have_value(
            "Draw names at random for every question", timeout=WAIT
        )
        await expect(cora.locator("#actions .action-by")).to_contain_text("Tia Teacher")
        await cora.locator(".action-add input").fill("Wait three seconds")
        await cora.locator(".action-add button").click()
        cora_step = tia.locator("#actions .action").nth(1)
        await expect(cora_step.locator("textarea")).to_have_value(
            "Wait three seconds", timeout=WAIT
        )
        # Cora goes on typing in her step; Tia sees it as she types.
        await (
            cora.locator("#actions .action")
            .nth(1)
            .locator("textarea")
            .press_sequentially(" after every question")
        )
        await expect(cora_step.locator("textarea")).to_have_value(
            "Wait three seconds after every question", timeout=WAIT
        )

        # The first lesson, reviewed: tags; a note linked as the first step's evidence.
        await to_cycle(tia, cycle_url)
        await new_session(tia, "review", "Fractions, week 1")
        await open_session(tia, 2)
        # What we agreed to try is in view from the first moment.
        await expect(tia.locator("#actions .action")).to_have_count(2, timeout=WAIT)
        await seek(tia, 1.5)
        await tag(tia, "1", "Why is a half bigger than a third?")
        await seek(tia, 0)
        await tag(tia, "2", "Is it a half?")
        await tag(tia, "2", "Who knows?")
        first = tia.locator("#actions .action").first
        try:
            await first.locator(".evidence-add").select_option(
                label="0:01 Why is a half bigger than a third?"
            )
        except Exception as exc:
            raise AssertionError(f"the evidence picker: {await tia.evaluate(PICKER_JS)}") from exc
        await expect(first.locator(".evidence-go")).to_contain_text("Why is a half", timeout=WAIT)
        await first.locator(".action-status").select_option("tried")

        # Both score the lesson, on the cycle page.
        for page, level in ((tia, "2"), (cora, "3")):
            await to_cycle(page, cycle_url)
            reach = page.locator('.lesson-scores tr[data-criterion="question-reach"]').first
            await reach.locator(".score-select").select_option(level)
            await expect(
                page.locator('.lesson-scores tr[data-criterion="question-reach"]').first
            ).to_contain_text(f"{level}", timeout=WAIT)
        await to_cycle(tia, cycle_url)
        reach = tia.locator('.lesson-scores tr[data-criterion="question-reach"]').first
        await expect(reach.locator(".score-cell").nth(1)).to_contain_text("3", timeout=WAIT)
        await expect(reach.locator(".score-cell").nth(1)).to_contain_text(
            "Questions reach most of the class"
        )

        # The second lesson.
        await new_session(tia, "review", "Fractions, week 3")
        await open_session(tia, 3)
        await tag(tia, "1", "What would happen if we doubled it?")
        await tag(tia, "1", "How do you know?")
        await tag(tia, "2", "Is that right?")

        # The cycle page: the steps with their evidence and status, two points per tag.
        await to_cycle(tia, cycle_url)
        steps = tia.locator("#cycle-actions .action")
        await expect(steps).to_have_count(2)
        await expect(steps.first).to_contain_text("Tried")
        await expect(steps.first.locator("a.evidence")).to_contain_text("Why is a half")
        await expect(tia.locator("#cycle-sessions .cycle-session")).to_have_count(3)
        dots = tia.locator("#rates-chart svg[viewBox] circle")
        await expect(dots).to_have_count(2 * TAGS, timeout=WAIT)
        await expect(tia.locator("#rates-chart svg[viewBox]")).to_contain_text("Open question")
        await expect(tia.locator("#rubric-chart svg[viewBox] circle")).to_have_count(2)
        table = tia.locator("#progress-tables table")
        await expect(table.locator("tbody tr")).to_have_count(2)
        await expect(table.locator("tbody tr").nth(1)).to_contain_text("per 10 min")
        await tia.screenshot(path=str(artifact("cycle-page.png")), full_page=True)

        # A piece of evidence opens its session, at its moment, on its lesson.
        await steps.first.locator("a.evidence").click()
        await expect(tia.locator("#room-title")).to_contain_text(" 2", timeout=WAIT)
        await tia.wait_for_function(
            f"() => window.cocoach?.room?.playback?.video === {lessons[0]!r}"
            " && Math.abs(window.cocoach.room.playback.position - 1.5) < 0.05",
            timeout=WAIT,
        )
        assert "#at=" not in tia.url

        # The printable report is one click from the cycle page.
        await to_cycle(tia, cycle_url)
        report = tia.locator("#cycle-report")
        href = await report.get_attribute("href")
        assert href is not None and href.endswith("/report.html")
        answer = await tia.request.get(env.base + href)
        assert answer.status == 200
        assert "My questions only reach the same five pupils" in await answer.text()
