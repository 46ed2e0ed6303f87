"""Two people type on two workers while their Redis fails over, then the room goes on: the
shared course of the Sentinel and Redis Cluster failover tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pycrdt import Text

from tests.support import TIMEOUT, WorkerProcess, join, rejoin, token
from tests.test_documents_multiworker import stored_doc
from tests.test_redis_restart import type_fragments, until_holds
from tests.yclient import ydoc


async def type_through_failover(
    workers: list[WorkerProcess], room: str, fail_over: Callable[[], Awaitable[None]]
) -> list[str]:
    """Ann (worker 1) and Tess (worker 2) type while `fail_over()` kills the room's Redis node
    and waits for its replacement. Both end with every fragment either typed, and the room
    goes on from its playback before (33 s). The fragments typed."""
    one, two = workers
    async with (
        ydoc(one.base, room, token(room, "coach", "Ann")) as ann,
        ydoc(two.base, room, token(room, "teacher", "Tess")) as tess,
        join(one.base, room, "coach", "Ann") as ann_room,
        join(two.base, room, "teacher", "Tess") as tess_room,
    ):
        await ann_room.send(type="seek", position=33.0)
        await tess_room.expect("playback")
        typing = [
            asyncio.create_task(type_fragments(ann, "a", 120)),
            asyncio.create_task(type_fragments(tess, "t", 120)),
        ]
        await asyncio.sleep(1.0)
        await fail_over()
        fragments = [f for task in typing for f in await task]
        await until_holds(ann, fragments, 4 * TIMEOUT)
        await until_holds(tess, fragments, 4 * TIMEOUT)
        assert str(ann.plan) == str(tess.plan)

    # The room goes on, on the new node, from where it was.
    async with (
        rejoin(one.base, room, "coach", "Ann") as ann_again,
        rejoin(two.base, room, "teacher", "Tess") as tess_again,
    ):
        assert ann_again.welcome["playback"]["position"] == 33.0
        await ann_again.send(type="play")
        playback = await tess_again.expect("playback", timeout=2 * TIMEOUT)
        assert playback["playback"]["status"] == "playing"
    return fragments


async def assert_holds_every_edit(server: Any, room: str, fragments: list[str]) -> None:
    """The Redis (or cluster) that took over holds every fragment in the room's document."""
    await asyncio.sleep(1.0)
    stored = await stored_doc(server, room)
    assert all(f in str(stored.get("plan", type=Text)) for f in fragments)
