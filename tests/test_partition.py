"""A room's home cut off from Redis (a network partition, through a TCP proxy the test holds)
while its members and another worker's go on acting: no split brain.

The home stops acting for the room, and sends its members elsewhere, before its lease can lapse;
only then does the other worker take the room over, from the state last saved. What the cut-off
home had in flight reaches Redis when the partition heals, and is refused (the fencing token).
Afterwards every client and Redis agree, and no change acknowledged to a client was lost.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import redis.asyncio as aioredis
import websockets

from server.codec import decode_as
from server.errors import CloseCode
from server.rooms.room import RoomState
from server.settings import Settings
from tests.faults import FaultyProxy
from tests.support import TIMEOUT, Client, join, redis_server, rejoin, start_worker, until
from tests.test_multiworker import create_room

LEASE_TTL = Settings().lease_ttl


async def seek(client: Client, position: float, timeout: float = TIMEOUT) -> float | None:
    """Seek; the moment the home acknowledged it (the playback with it came back), or None if
    the connection closed first."""
    await client.send(type="seek", position=position)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = await client.recv(deadline - time.monotonic())
            if message["type"] == "playback" and message["playback"]["position"] == position:
                return time.monotonic()
    except (websockets.ConnectionClosed, TimeoutError):
        return None
    raise AssertionError(f"seek to {position} neither acknowledged nor refused")


async def test_a_home_cut_off_from_redis_stops_before_another_worker_takes_over(
    tmp_path: Path,
) -> None:
    with redis_server() as redis:
        store = aioredis.Redis.from_url(redis.url)
        async with FaultyProxy(redis.port) as proxy:
            # start_worker blocks, and worker a's Redis goes through this loop: a thread.
            cut_off = await asyncio.to_thread(
                start_worker, tmp_path / "a", f"redis://127.0.0.1:{proxy.port}", "wa"
            )
            other = await asyncio.to_thread(start_worker, tmp_path / "b", redis.url, "wb")
            try:
                room = await asyncio.to_thread(create_room, other.base)

                async def holder() -> str | None:
                    value = await store.get(f"cocoach:{{{room}}}:lease")
                    return None if value is None else value.decode()

                async def saved_position() -> float | None:
                    data = await store.get(f"cocoach:{{{room}}}:state")
                    if data is None:
                        return None
                    return decode_as(data, RoomState).playback.position

                async with join(cut_off.base, room, "coach", "Ann") as ann:
                    assert await holder() == "wa"  # the first member's worker is home
                    async with join(other.base, room, "teacher", "Tess") as tess:
                        for position in (10.0, 11.0, 12.0):
                            assert await seek(ann, position) is not None
                        last_acknowledged = 12.0
                        # Tess has it too: the home is idle, not still publishing it.
                        while (await tess.expect("playback"))["playback"]["position"] != 12.0:
                            pass

                        async with proxy.stalled():
                            cut = time.monotonic()
                            # Ann goes on seeking; nothing is acknowledged now (the home cannot
                            # save it), until she is told to go elsewhere.
                            position = 100.0
                            while (acked := await seek(ann, position, 2 * TIMEOUT)) is not None:
                                assert acked - cut < 0.2, "acknowledged while cut off"
                                last_acknowledged = position
                                position += 1
                            told = time.monotonic()
                            assert ann.ws.close_code == CloseCode.SERVICE_RESTART
                            assert told - cut < 1.5 * LEASE_TTL, "the home did not step down"

                            taken = None

                            async def taken_over() -> bool:
                                nonlocal taken
                                if await holder() == "wb":
                                    taken = time.monotonic()
                                return taken is not None

                            deadline = time.monotonic() + 4 * TIMEOUT
                            while not await taken_over():
                                assert time.monotonic() < deadline, "worker b never took over"
                                await asyncio.sleep(0.02)
                            assert taken is not None and told < taken, "two homes at once"

                            # The new home started from the last acknowledged change.
                            async with join(other.base, room, "observer", "Obi") as obi:
                                seen = obi.welcome["playback"]["position"]
                                assert seen == last_acknowledged
                            for position in (500.0, 501.0, 502.0):
                                assert await seek(tess, position) is not None
                            # Stay cut off well past the lease, so all of a's writes are late.
                            await asyncio.sleep(max(0.0, cut + 3 * LEASE_TTL - time.monotonic()))

                        # Healed: what worker a had in flight (Ann's seek to 100) reaches Redis
                        # now, and is refused.
                        await asyncio.sleep(0.5)
                        assert await saved_position() == 502.0
                        # Ann comes back to worker a; everyone sees Tess's last seek.
                        async with rejoin(cut_off.base, room, "coach", "Ann") as ann_again:
                            assert ann_again.welcome["playback"]["position"] == 502.0
                            assert await seek(ann_again, 600.0) is not None
                            await tess.expect("playback")
                            assert await seek(tess, 601.0) is not None
                            await ann_again.expect("playback")

                            async with join(cut_off.base, room, "observer", "Oli") as oli:
                                assert oli.welcome["playback"]["position"] == 601.0
                            assert await saved_position() == 601.0
                            assert await holder() == "wb"

                # Worker a's late writes arrived and were refused, and it said why.
                await until(
                    lambda: "stepping down" in (tmp_path / "a" / "worker.log").read_text(),
                    "worker a to log its stepping down",
                )
            finally:
                cut_off.kill()
                other.kill()
                await store.aclose()
