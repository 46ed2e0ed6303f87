"""A coaching cycle's printable report with a real server (docs/cycles.md): one self-contained
HTML document holding the cycle as its page shows it, every value a person wrote escaped, read
by exactly those who may read the JSON export, and every read but the teacher's audited."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from pycrdt import Array, Map, Text

from server.cycles.model import ACTION_STATUSES
from server.http.cycle_report import clock, day
from tests.support import ADMIN_KEY, TIMEOUT
from tests.test_cycles_api import action, env  # noqa: F401  (env: the fixture)
from tests.test_lessons import note
from tests.test_people_api import Env, closing
from tests.video_support import clip, upload, wait_for
from tests.yclient import ydoc

FOCUS = "My questions reach <script>alert(1)</script> the same five pupils"
NOTE_TEXT = "Sam asked why <b>nobody</b> else answered"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


CAPTURED = ("h1", "dt", "dd", "th", "td", "li")


class Report(HTMLParser):
    """The report as a reader sees it: its heading, its facts, its tables, its list items."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.h1 = ""
        self.facts: dict[str, str] = {}
        self.tables: list[list[list[str]]] = []
        self.items: list[str] = []
        self._open: list[tuple[str, list[str]]] = []  # each open element, with its text
        self._term = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        if tag in CAPTURED:
            self._open.append((tag, []))

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1][0] != tag:
            return
        _, parts = self._open.pop()
        text = " ".join("".join(parts).split())
        if self._open:  # a list inside a cell: its text is the cell's too
            self._open[-1][1].append(f" {text} ")
        if tag == "h1":
            self.h1 = text
        elif tag == "dt":
            self._term = text
        elif tag == "dd":
            self.facts[self._term] = text
        elif tag in ("th", "td"):
            self.tables[-1][-1].append(text)
        elif tag == "li":
            self.items.append(text)

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][1].append(data)

    def table(self, first_heading: str) -> list[list[str]]:
        return next(t for t in self.tables if t[0][0] == first_heading)

    def row(self, first_heading: str, first_cell: str) -> list[str]:
        return next(r for r in self.table(first_heading) if r[0] == first_cell)


@dataclass
class Started:
    tia: httpx.AsyncClient
    cora: httpx.AsyncClient
    lee: httpx.AsyncClient
    sam: httpx.AsyncClient
    tia_id: str
    cora_id: str
    lee_id: str
    cycle: str
    video: str

    async def report(self, client: httpx.AsyncClient, query: str = "") -> httpx.Response:
        return await client.get(f"/api/cycles/{self.cycle}/report.html{query}")


@contextlib.asynccontextmanager
async def started(
    env: Env,  # noqa: F811  (the fixture's value)
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> AsyncIterator[Started]:
    """Tia's cycle with Cora as coach: a review of one lesson, a tagged note in it, an action
    step citing the note, and both their scores of the lesson (Cora's citing the note too).
    Lee (a leader of the school) and Sam (another trust) are not in it."""
    await env.person("Cora Coach", "cora@ashby.sch.uk", "ashby-primary", "coach")
    await env.person("Tia Teacher", "tia@ashby.sch.uk", "ashby-primary")
    await env.person("Lee Leader", "lee@ashby.sch.uk", "ashby-primary", "leader")
    await env.person("Sam South", "sam@carlton.sch.uk", "carlton-high")
    clients = [
        await env.signed_in(email, capsys)
        for email in (
            "tia@ashby.sch.uk",
            "cora@ashby.sch.uk",
            "lee@ashby.sch.uk",
            "sam@carlton.sch.uk",
        )
    ]
    tia, cora, lee, sam = clients
    async with closing(*clients):
        tia_id, cora_id, lee_id = [(await c.get("/api/me")).json()["id"] for c in (tia, cora, lee)]
        made = await tia.post(
            "/api/cycles",
            json={
                "focus": FOCUS,
                "framework": "questioning",
                "coaches": [cora_id],
                "success_criteria": ["Ten pupils answer in a lesson"],
            },
        )
        assert made.status_code == 201, made.text
        cycle = made.json()["id"]
        video = await upload(tia, clip(tmp_path, "lesson.mp4", seconds=1.0), "Lesson one")
        session = await tia.post(
            f"/api/cycles/{cycle}/sessions", json={"kind": "review", "video": video}
        )
        assert session.status_code == 201, session.text
        room = session.json()["room"]
        minted = (await tia.post(f"/api/rooms/{room}/token")).json()["token"]
        async with ydoc(env.base, room, minted) as writer:
            note(
                writer.doc,
                "n1",
                65.0,
                tia_id,
                video=video,
                text=Text(NOTE_TEXT),
                tags=Array(["open-question"]),
            )
            step = action("Ask by name, not hands up", tia_id)
            writer.doc.get("actions", type=Map)["a1"] = step
            step["evidence"].append("n1")
            await writer.flush()
            await written(tia, cycle)
        for client, level, evidence in ((cora, 3, ["n1"]), (tia, 2, [])):
            score = {"video": video, "criterion": "question-reach", "level": level}
            answer = await client.put(
                f"/api/cycles/{cycle}/scores", json={**score, "evidence": evidence}
            )
            assert answer.status_code == 200, answer.text
        yield Started(tia, cora, lee, sam, tia_id, cora_id, lee_id, cycle, video)


async def written(tia: httpx.AsyncClient, cycle: str) -> None:
    """Until the cycle shows the action step with its note as evidence."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        shown = (await tia.get(f"/api/cycles/{cycle}")).json()
        if shown["actions"] and "n1" in shown["evidence"]:
            return
        assert time.monotonic() < deadline, f"the action step never arrived: {shown}"
        await asyncio.sleep(0.05)


def test_dates_and_moments_read_as_people_write_them() -> None:
    assert day(0) == "1 January 1970"
    assert day(datetime(2026, 12, 5, 23, 59, tzinfo=UTC).timestamp()) == "5 December 2026"
    assert [clock(s) for s in (0, 5.9, 65, 600, 3725)] == [
        "0:00",
        "0:05",
        "1:05",
        "10:00",
        "1:02:05",
    ]


async def test_the_teachers_report(
    env: Env,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    async with started(env, capsys, tmp_path) as s:
        await wait_for(s.tia, s.video)  # its length: the rates need it
        cycle = (await s.tia.get(f"/api/cycles/{s.cycle}")).json()
        figures = (await s.tia.get(f"/api/cycles/{s.cycle}/progress")).json()["lessons"][0]
        rate = figures["tags"]["open-question"]["per_10_min"]
        assert rate is not None and rate > 0

        answer = await s.report(s.tia)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.headers["content-security-policy"] == CSP
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["content-disposition"].startswith("inline")
        body = answer.text
        # Escaped where a person wrote it, and nothing that runs or loads.
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
        assert "&lt;b&gt;nobody&lt;/b&gt;" in body
        page = Report(body)
        assert "script" not in page.tags and "b" not in page.tags
        assert not {"link", "img", "iframe", "object", "form"} & set(page.tags)
        assert "style" in page.tags and "http" not in body

        assert page.h1 == FOCUS
        assert page.facts == {
            "Teacher": "Tia Teacher",
            "Coaches": "Cora Coach",
            "Status": "active",
            "Created": day(cycle["created"]),
            "Framework": "Questioning",
            "Success criteria": "Ten pupils answer in a lesson",
        }
        session = cycle["sessions"][0]
        assert page.table("#")[1:] == [["1", "review", day(session["created"]), "Lesson one"]]
        assert page.table("Lesson")[1][0] == "Lesson one"

        # The action step, with its author and the note it cites, at its moment of the lesson.
        assert "Ask by name, not hands up" in body and "planned, by Tia Teacher" in body
        moment = f"Lesson one, 1:05 {NOTE_TEXT} [Open question]"
        assert page.items.count(moment) == 2  # cited by the action, and by Cora's score
        assert page.table("planned") == [list(ACTION_STATUSES), ["1", "0", "0", "0", "0"]]

        # Each scorer's level in a column of their own, with what the level looks like.
        heading = ["Criterion", "Tia Teacher (teacher)", "Cora Coach (coach)"]
        assert page.table("Criterion")[0] == heading
        reach = page.row("Criterion", "Who the questions reach")
        assert (
            reach[1]
            == "2 Some pupils beyond the volunteers are asked, but the same few answer most."
        )
        assert reach[2] == (
            "3 Questions reach most of the class (names, no hands up, talk partners). " + moment
        )
        assert page.row("Criterion", "Depth of questions and follow-up")[1:] == ["—", "—"]

        # Per lesson: each tag's count and rate per 10 minutes, and the framework's ratios.
        assert page.row("Tag", "Open question") == ["Open question", "1", f"{rate:.2f}"]
        assert page.row("Tag", "Closed question") == ["Closed question", "0", "0.00"]
        assert page.row("Ratio", "Open to closed questions") == ["Open to closed questions", "—"]

        download = await s.report(s.tia, "?download=1")
        assert download.status_code == 200
        assert download.headers["content-disposition"] == (
            f'attachment; filename="cocoach-cycle-{s.cycle}.html"'
        )


async def reads_by(client: httpx.AsyncClient, person: str, cycle: str) -> int:
    """How many reads of the cycle the audit log holds by that person."""
    found = await client.get(
        "/api/audit", params={"action": "cycle.read", "actor": person}, headers=ADMIN
    )
    assert found.status_code == 200, found.text
    return sum(e["detail"].get("cycle") == cycle for e in found.json()["events"])


async def test_who_reads_the_report(
    env: Env,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    async with started(env, capsys, tmp_path) as s:
        # Nobody outside the cycle, not even a leader of the school: as if it did not exist.
        for outsider in (s.lee, s.sam):
            assert (await s.report(outsider)).status_code == 404
        assert (await s.report(s.tia)).status_code == 200
        assert await reads_by(s.tia, s.tia_id, s.cycle) == 0  # the teacher's own reads are not

        before = await reads_by(s.tia, s.cora_id, s.cycle)  # scoring read the cycle too
        answer = await s.report(s.cora)
        assert answer.status_code == 200 and "Ask by name, not hands up" in answer.text
        assert await reads_by(s.tia, s.cora_id, s.cycle) == before + 1

        # The teacher shares the closed cycle with Lee, who then reads its report (audited).
        assert (await s.tia.post(f"/api/cycles/{s.cycle}/close")).status_code == 200
        shared = await s.tia.post(f"/api/cycles/{s.cycle}/share", json={"person": s.lee_id})
        assert shared.status_code == 200, shared.text
        answer = await s.report(s.lee)
        assert answer.status_code == 200
        assert Report(answer.text).facts["Status"] == "closed"
        assert "Ask by name, not hands up" in answer.text
        assert await reads_by(s.tia, s.lee_id, s.cycle) == 1
        assert (await s.report(s.sam)).status_code == 404


async def test_a_deleted_lesson_leaves_the_report(
    env: Env,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    async with started(env, capsys, tmp_path) as s:
        before = (await s.report(s.tia)).text
        assert "Lesson one" in before and "Sam asked why" in before
        assert (await s.tia.delete(f"/api/videos/{s.video}")).status_code == 204
        answer = await s.report(s.tia)
        assert answer.status_code == 200
        page = Report(answer.text)
        # Its title, its notes, its scores and its figures go; the cycle's work stays.
        assert "Lesson one" not in answer.text and "Sam asked why" not in answer.text
        assert page.table("#")[1][:2] == ["1", "review"] and page.table("#")[1][3] == ""
        assert not any(t[0][0] in ("Lesson", "Criterion", "Tag") for t in page.tables)
        assert "Ask by name, not hands up" in answer.text
