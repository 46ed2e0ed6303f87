"""Room state over a broker that loses messages: every view recovers within a second."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from tests.support import Client, RedisServer, join, start_worker
from tests.test_multiworker import create_room


class View:
    """What one client believes about the room, from the frames it got."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.members = {m["id"]: m for m in client.welcome["members"]}
        self.playback = client.welcome["playback"]

    async def follow(self) -> None:
        while True:
            message = await self.client.recv(timeout=3600)
            match message["type"]:
                case "member_joined" | "member_updated":
                    self.members[message["member"]["id"]] = message["member"]
                case "member_left":
                    self.members.pop(message["id"], None)
                case "playback":
                    self.playback = message["playback"]
                case "state":
                    self.members = {m["id"]: m for m in message["members"]}
                    self.playback = message["playback"]

    def seen(self) -> tuple[Any, ...]:
        members = sorted(
            (m["id"], m["status"], tuple(sorted(m["state"].items()))) for m in self.members.values()
        )
        return (tuple(members), self.playback["seq"], self.playback["position"])


async def test_room_state_recovers_from_lost_messages(tmp_path: Path, redis: RedisServer) -> None:
    lossy = [
        start_worker(tmp_path / f"w{i}", redis.url, f"drop{i}", COCOACH_TEST_DROP_PUBSUB="0.05")
        for i in (1, 2)
    ]
    try:
        room = create_room(lossy[0].base)
        async with (
            join(lossy[0].base, room, "coach", "Ann") as ann,
            join(lossy[1].base, room, "teacher", "Tess") as tess,
            join(lossy[1].base, room, "observer", "Obi") as obi,
        ):
            views = [View(c) for c in (ann, tess, obi)]
            followers = [asyncio.create_task(v.follow()) for v in views]
            try:
                for i in range(100):
                    await ann.send(type="presence", state={"i": i})
                    if i % 2 == 0:
                        await tess.send(type="seek", position=float(i))
                    await asyncio.sleep(0.02)  # under the rate limit
                await asyncio.sleep(1.5)
                seen = [v.seen() for v in views]
                assert seen[0] == seen[1] == seen[2], seen
                assert len(views[2].members) == 3
                assert views[2].members[ann.id]["state"] == {"i": 99}  # repaired if lost
            finally:
                for task in followers:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        logs = "".join(w.log.read_text() for w in lossy)
        assert "resyncing" in logs or "asking again" in logs  # losses happened and were repaired
    finally:
        for worker in lossy:
            worker.kill()
