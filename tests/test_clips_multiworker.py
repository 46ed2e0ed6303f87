"""Clips, groups and the trust library across two real worker processes on one real Redis
(docs/groups.md): a share withdrawn on one worker cuts off a member watching its discussion
through the other, and refuses her from then on; the trust library is the same on every worker,
whichever worker published, unpublished or deleted a clip."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.media import PeerViewer, accept_answer, offer_viewer
from tests.people_support import Person, sign_in_everywhere
from tests.support import ADMIN_KEY, SECRET, TIMEOUT, RedisServer, WorkerProcess, start_worker
from tests.test_clips_api import upload
from tests.test_multiworker import lease_holder
from tests.test_people_api import ORGS
from tests.test_whep import post_offer
from tests.test_whep_multiworker import MEDIA_ENV
from tests.video_support import clip, wait_for

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
FPS = 30
START, END = 1.0, 3.0  # the clip: frames 30 to 89 of the lesson
SETTINGS_ENV = {"COCOACH_ORGS": ORGS, "COCOACH_DEFAULT_ORG": "ashby-primary"}


@pytest.fixture
def workers(tmp_path: Path, redis: RedisServer) -> Iterator[list[WorkerProcess]]:
    """Two workers of one trust's schools, sharing the Redis and the video library (media is
    served from whichever worker is a room's home), the transcoder at normal priority."""
    env = {
        **MEDIA_ENV,
        **SETTINGS_ENV,
        "COCOACH_LIBRARY": str(tmp_path / "library"),
        "COCOACH_INGEST_NICE": "0",
    }
    started = [start_worker(tmp_path / f"w{i}", redis.url, f"w{i}", **env) for i in (1, 2)]
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


@dataclass
class Trust:
    """Tia (teacher, Ashby), Cora (coach, Ashby), Bea (teacher, Brook: another school of the
    same trust), each signed in once on worker one, their cookie used on both workers; `tag`
    is this test's own word (the Redis is shared by the whole run)."""

    tia: Person
    cora: Person
    bea: Person
    tag: str


@contextlib.asynccontextmanager
async def trust_of_three(
    workers: list[WorkerProcess],
    redis: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> AsyncIterator[Trust]:
    for name, value in {**SETTINGS_ENV, "COCOACH_SECRET": SECRET}.items():  # what the CLI reads
        monkeypatch.setenv(name, value)
    flags = ["--redis", redis.url]
    tag = uuid.uuid4().hex[:8]
    found = []
    async with contextlib.AsyncExitStack() as stack:
        for first, org, role in (
            ("Tia", "ashby-primary", "teacher"),
            ("Cora", "ashby-primary", "coach"),
            ("Bea", "brook-academy", "teacher"),
        ):
            email = f"{first.lower()}-{tag}@example.org"
            person = await sign_in_everywhere(
                stack,
                workers,
                capsys,
                flags,
                name=f"{first} {tag}",
                email=email,
                role=role,
                org=org,
            )
            assert person.org == org, person
            found.append(person)
        yield Trust(found[0], found[1], found[2], tag)


async def eventually(
    read: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], what: str
) -> Any:
    """Read until `ok` holds, within the tests' scaled TIMEOUT; the last reading."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        got = await read()
        if ok(got):
            return got
        assert time.monotonic() < deadline, f"{what}: still {got!r} after {TIMEOUT} s"
        await asyncio.sleep(0.05)


async def lesson_clip(t: Trust, base: str, tmp_path: Path, consent: str) -> dict[str, Any]:
    """Tia's lesson (a generated, numbered 4 s clip) uploaded through `base` with `consent`
    and ingested, and a clip of it (START to END) cut through `base`, its media ready."""
    tia = t.tia.on[base]
    data = clip(tmp_path, "lesson.mp4", seconds=4.0, width=320, height=180)
    video = await upload(tia, data, f"Fractions {t.tag}", consent)
    assert (await wait_for(tia, video))["status"] == "ready"
    made = await tia.post(
        "/api/clips",
        json={
            "video": video,
            "start": START,
            "end": END,
            "title": f"Wait time {t.tag}",
            "description": "Hands down, names on sticks",
        },
    )
    assert made.status_code == 201, made.text
    cut: dict[str, Any] = made.json()
    media = await wait_for(tia, cut["media"])
    assert media["status"] == "ready", media
    return cut


async def minted(person: Person, base: str, room: str) -> httpx.Response:
    return await person.on[base].post(f"/api/rooms/{room}/token")


async def whep(base: str, room: str, tok: str) -> tuple[PeerViewer, httpx.Response]:
    """A real aiortc viewer offered to the room's WHEP endpoint on `base`, with `tok`; it is
    connected when the answer is 201 (the caller closes it either way)."""
    viewer, offer = await offer_viewer()
    response = await post_offer(base, room, offer, tok)
    if response.status_code == 201:
        await accept_answer(viewer, response.text)
    return viewer, response


async def cut_off(viewer: PeerViewer) -> None:
    """Until the server has ended every track of the viewer (RTCP BYE), within TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while not all(task.done() for task in viewer._tasks):
        assert time.monotonic() < deadline, (
            f"the viewer was not cut off: still receiving, last frames {viewer.numbers[-8:]}"
        )
        await asyncio.sleep(0.05)


async def test_a_withdrawn_share_cuts_off_its_viewers_on_every_worker(
    workers: list[WorkerProcess],
    redis: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    one, two = workers
    async with trust_of_three(workers, redis, monkeypatch, capsys) as t:
        cut = await lesson_clip(t, one.base, tmp_path, "obtained")
        made = await t.cora.on[one.base].post(
            "/api/groups", json={"name": f"Film club {t.tag}", "members": [t.tia.id, t.bea.id]}
        )
        assert made.status_code == 201, made.text
        group = made.json()["id"]
        shared = await t.tia.on[one.base].post(
            f"/api/clips/{cut['id']}/shares", json={"group": group}
        )
        assert shared.status_code == 201, shared.text
        room = shared.json()["room"]

        # Bea, of another school, opens the discussion on worker two and watches it there.
        bea = t.bea.on[two.base]
        watch = await bea.post(f"/api/clips/{cut['id']}/watch", json={"via": group})
        assert watch.status_code == 200 and watch.json() == {"room": room}, watch.text
        token = await minted(t.bea, two.base, room)
        assert token.status_code == 200 and token.json()["role"] == "teacher", token.text
        bea_token = token.json()["token"]
        viewer, answered = await whep(two.base, room, bea_token)
        try:
            assert answered.status_code == 201, answered.text
            await viewer.wait_for(lambda v: v.last is not None, what="the clip's first frame")
            assert lease_holder(redis, room) == "w2"  # her media comes from worker two
            first = viewer.numbers[0]
            assert first is not None and abs(first - START * FPS) <= 1, viewer.numbers[:5]

            # Tia withdraws the share on worker one: Bea's viewer on worker two is cut off.
            withdrawn = await t.tia.on[one.base].delete(f"/api/clips/{cut['id']}/shares/{group}")
            assert withdrawn.status_code == 204, withdrawn.text
            await cut_off(viewer)
            seen = list(viewer.numbers)
            await asyncio.sleep(0.5)
            assert viewer.numbers == seen, "frames came after the cut"
            assert None not in seen, seen
            assert all(START * FPS - 1 <= (n or 0) < END * FPS for n in seen), seen
        finally:
            await viewer.close()

        # The cut is on record, with its reason.
        async def unwatched() -> list[str]:
            answer = await t.tia.on[one.base].get(
                "/api/audit", params={"video": cut["media"]}, headers=ADMIN
            )
            assert answer.status_code == 200, answer.text
            events = answer.json()["events"]
            return [e["detail"].get("reason") for e in events if e["action"] == "video.unwatch"]

        reasons = await eventually(unwatched, bool, "the viewer's video.unwatch")
        assert reasons == ["the clip's share ended"], reasons

        # From now on, on either worker: her token no longer opens the room's media, no new
        # token is minted for her, and the clip is not hers to see.
        for worker in (two, one):
            again, refused = await whep(worker.base, room, bea_token)
            await again.close()
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "forbidden", refused.text
            assert "no longer" in refused.json()["error"]["message"]
            assert (await minted(t.bea, worker.base, room)).status_code == 404
            on = t.bea.on[worker.base]
            assert (await on.get(f"/api/clips/{cut['id']}")).status_code == 404
            again_watch = await on.post(f"/api/clips/{cut['id']}/watch", json={"via": group})
            assert again_watch.status_code == 404, again_watch.text
            listed = (await on.get(f"/api/groups/{group}")).json()
            assert listed["clips"] == [], listed


async def test_the_library_is_the_same_on_every_worker(
    workers: list[WorkerProcess],
    redis: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    one, two = workers
    async with trust_of_three(workers, redis, monkeypatch, capsys) as t:
        cut = await lesson_clip(t, one.base, tmp_path, "not_obtained")
        clip_id = cut["id"]

        async def found(person: Person, base: str) -> list[str]:
            answer = await person.on[base].get("/api/library", params={"q": t.tag})
            assert answer.status_code == 200, answer.text
            return [e["clip"] for e in answer.json()["entries"]]

        async def shows(person: Person, worker: WorkerProcess, want: list[str], what: str) -> None:
            """The search on `worker` finds `want`, within TIMEOUT."""
            await eventually(
                functools.partial(found, person, worker.base),
                lambda got: got == want,
                f"{what}, on {worker.worker_id}",
            )

        async def publish(base: str) -> None:
            answer = await t.tia.on[base].post(
                "/api/library", json={"clip": clip_id, "summary": "Names drawn at random"}
            )
            assert answer.status_code == 201, answer.text

        # Not before consent is recorded, on either worker.
        for worker in (one, two):
            refused = await t.tia.on[worker.base].post("/api/library", json={"clip": clip_id})
            assert refused.status_code == 403 and "consent_missing" in refused.text, refused.text
        changed = await t.tia.on[two.base].patch(
            f"/api/videos/{cut['video']}", json={"consent": "obtained"}, headers=ADMIN
        )
        assert changed.status_code == 200, changed.text

        # Published on worker one: found on worker two, by another school of the trust.
        await publish(one.base)
        await shows(t.bea, two, [clip_id], "published on one, on two")
        # On worker one too: its own index hears of it through the broker, as every worker's.
        await shows(t.cora, one, [clip_id], "published on one")
        entry = (await t.bea.on[two.base].get("/api/library", params={"q": "sticks"})).json()
        assert clip_id in [e["clip"] for e in entry["entries"]]  # the description's words

        # Unpublished on worker two: gone on worker one.
        assert (await t.tia.on[two.base].delete(f"/api/library/{clip_id}")).status_code == 204
        await shows(t.bea, one, [], "unpublished on two, on one")
        assert await found(t.cora, two.base) == []

        # Published again (on worker two), then deleted on worker one: gone from both.
        await publish(two.base)
        for person, worker in ((t.bea, one), (t.cora, two)):
            await shows(person, worker, [clip_id], "published again")
        assert (await t.tia.on[one.base].delete(f"/api/clips/{clip_id}")).status_code == 204
        for worker in (one, two):
            for person in (t.tia, t.cora, t.bea):
                await shows(person, worker, [], "deleted")
                assert (
                    await person.on[worker.base].get(f"/api/clips/{clip_id}")
                ).status_code == 404
            assert (await t.tia.on[worker.base].get("/api/clips")).json()["clips"] == []
            media = await t.tia.on[worker.base].get(f"/api/videos/{cut['media']}")
            assert media.status_code == 404, media.text
