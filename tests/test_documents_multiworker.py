"""Shared documents across real worker processes on one real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pycrdt import Array, Doc, Map, Text

from server.sync.redis_broker import RedisBroker
from server.sync.redis_doclog import RedisDocLog
from tests.support import (
    TIMEOUT,
    RedisServer,
    WorkerProcess,
    redis_or_cluster,  # noqa: F401  (the `redis` fixture: one Redis, a cluster)
    start_worker,
    token,
)
from tests.test_multiworker import create_room, workers  # noqa: F401  (fixture)
from tests.yclient import state_vector, ydoc


def note(start: float, author: str) -> Map[Any]:
    return Map({"start": start, "text": "t", "tags": Array([]), "author": author, "created": 1.0})


async def stored_doc(redis: RedisServer, room: str) -> Doc[Any]:
    client = redis.async_client()
    try:
        loaded = await RedisDocLog(client, RedisBroker(client)).load(room)
    finally:
        await client.aclose()
    doc: Doc[Any] = Doc()
    doc.get("plan", type=Text)
    doc.get("timeline", type=Map)
    doc.get("meta", type=Map)
    for update in [loaded.snapshot, *(e.update for e in loaded.entries)]:
        if update is not None:
            doc.apply_update(update)
    return doc


async def test_edits_cross_workers_and_reach_the_log(
    workers: list[WorkerProcess],  # noqa: F811
    redis: RedisServer,
) -> None:
    one, two = workers
    room = create_room(one.base)
    async with (
        ydoc(one.base, room, token(room, "coach", "Ann")) as ann,
        ydoc(two.base, room, token(room, "teacher", "Tess")) as tess,
    ):
        for i in range(20):
            ann.plan += f"a{i} "
            tess.timeline[f"t{i}"] = note(float(i), "user:tess")
            await ann.flush()
            await tess.flush()
        await ann.until(lambda: len(ann.timeline) == 20)
        await tess.until(lambda: str(tess.plan).count("a") == 20)
        assert state_vector(ann.doc.get_state()) == state_vector(tess.doc.get_state())
        await asyncio.sleep(0.3)
        stored = await stored_doc(redis, room)
        assert str(stored.get("plan", type=Text)) == str(ann.plan)
        assert len(stored.get("timeline", type=Map)) == 20


async def test_a_killed_worker_loses_no_edit(
    tmp_path: Path,
    workers: list[WorkerProcess],  # noqa: F811
    redis: RedisServer,
) -> None:
    one, two = workers
    room = create_room(one.base)
    async with ydoc(two.base, room, token(room, "teacher", "Tess")) as tess:
        async with ydoc(one.base, room, token(room, "coach", "Ann")) as ann:
            ann.plan += "before the crash. "
            await ann.flush()
            await tess.until(lambda: "before" in str(tess.plan))
            one.crash()
            # Ann keeps typing while her worker is gone ...
            ann.plan += "typed while offline. "
            ann.timeline["offline"] = note(3.0, "user:ann")
            offline = ann.doc.get_update()
        # ... and reconnects to the surviving worker with the same document.
        async with ydoc(two.base, room, token(room, "coach", "Ann")) as again:
            again.doc.apply_update(offline)
            await again.flush()
            again._outbox.clear()
            # The y-websocket handshake sends what the server lacks; do it explicitly here.
            await again.send_raw(bytes([0, 1]) + _var(again.doc.get_update()))
            await tess.until(lambda: "offline" in tess.timeline and "offline" in str(tess.plan))
        three = start_worker(tmp_path / "w3", redis.url, "w3")
        try:
            async with ydoc(three.base, room, token(room, "observer", "Obi")) as obi:
                assert str(obi.plan) == "before the crash. typed while offline. "
                assert "offline" in obi.timeline
        finally:
            three.kill()
        await asyncio.sleep(0.3)
        stored = await stored_doc(redis, room)
        assert str(stored.get("plan", type=Text)) == "before the crash. typed while offline. "


def _var(data: bytes) -> bytes:
    length, out = len(data), bytearray()
    while length > 0x7F:
        out.append(0x80 | (length & 0x7F))
        length >>= 7
    out.append(length)
    return bytes(out) + data


async def test_lost_announcements_are_filled_from_the_log(
    tmp_path: Path, redis: RedisServer
) -> None:
    # Both workers drop 5% of the pub/sub messages they receive (the test switch).
    lossy = [
        start_worker(tmp_path / f"w{i}", redis.url, f"lossy{i}", COCOACH_TEST_DROP_PUBSUB="0.05")
        for i in (1, 2)
    ]
    try:
        room = create_room(lossy[0].base)
        async with (
            ydoc(lossy[0].base, room, token(room, "coach", "Ann")) as ann,
            ydoc(lossy[1].base, room, token(room, "teacher", "Tess")) as tess,
        ):
            for i in range(150):
                ann.plan += f"<a{i}>"
                await ann.flush()
                if i % 3 == 0:
                    tess.timeline[f"t{i}"] = note(float(i), "user:tess")
                    await tess.flush()
                await asyncio.sleep(0.004)  # many separate log entries, many announcements
            await tess.until(lambda: "<a149>" in str(tess.plan), timeout=2 * TIMEOUT)
            await ann.until(lambda: len(ann.timeline) == 50, timeout=2 * TIMEOUT)
            assert str(tess.plan) == "".join(f"<a{i}>" for i in range(150))
            assert state_vector(ann.doc.get_state()) == state_vector(tess.doc.get_state())
        # Not vacuous: announcements were in fact lost and the gaps filled from the log.
        assert any("gap after" in worker.log.read_text() for worker in lossy)
    finally:
        for worker in lossy:
            worker.kill()


async def test_an_edit_not_yet_in_the_log_is_not_relayed(
    workers: list[WorkerProcess],  # noqa: F811
    redis: RedisServer,
) -> None:
    """A worker dies before Ann's note reached the log. Tess must not have been shown it (or
    her catch-up on another worker would carry a note she did not write and be refused);
    Tess's own offline edit survives, and Ann's client restores her note when it reconnects."""
    one, two = workers
    room = create_room(one.base)
    async with ydoc(two.base, room, token(room, "observer", "Warm")):
        pass  # both workers have held the room
    async with (
        ydoc(one.base, room, token(room, "coach", "Ann")) as ann,
        ydoc(one.base, room, token(room, "teacher", "Tess")) as tess,
    ):
        try:
            redis.pause_writes(1500)
            ann.timeline["n1"] = note(1.0, "user:ann")
            await ann.flush()
            await asyncio.sleep(0.3)
            assert "n1" not in tess.timeline  # not in the log yet, so not relayed
            one.crash()
            one.process.wait(TIMEOUT)
            tess.plan += "tess typed this offline"
            ann_state, tess_state = ann.doc.get_update(), tess.doc.get_update()
        finally:
            redis.unpause()
    for user, role, state in (("Tess", "teacher", tess_state), ("Ann", "coach", ann_state)):
        async with ydoc(two.base, room, token(room, role, user)) as again:
            again.doc.apply_update(state)
            await again.send_raw(bytes([0, 1]) + _var(again.doc.get_update()))
            await asyncio.sleep(0.3)
            assert again.denied.empty(), again.denied.get_nowait()
    async with ydoc(two.base, room, token(room, "observer", "Obi")) as reader:
        assert str(reader.plan) == "tess typed this offline"
        assert "n1" in reader.timeline
