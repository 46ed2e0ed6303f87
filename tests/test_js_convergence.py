"""Convergence is tested, not assumed: stock JavaScript y-websocket clients and a Python client,
on two real workers sharing one Redis, edit the same document at once (two of them dropping
their connection and editing offline mid-way). Afterwards every client, a fresh reader on each
worker and the document stored in Redis hold the same content and the same state vector, with
every edit present exactly once.

The JavaScript side is tests/js/editor.mjs (a `WebsocketProvider` from the npm package
`y-websocket`); its dependencies are pinned in tests/js/package-lock.json."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import random
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pycrdt import Array, Doc, Map, Text

from server.sync.redis_broker import RedisBroker
from server.sync.redis_doclog import RedisDocLog
from tests.support import TIMEOUT, RedisServer, WorkerProcess, start_worker, token
from tests.test_multiworker import create_room
from tests.yclient import YClient, state_vector, ydoc

JS = Path(__file__).parent / "js"
EDITOR = JS / "editor.mjs"
EDITS = 30  # per client
FRAGMENT = re.compile(r"\[[a-z]+\.\d+\]")

StateVector = dict[int, int]


# ---- what a client holds, compared across clients ----------------------------------------


def decode_state_vector(data: bytes) -> StateVector:
    """{client: clock}; the encoding's order of clients is not fixed."""
    return state_vector(data)


@dataclass
class View:
    who: str
    plan: str
    timeline: dict[str, dict[str, Any]]
    state_vector: StateVector

    def content(self) -> tuple[str, dict[str, dict[str, Any]]]:
        return self.plan, self.timeline


def _note(value: dict[str, Any]) -> dict[str, Any]:
    end = value.get("end")
    return {
        "start": float(value["start"]),
        "end": None if end is None else float(end),
        "text": value["text"],
        "author": value["author"],
        "tags": None if value.get("tags") is None else list(value["tags"]),
    }


def view_of_doc(who: str, doc: Doc[Any]) -> View:
    plan = doc.get("plan", type=Text)
    timeline = doc.get("timeline", type=Map)
    notes = {}
    for key in sorted(timeline.keys()):
        note = timeline[key]
        notes[key] = _note({name: note.get(name) for name in ("start", "end", "text", "author")})
        tags = note.get("tags")
        notes[key]["tags"] = None if tags is None else list(tags)
    return View(who, str(plan), notes, decode_state_vector(doc.get_state()))


def view_of_report(report: dict[str, Any]) -> View:
    return View(
        f"js {report['name']}",
        report["plan"],
        {key: _note(value) for key, value in report["timeline"].items()},
        decode_state_vector(base64.b64decode(report["state_vector"])),
    )


def lacking(have: StateVector, *wanted: StateVector) -> StateVector:
    """What `have` lacks of the `wanted` state vectors: client -> the highest clock wanted."""
    missing: StateVector = {}
    for vector in wanted:
        for client, clock in vector.items():
            if have.get(client, 0) < clock:
                missing[client] = max(clock, missing.get(client, 0))
    return missing


def assert_same(views: list[View], context: str) -> None:
    reference = views[0]
    for other in views[1:]:
        if other.plan != reference.plan:
            raise AssertionError(
                f"{context}: plan of {other.who} differs from {reference.who}:\n"
                f"  {other.plan!r}\n  {reference.plan!r}"
            )
        if other.timeline != reference.timeline:
            keys = set(other.timeline) ^ set(reference.timeline)
            changed = {
                k
                for k in set(other.timeline) & set(reference.timeline)
                if other.timeline[k] != reference.timeline[k]
            }
            raise AssertionError(
                f"{context}: timeline of {other.who} differs from {reference.who}: "
                f"notes only on one side {sorted(keys)}, notes that differ {sorted(changed)}"
            )
        if other.state_vector != reference.state_vector:
            raise AssertionError(
                f"{context}: state vector of {other.who} {other.state_vector} differs from "
                f"{reference.who} {reference.state_vector}"
            )


# ---- what each client did, to check nothing was lost or doubled --------------------------


@dataclass
class Made:
    name: str
    sub: str
    fragments: list[str] = field(default_factory=list)
    deleted_fragments: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # id -> its latest text
    deleted_notes: list[str] = field(default_factory=list)

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> Made:
        made = report["made"]
        return cls(
            report["name"],
            report["sub"],
            made["fragments"],
            made["deleted_fragments"],
            made["notes"],
            made["deleted_notes"],
        )


def assert_every_edit_once(view: View, everyone: list[Made]) -> None:
    assert re.fullmatch(f"(?:{FRAGMENT.pattern})*", view.plan), f"plan is garbled: {view.plan!r}"
    counts = Counter(FRAGMENT.findall(view.plan))
    doubled = {fragment: n for fragment, n in counts.items() if n > 1}
    assert not doubled, f"fragments inserted more than once: {doubled}"
    for made in everyone:
        alive = set(made.fragments) - set(made.deleted_fragments)
        mine = {f for f in counts if f.startswith(f"[{made.name}.")}
        assert mine == alive, (
            f"{made.name}'s plan edits: missing {sorted(alive - mine)}, "
            f"should be gone {sorted(mine - alive)}"
        )
        notes = {key for key in view.timeline if key.startswith(f"{made.name}-")}
        assert notes == set(made.notes), (
            f"{made.name}'s notes: missing {sorted(set(made.notes) - notes)}, "
            f"should be gone {sorted(notes - set(made.notes))}"
        )
        assert not notes & set(made.deleted_notes)
        for key, text in made.notes.items():
            assert view.timeline[key]["text"] == text, f"note {key}: {view.timeline[key]}"
            assert view.timeline[key]["author"] == made.sub
    owners = {made.name for made in everyone}
    strays = [key for key in view.timeline if key.split("-", 1)[0] not in owners]
    assert not strays, f"notes nobody made: {strays}"


# ---- the JavaScript editors ---------------------------------------------------------------


def node_with_dependencies() -> str:
    node = shutil.which("node")
    assert node, "node is not installed: the convergence test runs stock y-websocket clients"
    if not (JS / "node_modules" / "y-websocket" / "package.json").exists():
        npm = shutil.which("npm")
        assert npm, "npm is not installed: needed once for tests/js (npm ci)"
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS,
            capture_output=True,
            text=True,
            timeout=20 * TIMEOUT,
        )
        assert done.returncode == 0, f"npm ci in tests/js failed:\n{done.stdout}\n{done.stderr}"
    return node


@dataclass
class Editor:
    name: str
    process: asyncio.subprocess.Process
    out: Path
    log: Path
    seed: int

    def _why(self) -> str:
        return f"editor {self.name} (seed {self.seed}): {self.log.read_text()[-2000:]}"

    async def expect(self, event: str, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {event!r} within {timeout} s from {self._why()}") from None
        if not line:
            code = await asyncio.wait_for(self.process.wait(), TIMEOUT)
            raise AssertionError(f"exited ({code}) before {event!r}: {self._why()}")
        message: dict[str, Any] = json.loads(line)
        assert message["event"] == event, f"{message} instead of {event!r} from {self._why()}"
        return message

    async def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def report(self) -> dict[str, Any]:
        code = await asyncio.wait_for(self.process.wait(), TIMEOUT)
        assert code == 0, f"exited with {code}: {self._why()}"
        report: dict[str, Any] = json.loads(self.out.read_text())
        return report


@contextlib.asynccontextmanager
async def editors(
    node: str, directory: Path, configs: list[dict[str, Any]]
) -> AsyncIterator[list[Editor]]:
    started: list[Editor] = []
    try:
        for config in configs:
            out = directory / f"{config['name']}.json"
            log = directory / f"{config['name']}.log"
            config = {**config, "out": str(out), "hardTimeoutMs": int(12 * TIMEOUT * 1000)}
            with log.open("wb") as stderr:
                process = await asyncio.create_subprocess_exec(
                    node,
                    str(EDITOR),
                    json.dumps(config),
                    cwd=JS,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=stderr,
                )
            started.append(Editor(config["name"], process, out, log, config["seed"]))
        yield started
    finally:
        for editor in started:
            if editor.process.returncode is None:
                editor.process.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(editor.process.wait(), TIMEOUT)


# ---- the Python editor --------------------------------------------------------------------


async def python_edits(client: YClient, made: Made, rng: random.Random) -> None:
    seq = 0
    for _ in range(EDITS):
        r = rng.random()
        alive = [f for f in made.fragments if f not in made.deleted_fragments]
        plan_text = str(client.plan)
        if r < 0.45 or (r < 0.55 and not alive) or (r >= 0.75 and not made.notes):
            fragment = f"[{made.name}.{seq}]"
            seq += 1
            boundaries = [0] + [i + 1 for i, c in enumerate(plan_text) if c == "]"]
            client.plan.insert(rng.choice(boundaries), fragment)
            made.fragments.append(fragment)
        elif r < 0.55:
            fragment = rng.choice(alive)
            at = plan_text.index(fragment)
            del client.plan[at : at + len(fragment)]
            made.deleted_fragments.append(fragment)
        elif r < 0.75:
            key = f"{made.name}-n{seq}"
            seq += 1
            client.timeline[key] = Map(
                {
                    "start": rng.randrange(36000) / 10 + 0.75,
                    "end": 36000.0,
                    "text": f"note {key}",
                    "tags": Array(["py"]),
                    "author": made.sub,
                    "created": time.time(),
                }
            )
            made.notes[key] = f"note {key}"
        elif r < 0.88:
            key = rng.choice(sorted(made.notes))
            text = f"note {key} edited {seq}"
            seq += 1
            client.timeline[key]["text"] = text
            made.notes[key] = text
        else:
            key = rng.choice(sorted(made.notes))
            del client.timeline[key]
            del made.notes[key]
            made.deleted_notes.append(key)
        await client.flush()
        await asyncio.sleep(rng.uniform(0.005, 0.04))
    assert client.denied.empty(), f"python edits refused: {client.denied.get_nowait()}"


# ---- the servers --------------------------------------------------------------------------


@pytest.fixture
def two_workers(tmp_path: Path, redis: RedisServer) -> Iterator[list[WorkerProcess]]:
    # A short log before compaction, so the stored document is a snapshot plus entries.
    started: list[WorkerProcess] = []
    try:
        for i in (1, 2):
            worker = start_worker(
                tmp_path / f"w{i}", redis.url, f"w{i}", COCOACH_DOC_COMPACT_AFTER="20"
            )
            started.append(worker)  # one at a time: each is cleaned up if the next fails
        yield started
    finally:
        for worker in started:
            worker.kill()


async def fresh_view(base: str, room: str, who: str) -> View:
    async with ydoc(base, room, token(room, "observer", "Reader")) as reader:
        return view_of_doc(who, reader.doc)


async def stored_view(redis_url: str, room: str) -> View:
    client = aioredis.Redis.from_url(redis_url)
    broker = RedisBroker(client)
    try:
        loaded = await RedisDocLog(client, broker).load(room)
    finally:
        await broker.close()
        await client.aclose()
    doc: Doc[Any] = Doc()
    if loaded.snapshot is not None:
        doc.apply_update(loaded.snapshot)
    for entry in loaded.entries:
        doc.apply_update(entry.update)
    return view_of_doc("stored in redis", doc)


async def until_view(
    make: Callable[[], Awaitable[View]],
    lacks: Callable[[View], StateVector],
    timeout: float,
    what: str,
) -> View:
    """Poll `make` until the view it gives lacks nothing (`lacks`: client -> the clock missing)."""
    deadline = time.monotonic() + timeout
    while True:
        view = await make()
        missing = lacks(view)
        if not missing:
            return view
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what} within {timeout} s: {view.who} lacks {missing} (client: up to clock); "
                f"it holds {view.state_vector}"
            )
        await asyncio.sleep(0.1)


# ---- the test -----------------------------------------------------------------------------


async def test_js_and_python_clients_on_two_workers_converge(
    tmp_path: Path, redis: RedisServer, two_workers: list[WorkerProcess]
) -> None:
    node = node_with_dependencies()
    one, two = two_workers
    room = create_room(one.base)
    seeds = {name: random.randrange(2**31) for name in ("ja", "jb", "py")}
    context = f"room {room}, seeds {seeds}"
    print(context)  # shown when the test fails: the seeds replay the same edits
    people = {"ja": ("coach", "Ann"), "jb": ("teacher", "Tess"), "py": ("coach", "Pia")}
    subs = {name: f"user:{person.lower()}" for name, (_, person) in people.items()}
    configs = [
        {
            "url": base,
            "room": room,
            "token": token(room, people[name][0], people[name][1]),
            "sub": subs[name],
            "name": name,
            "edits": EDITS,
            "seed": seeds[name],
            "pauseMs": [5, 40],
            # Both drop their connection mid-way, at different times, and edit offline.
            "disconnect": {"after": after, "edits": 6, "ms": 400},
        }
        for name, base, after in (("ja", one.base, 8), ("jb", two.base, 14))
    ]
    phase = 4 * TIMEOUT
    py_made = Made("py", subs["py"])
    async with (
        editors(node, tmp_path, configs) as (ja, jb),
        ydoc(two.base, room, token(room, "coach", "Pia")) as py,
    ):
        for editor in (ja, jb):
            await editor.expect("synced", phase)
        # Everyone edits at once: the two JS editors (one per worker) and the Python client.
        for editor in (ja, jb):
            await editor.say("go")
        await asyncio.wait_for(python_edits(py, py_made, random.Random(seeds["py"])), phase)
        edited = [
            decode_state_vector(base64.b64decode((await e.expect("edited", phase))["sv"]))
            for e in (ja, jb)
        ]
        edited.append(decode_state_vector(py.doc.get_state()))

        # Both workers hold every edit each client made (their own view of it at least)...
        for base, who in ((one.base, "worker 1"), (two.base, "worker 2")):
            await until_view(
                functools.partial(fresh_view, base, room, who),
                lambda view: lacking(view.state_vector, *edited),
                phase,
                f"{who} has not got every client's edits ({context})",
            )
        # ...so the clients may settle now and report what they hold.
        for editor in (ja, jb):
            await editor.say("finish")
        reports = []
        for editor in (ja, jb):
            await editor.expect("done", phase)
            reports.append(await editor.report())
        target = decode_state_vector(base64.b64decode(reports[0]["state_vector"]))
        with contextlib.suppress(TimeoutError):
            await py.until(lambda: decode_state_vector(py.doc.get_state()) == target, phase)
        python_view = view_of_doc("python client", py.doc)

    for report in reports:
        assert report["denied"] == [], f"{report['name']} was refused: {report['denied']}"
        assert not report["pending"], f"{report['name']} holds updates it cannot integrate"
        assert report["offline_edits"] >= 1, f"{report['name']} never edited offline"
        assert report["connects"] >= 2, f"{report['name']} never reconnected"

    readers = [
        await fresh_view(one.base, room, "fresh reader on worker 1"),
        await fresh_view(two.base, room, "fresh reader on worker 2"),
    ]
    stored = await until_view(
        functools.partial(stored_view, redis.url, room),
        # Equal, not just caught up: the stored document may hold nothing the readers lack.
        lambda view: (
            lacking(view.state_vector, readers[0].state_vector)
            or lacking(readers[0].state_vector, view.state_vector)
        ),
        phase,
        f"the stored document never caught up ({context})",
    )
    views = [*readers, *map(view_of_report, reports), python_view, stored]
    assert_same(views, context)

    everyone = [*map(Made.from_report, reports), py_made]
    assert_every_edit_once(readers[0], everyone)
    assert sum(len(m.fragments) + len(m.notes) for m in everyone) > EDITS  # edits really made
