"""Three workers on one Redis; the room's home is killed (SIGKILL) while clients type."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import websockets
from pycrdt import Doc, Text

from tests.support import SLOWNESS, TIMEOUT, RedisServer, join, start_worker, token
from tests.test_documents_multiworker import stored_doc
from tests.test_multiworker import create_room, lease_holder
from tests.yclient import ydoc

# 3 s, stretched like every real-time check on a loaded machine (COCOACH_TEST_SLOWNESS).
RECONNECT_WITHIN = 3.0 * SLOWNESS


FRAGMENTS = [f"<{n}{i}>" for n in "pqr" for i in range(80)]


async def typist(
    bases: list[str], room: str, name: str, doc: Doc[Any], steps: int, reconnected: list[float]
) -> None:
    """Type `steps` fragments; when the worker goes, reconnect to the next one at once; stay
    until everyone's fragments have arrived."""
    step, lost_at = 0, None
    for base in bases:
        with contextlib.suppress(websockets.ConnectionClosed, OSError):
            async with ydoc(base, room, token(room, "teacher", name), doc) as client:
                if lost_at is not None:
                    reconnected.append(time.monotonic() - lost_at)
                while step < steps:
                    client.plan += f"<{name}{step}>"
                    step += 1
                    await client.flush()
                    await asyncio.sleep(0.03)
                await client.until(lambda: all(f in str(client.plan) for f in FRAGMENTS))
                return
        lost_at = time.monotonic()
    raise AssertionError(f"{name} could not reconnect")


async def test_killing_the_home_loses_no_edit_and_keeps_playback(
    tmp_path: Path, redis: RedisServer
) -> None:
    workers = [start_worker(tmp_path / f"w{i}", redis.url, f"w{i}") for i in (1, 2, 3)]
    try:
        bases = [w.base for w in workers]
        room = create_room(bases[0])
        async with join(bases[0], room, "coach", "Ann") as ann:
            assert lease_holder(redis, room) == "w1"
            async with join(bases[1], room, "teacher", "Tess") as tess:
                await ann.send(type="seek", position=100.0)
                await ann.send(type="play")
                playing = (await tess.expect("playback"))["playback"]
                while playing["status"] != "playing":
                    playing = (await tess.expect("playback"))["playback"]

                docs = {n: Doc() for n in ("p", "q", "r")}
                for d in docs.values():
                    d.get("plan", type=Text)
                reconnected: list[float] = []
                typing = [
                    asyncio.create_task(typist(bases, room, "p", docs["p"], 80, reconnected)),
                    asyncio.create_task(typist(bases[1:], room, "q", docs["q"], 80, reconnected)),
                    asyncio.create_task(
                        typist(bases[2:] + bases[:1], room, "r", docs["r"], 80, reconnected)
                    ),
                ]
                await asyncio.sleep(1.0)
                workers[0].crash()
                await asyncio.gather(*typing)

                # Clients of the dead worker were back, on another one, within 3 s.
                assert reconnected and max(reconnected) < RECONNECT_WITHIN, reconnected
                # The home moves to a live worker once the dead one's lease lapses.
                async with asyncio.timeout(2 * TIMEOUT):
                    while lease_holder(redis, room) not in ("w2", "w3"):
                        await asyncio.sleep(0.1)
                # Playback is the one before the crash: still playing, from the right place.
                async with join(bases[2], room, "observer", "Obi") as obi:
                    state = obi.welcome["playback"]
                    assert state["status"] == "playing" and state["seq"] == playing["seq"]
                    assert state["position"] == playing["position"] and state["at"] == playing["at"]

        fragments = FRAGMENTS
        async with ydoc(bases[2], room, token(room, "observer", "Obi")) as reader:
            await reader.until(lambda: all(f in str(reader.plan) for f in fragments))
            final = str(reader.plan)
        assert all(final.count(f) == 1 for f in fragments)
        for doc in docs.values():
            assert str(doc.get("plan", type=Text)) == final
        await asyncio.sleep(0.5)
        stored = str((await stored_doc(redis, room)).get("plan", type=Text))
        assert all(stored.count(f) == 1 for f in fragments)
    finally:
        for worker in workers:
            worker.kill()
