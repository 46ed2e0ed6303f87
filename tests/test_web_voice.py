"""The conversation in the page (issue 22): real headless Chromium, each talker its own browser
whose fake microphone plays its own generated speech (espeak-ng, a different voice and words
per browser), a real embedded server on loopback. Two pages hear each other (the received
track's energy, from getStats), muting stops it, the speaking marker follows the talker, the
lesson dips while the other talks, the talk report fills in; a refused microphone leaves the
page working and listening; the coach lets an observer speak and takes it back."""

from __future__ import annotations

import asyncio
import re
import time
import wave
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from bench.voice import RATE, at_level, speak, to_int16
from server.library.clip import WEBM_VP8, ClipSpec
from server.sync.sqlite_store import SqliteStore
from server.sync.store import RoomRecord
from tests.clips import write_clip
from tests.support import SLOWNESS, TIMEOUT, Running, make_settings, serve_in_process
from tests.test_web import PageErrors, invite
from tests.test_whep import FPS, ready_video
from tests.web_support import FAKE_MEDIA_ARGS, artifact, chromium

SECONDS = 8
MEDIA = {"media_host_addresses": "127.0.0.1", "media_remote_networks": "loopback"}
WAIT = 3 * TIMEOUT * 1000  # ms, for Playwright's expectations
MEASURE = 2.0  # s of received audio per energy reading

# The received conversation's energy so far (inbound-rtp totalAudioEnergy), or null.
ENERGY_JS = """async () => {
  const pc = window.cocoach.conversation.voice.pc
  if (!pc) return null
  const stats = await pc.getStats()
  let energy = null
  stats.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'audio') energy = r.totalAudioEnergy ?? 0
  })
  return energy
}"""
VOLUME_JS = "() => document.querySelector('#lesson').volume"
# Ends a voice session from outside the page's own code (as the server does on a failover).
END_SESSION_JS = """async (location) => (await fetch(location, {
  method: 'DELETE', headers: { Authorization: `Bearer ${window.cocoach.token}` }
})).status"""

LINES = {
    "a": (
        "en+f3",
        [
            "So how did you feel the lesson went today",
            "What did you notice about the students in the back row",
            "Tell me more about the moment when the group work started",
        ],
    ),
    "b": (
        "en+m3",
        [
            "I think the start was good but the group work took too long",
            "They were talking about the football match most of the time",
            "Next time I will give them a clear question to answer first",
        ],
    ),
}


def speech_wav(path: Path, who: str) -> Path:
    """A microphone that talks all the time (Chromium loops the file): sentences with short
    breaths between them, at a talker's usual level."""
    voice, lines = LINES[who]
    gap = np.zeros(int(0.25 * RATE))
    parts: list[np.ndarray] = []
    for line in lines:
        parts += [at_level(speak(line, voice), -20.0), gap]
    pcm = to_int16(np.concatenate(parts))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return path


def talker_args(wav: Path) -> list[str]:
    return [*FAKE_MEDIA_ARGS, f"--use-file-for-fake-audio-capture={wav}"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "360p.webm"
    return write_clip(path, ClipSpec(seconds=SECONDS, fps=FPS, width=320, height=180), WEBM_VP8)


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("voices")
    return {who: speech_wav(folder / f"{who}.wav", who) for who in LINES}


@pytest.fixture
async def room(tmp_path: Path, clip: Path) -> AsyncIterator[Running]:
    """Room `r1` watching lesson `v1`."""
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    await store.put_video(ready_video(tmp_path, "v1", clip, seconds=SECONDS))
    await store.create_room(RoomRecord(id="r1", title="Year 7 fractions", created=0.0, video="v1"))
    await store.close()
    async with serve_in_process(make_settings(tmp_path, **MEDIA)) as running:
        yield running


async def open_page(
    browser: Browser, url: str, who: str, errors: list[PageErrors]
) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    errors.append(PageErrors(page, who))
    await page.goto(url)
    await expect(page.locator("#voice")).to_be_visible(timeout=WAIT)
    return context, page


async def energy(page: Page) -> float | None:
    value = await page.evaluate(ENERGY_JS)
    return None if value is None else float(value)


async def energy_rate(page: Page, seconds: float = MEASURE) -> float:
    """How fast the received conversation's energy grows (per second) over `seconds`."""
    first = await energy(page)
    start = time.monotonic()
    await asyncio.sleep(seconds)
    last = await energy(page)
    if first is None or last is None or last < first:
        return 0.0
    return (last - first) / (time.monotonic() - start)


async def hears(page: Page, floor: float) -> float:
    """Wait until the page receives sound (energy growing faster than `floor`); the rate."""
    deadline = time.monotonic() + 3 * TIMEOUT
    rate = 0.0
    while time.monotonic() < deadline:
        rate = await energy_rate(page)
        if rate > floor:
            return rate
    raise AssertionError(f"nothing heard: energy grows {rate:.2e}/s, wanted > {floor:.2e}/s")


async def goes_quiet(page: Page, ceiling: float) -> float:
    """Wait until the received energy grows slower than `ceiling`; the rate."""
    deadline = time.monotonic() + 3 * TIMEOUT
    rate = float("inf")
    while time.monotonic() < deadline:
        rate = await energy_rate(page)
        if rate < ceiling:
            return rate
    raise AssertionError(f"still heard: energy grows {rate:.2e}/s, wanted < {ceiling:.2e}/s")


def member(page: Page, role: str, name: str) -> Locator:
    return page.locator(f'#members .member[data-role="{role}"]', has_text=name)


async def join(page: Page, status: str) -> None:
    await page.locator("#voice-join").click()
    await expect(page.locator("#voice-status")).to_have_text(status, timeout=WAIT)
    await expect(page.locator("#voice-join")).to_have_text("Leave the conversation")


async def test_two_pages_talk_over_the_lesson(room: Running, voices: dict[str, Path]) -> None:
    base = room.base
    errors: list[PageErrors] = []
    async with chromium(talker_args(voices["a"])) as one, chromium(talker_args(voices["b"])) as two:
        _, coach = await open_page(one, invite(base, "coach", "Cora"), "coach", errors)
        _, teacher = await open_page(two, invite(base, "teacher", "Tia"), "teacher", errors)
        cora_there, tia_there = member(teacher, "coach", "Cora"), member(coach, "teacher", "Tia")
        cora_here, tia_here = member(coach, "coach", "Cora"), member(teacher, "teacher", "Tia")
        await expect(tia_there).to_be_visible(timeout=WAIT)
        await expect(cora_there).to_be_visible(timeout=WAIT)

        # Before anyone speaks, the page says what the room measures.
        for page in (coach, teacher):
            await expect(page.locator("#voice-notice")).to_have_text(
                "This room measures who talks when — never what is said. No audio is recorded."
            )
            await expect(page.locator("#voice-join")).to_have_text("Join the conversation")
            await expect(page.locator("#voice-duck")).to_be_checked()
        assert await coach.evaluate(VOLUME_JS) == 1

        # The teacher joins and mutes; the coach joins and talks.
        await join(teacher, "Your microphone is on.")
        await teacher.locator("#voice-mute").click()
        await expect(teacher.locator("#voice-status")).to_have_text(
            "You are muted (hold M to talk)."
        )
        await expect(teacher.locator("#voice-mute")).to_have_attribute("aria-pressed", "true")
        await join(coach, "Your microphone is on.")
        await expect(coach.locator("#voice-level")).to_be_visible()

        # The speaking marker: Cora talks, on both pages; Tia does not, and her mic is off.
        await expect(cora_there).to_have_class(re_word("speaking"), timeout=WAIT)
        await expect(cora_here).to_have_class(re_word("speaking"), timeout=WAIT)
        await expect(cora_there).to_have_class(re_word("mic-on"))
        await expect(tia_there).not_to_have_class(re_word("speaking"))
        await expect(tia_there).not_to_have_class(re_word("mic-on"))
        await expect(tia_here).not_to_have_class(re_word("mic-on"))
        # The coach's level meter moves with her voice.
        await coach.wait_for_function(
            "() => Number(document.querySelector('#voice-level').ariaValueNow) > 10",
            timeout=WAIT,
        )

        # The teacher hears the coach; the coach, whose only other talker is muted, nothing.
        loud = await hears(teacher, 1e-4)
        assert await energy_rate(coach) < loud / 10
        # The lesson dips on the teacher's page while the coach talks, not on the coach's own.
        await teacher.wait_for_function(f"() => ({VOLUME_JS})() < 0.3", timeout=WAIT)
        assert await coach.evaluate(VOLUME_JS) == 1
        await teacher.screenshot(path=artifact("voice-teacher.png"))

        # The other way round: the coach mutes with the M key, the teacher unmutes.
        await coach.locator(".watch").focus()
        await coach.keyboard.press("m")
        await expect(coach.locator("#voice-mute")).to_have_attribute("aria-pressed", "true")
        await teacher.locator("#voice-mute").click()
        await expect(tia_there).to_have_class(re_word("speaking"), timeout=WAIT)
        await expect(cora_there).not_to_have_class(re_word("speaking"), timeout=WAIT)
        await expect(cora_here).not_to_have_class(re_word("speaking"), timeout=WAIT)
        await expect(cora_there).not_to_have_class(re_word("mic-on"))
        # Muting stops it: what the teacher receives goes quiet; the coach hears the teacher.
        await goes_quiet(teacher, loud / 20)
        await hears(coach, 1e-4)
        await coach.wait_for_function(f"() => ({VOLUME_JS})() < 0.3", timeout=WAIT)
        # Back within a second of silence (give the detector's hangover a moment too).
        await teacher.wait_for_function(f"() => ({VOLUME_JS})() === 1", timeout=WAIT)

        # Push to talk: while muted, the coach holds M and is heard; released, muted again.
        await coach.keyboard.down("m")
        await expect(cora_there).to_have_class(re_word("mic-on"), timeout=WAIT)
        await coach.wait_for_timeout(600)
        await coach.keyboard.up("m")
        await expect(cora_there).not_to_have_class(re_word("mic-on"), timeout=WAIT)
        await expect(coach.locator("#voice-mute")).to_have_attribute("aria-pressed", "true")

        # The switch: without the dip the lesson stays at full volume while others talk.
        await coach.locator("#voice-duck").uncheck()
        await coach.wait_for_function(f"() => ({VOLUME_JS})() === 1", timeout=WAIT)
        await coach.wait_for_timeout(500)
        assert await coach.evaluate(VOLUME_JS) == 1
        await coach.locator("#voice-duck").check()
        await coach.wait_for_function(f"() => ({VOLUME_JS})() < 0.3", timeout=WAIT)

        # A camera: the teacher switches hers on; the coach sees a face beside the lesson.
        await teacher.locator("#voice-camera").click()
        await expect(teacher.locator("#voice-camera")).to_have_text("Camera: on")
        await expect(teacher.locator('#faces .face[data-user="me"]')).to_be_visible(timeout=WAIT)
        face = coach.locator("#faces .face video")
        await expect(face).to_have_count(1, timeout=WAIT)
        await coach.wait_for_function(
            "() => document.querySelector('#faces .face video')?.videoWidth > 0", timeout=WAIT
        )
        # Never over the lesson: the tile lies outside the picture.
        stage = await coach.locator(".stage").bounding_box()
        tile = await face.bounding_box()
        assert stage is not None and tile is not None
        assert tile["y"] >= stage["y"] + stage["height"] or tile["x"] >= stage["x"] + stage["width"]
        # And still in the conversation with it: the coach hears the teacher.
        await hears(coach, 1e-4)
        await coach.screenshot(path=artifact("voice-coach.png"))

        # The server ends the coach's session (as when the room's home fails over): the page
        # joins again by itself within 5 s, and hears the teacher again.
        old = await coach.evaluate("() => window.cocoach.conversation.voice.location")
        ended = await coach.evaluate(END_SESSION_JS, old)
        assert ended == 200
        started = time.monotonic()
        await coach.wait_for_function(
            "(old) => { const v = window.cocoach.conversation.voice\n"
            "return v.status === 'on' && v.location && v.location !== old }",
            arg=old,
            timeout=WAIT,
        )
        assert time.monotonic() - started < 5 * SLOWNESS
        await hears(coach, 1e-4)

        # The talk report, for the coach: both talked, each with a share of the talk.
        report = coach.locator("#talk-report")
        await expect(report).to_be_visible()
        await report.locator("summary").click()
        rows = report.locator(".talk-table tbody tr")
        await expect(rows).to_have_count(2, timeout=WAIT)
        await expect(report.locator(".talk-table")).to_contain_text("You")
        await expect(report.locator(".talk-table")).to_contain_text("Tia")
        await expect(report.locator(".talk-stretches")).to_contain_text("talked", timeout=WAIT)
        await expect(coach.locator("#lanes .talk-lane")).to_have_count(2, timeout=WAIT)
        await coach.screenshot(path=artifact("voice-talk-report.png"))

        # Leaving: the coach's marks go away on the teacher's page.
        await coach.locator("#voice-join").click()
        await expect(coach.locator("#voice-join")).to_have_text("Join the conversation")
        await expect(cora_there).not_to_have_class(re_word("mic-on"), timeout=WAIT)
    assert [e for error in errors for e in error.errors] == []


async def test_refused_microphone_and_an_observer_who_may_speak(
    room: Running, voices: dict[str, Path]
) -> None:
    base = room.base
    errors: list[PageErrors] = []
    async with AsyncExitStack() as stack:
        # The browser's permission prompt, answered "Block" (Chromium's fake prompt, set to
        # deny: the headless shell has no real prompt to refuse with).
        refusing = await stack.enter_async_context(
            chromium(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream=deny"])
        )
        talking = await stack.enter_async_context(chromium(talker_args(voices["b"])))
        _, coach = await open_page(refusing, invite(base, "coach", "Cleo"), "coach", errors)
        _, teacher = await open_page(talking, invite(base, "teacher", "Tia"), "teacher", errors)
        _, observer = await open_page(talking, invite(base, "observer", "Olu"), "observer", errors)
        olu = member(coach, "observer", "Olu")
        await expect(olu).to_be_visible(timeout=WAIT)

        await join(teacher, "Your microphone is on.")
        # The coach's microphone is refused: a clear message, and she listens.
        await coach.locator("#voice-join").click()
        status = coach.locator("#voice-status")
        await expect(status).to_contain_text("Your microphone is blocked", timeout=WAIT)
        await expect(status).to_contain_text("you can still listen, watch and write")
        await expect(status).to_contain_text("You are listening.", timeout=WAIT)
        await hears(coach, 1e-4)
        await expect(coach.locator("#voice-camera")).to_be_hidden()
        await expect(member(coach, "coach", "Cleo")).not_to_have_class(re_word("mic-on"))

        # Everything else works: a note, and the plan.
        await coach.locator(".watch").focus()
        await coach.keyboard.press("n")
        await expect(coach.locator("#timeline-list .note textarea")).to_be_focused(timeout=WAIT)
        await coach.keyboard.type("Wait time after the question")
        await coach.keyboard.press("Enter")
        await expect(teacher.locator("#timeline-list .note")).to_contain_text(
            "Wait time after the question", timeout=WAIT
        )
        await coach.keyboard.press("p")
        await coach.keyboard.type("Try think-pair-share. ")
        await expect(teacher.locator("#plan-editor")).to_contain_text(
            "think-pair-share", timeout=WAIT
        )
        # A space typed in the plan is a space, not the lesson's play key; M is a letter there.
        await coach.keyboard.type("Mm")
        await expect(teacher.locator("#plan-editor")).to_contain_text("think-pair-share. Mm")

        # The observer listens only, and sees no talk report.
        await expect(observer.locator("#voice-join")).to_have_text("Listen to the conversation")
        await expect(observer.locator("#talk-report")).to_be_hidden()
        await join(observer, "You are listening.")
        await hears(observer, 1e-4)
        await expect(observer.locator("#voice-mute")).to_be_hidden()

        # The coach lets the observer speak; the observer turns the microphone on.
        allow = olu.locator(".allow-speak")
        await expect(allow).to_have_text("Allow to speak")
        await expect(member(teacher, "observer", "Olu").locator(".allow-speak")).to_have_count(0)
        await allow.click()
        await expect(allow).to_have_attribute("aria-pressed", "true", timeout=WAIT)
        talk_too = observer.locator("#voice-mute")
        await expect(talk_too).to_have_text("Talk too (microphone)", timeout=WAIT)
        await talk_too.click()
        await expect(observer.locator("#voice-status")).to_have_text(
            "Your microphone is on.", timeout=WAIT
        )
        await expect(olu).to_have_class(re_word("mic-on"), timeout=WAIT)

        # Taken back: the observer is back to listening, microphone closed.
        await olu.locator(".allow-speak").click()
        await expect(olu.locator(".allow-speak")).to_have_attribute(
            "aria-pressed", "false", timeout=WAIT
        )
        await expect(observer.locator("#voice-status")).to_have_text(
            "You are listening.", timeout=WAIT
        )
        await expect(olu).not_to_have_class(re_word("mic-on"), timeout=WAIT)
        await hears(observer, 1e-4)
    # Chromium logs every refused request. Expected: the observer may not read the lesson's
    # record in the library (GET /api/videos/v1, 403): the page shows it without its length.
    expected = (
        "observer: console: Failed to load resource: the server responded with a status of 403"
    )
    assert [e for error in errors for e in error.errors if not e.startswith(expected)] == []


def re_word(word: str) -> re.Pattern[str]:
    """A class list holding `word`."""
    return re.compile(rf"(^|\s){re.escape(word)}(\s|$)")
