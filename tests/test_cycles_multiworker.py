"""A coaching cycle's action steps across two real worker processes on one real Redis
(docs/cycles.md): typed on one worker they appear on the other, as the plan does; the cycle's
API reads them on either worker; a new session made through either worker starts with them;
an action with a forged author is refused and reaches nobody."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Array, Map

from tests.people_support import Person, sign_in_everywhere
from tests.support import SECRET, TIMEOUT, RedisServer, WorkerProcess, start_worker
from tests.yclient import YClient, ydoc


@pytest.fixture
def workers(tmp_path: Path, redis: RedisServer) -> Iterator[list[WorkerProcess]]:
    started = [start_worker(tmp_path / f"w{i}", redis.url, f"w{i}") for i in (1, 2)]
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


@contextlib.asynccontextmanager
async def people(
    workers: list[WorkerProcess],
    redis: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> AsyncIterator[tuple[Person, Person]]:
    """A teacher and a coach (the CLI adds them to the shared store), each signed in once
    on the first worker, their session cookie used on both."""
    monkeypatch.setenv("COCOACH_SECRET", SECRET)
    flags = ["--redis", redis.url]
    tag = uuid.uuid4().hex[:8]  # the Redis is shared by the whole run
    found = []
    async with contextlib.AsyncExitStack() as stack:
        for name, role in ((f"Tia {tag}", "teacher"), (f"Cora {tag}", "coach")):
            email = f"{name.split()[0].lower()}-{tag}@example.org"
            found.append(
                await sign_in_everywhere(
                    stack, workers, capsys, flags, name=name, email=email, role=role
                )
            )
        yield found[0], found[1]


def action(text: str, author: str, name: str, status: str = "planned") -> Map[Any]:
    return Map(
        {
            "text": text,
            "author": author,
            "authorName": name,
            "status": status,
            "created": time.time(),
            "evidence": Array([]),
        }
    )


def actions_of(client: YClient) -> Map[Any]:
    return client.doc.get("actions", type=Map)


def status_of(client: YClient, key: str) -> str | None:
    actions = actions_of(client)
    return actions[key].get("status") if key in actions else None


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


async def session_token(person: Person, base: str, room: str) -> str:
    minted = await person.on[base].post(f"/api/rooms/{room}/token")
    assert minted.status_code == 200, minted.text
    return str(minted.json()["token"])


async def cycle_actions(person: Person, base: str, cycle: str) -> list[dict[str, Any]]:
    answer = await person.on[base].get(f"/api/cycles/{cycle}")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["actions"])


async def new_cycle(teacher: Person, coach: Person, base: str) -> tuple[str, str]:
    """The teacher's cycle with the coach, and its first (planning) session's room."""
    made = await teacher.on[base].post(
        "/api/cycles",
        json={"focus": "Wait time", "framework": "questioning", "coaches": [coach.id]},
    )
    assert made.status_code == 201, made.text
    cycle = made.json()["id"]
    session = await teacher.on[base].post(
        f"/api/cycles/{cycle}/sessions", json={"kind": "planning"}
    )
    assert session.status_code == 201, session.text
    return cycle, session.json()["room"]


async def test_action_steps_cross_workers_and_carry_into_the_next_session(
    workers: list[WorkerProcess],
    redis: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    one, two = workers
    async with people(workers, redis, monkeypatch, capsys) as (tia, cora):
        cid, room = await new_cycle(tia, cora, one.base)
        tia_token = await session_token(tia, one.base, room)
        cora_token = await session_token(cora, two.base, room)
        async with (
            ydoc(one.base, room, tia_token) as teacher,
            ydoc(two.base, room, cora_token) as coach,
        ):
            # The coach writes on worker two; the teacher sees it on worker one.
            actions_of(coach)["a1"] = action("Count to five after asking", cora.id, cora.name)
            await coach.flush()
            await teacher.until(lambda: status_of(teacher, "a1") == "planned")
            seen = actions_of(teacher)["a1"]
            assert seen["text"] == "Count to five after asking"
            assert seen["author"] == cora.id and seen["authorName"] == cora.name
            assert list(seen["evidence"]) == []
            # The teacher moves it on, on worker one; the coach sees that on worker two.
            seen["status"] = "tried"
            await teacher.flush()
            await coach.until(lambda: status_of(coach, "a1") == "tried")
            assert actions_of(coach)["a1"]["author"] == cora.id  # its author kept
            assert teacher.denied.empty() and coach.denied.empty()

            # The cycle, read on either worker, has it with its status and its author.
            for person, worker in ((tia, one), (cora, two), (tia, two), (cora, one)):
                listed = await eventually(
                    lambda p=person, w=worker: cycle_actions(p, w.base, cid),
                    lambda got: [(a["id"], a["status"]) for a in got] == [("a1", "tried")],
                    f"the cycle's actions on {worker.worker_id}",
                )
                (only,) = listed
                assert only["author"] == cora.id and only["author_name"] == cora.name
                assert only["text"] == "Count to five after asking"

            # A second session, made through worker two while the first is still open.
            second = await cora.on[two.base].post(
                f"/api/cycles/{cid}/sessions", json={"kind": "observation"}
            )
            assert second.status_code == 201, second.text
            next_room = second.json()["room"]
            assert next_room != room
            assert [s["room"] for s in second.json()["cycle"]["sessions"]] == [room, next_room]

        # Worker one reads the cycle from its latest session at once: the session was announced
        # only once its carried actions were in the log.
        listed = await cycle_actions(tia, one.base, cid)
        assert [(a["id"], a["status"], a["author"]) for a in listed] == [("a1", "tried", cora.id)]
        assert listed[0]["author_name"] == cora.name
        # And a client on the new room, on either worker, opens with it from its first sync.
        for person, worker in ((tia, one), (cora, two)):
            tok = await session_token(person, worker.base, next_room)
            async with ydoc(worker.base, next_room, tok) as client:
                carried = actions_of(client)
                assert set(carried.keys()) == {"a1"}, f"{worker.worker_id}: {carried.to_py()}"
                assert carried["a1"]["status"] == "tried"
                assert carried["a1"]["author"] == cora.id
                assert carried["a1"]["text"] == "Count to five after asking"
                assert carried["a1"]["authorName"] == cora.name


async def test_a_forged_author_is_refused_and_reaches_no_other_worker(
    workers: list[WorkerProcess],
    redis: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    one, two = workers
    async with people(workers, redis, monkeypatch, capsys) as (tia, cora):
        cid, room = await new_cycle(tia, cora, one.base)
        tia_token = await session_token(tia, one.base, room)
        cora_token = await session_token(cora, two.base, room)
        async with ydoc(one.base, room, tia_token) as teacher:
            # On worker two, the coach writes an action in the teacher's name.
            async with ydoc(two.base, room, cora_token) as forger:
                actions_of(forger)["forged"] = action("Shout louder", tia.id, tia.name)
                await forger.flush()
                reason = await asyncio.wait_for(forger.denied.get(), TIMEOUT)
                assert "a new action's author must be you" in reason, reason
            # A later good action from worker two reaches worker one; the forged one never
            # does (a fresh client: the forger's own later edits would depend on the refused).
            async with ydoc(two.base, room, cora_token) as coach:
                assert "forged" not in actions_of(coach)
                actions_of(coach)["good"] = action("Wait five seconds", cora.id, cora.name)
                await coach.flush()
                await teacher.until(lambda: "good" in actions_of(teacher))
                assert coach.denied.empty()
            assert "forged" not in actions_of(teacher)

            # Worker one judges by what worker two wrote: the teacher may move the coach's
            # action on, but not take it over.
            async with ydoc(one.base, room, tia_token) as taker:
                actions_of(taker)["good"]["author"] = tia.id
                await taker.flush()
                reason = await asyncio.wait_for(taker.denied.get(), TIMEOUT)
                assert "its author cannot change" in reason, reason
            async with ydoc(two.base, room, cora_token) as coach:
                assert actions_of(coach)["good"]["author"] == cora.id

        # Neither worker's cycle shows the forged action, nor the taken-over author.
        for person, worker in ((tia, one), (cora, two)):
            listed = await eventually(
                lambda p=person, w=worker: cycle_actions(p, w.base, cid),
                lambda got: bool(got),
                f"the cycle's actions on {worker.worker_id}",
            )
            assert [(a["id"], a["author"]) for a in listed] == [("good", cora.id)]
