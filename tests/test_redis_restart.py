"""Redis stops for 5 s and starts again while people type: nothing is lost, with or without
AOF (without it, the workers' replicas give the data back)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import redis as sync_redis
from pycrdt import Text

from server.errors import CloseCode
from tests.support import ADMIN_KEY, TIMEOUT, join, redis_server, rejoin, start_worker, token
from tests.test_documents_multiworker import stored_doc
from tests.yclient import YClient, ydoc

OUTAGE = 5.0


async def type_fragments(client: YClient, name: str, count: int) -> list[str]:
    fragments = []
    for i in range(count):
        fragment = f"<{name}{i}>"
        client.plan += fragment
        fragments.append(fragment)
        await client.flush()
        await asyncio.sleep(0.05)
    return fragments


async def until_holds(client: YClient, fragments: list[str], timeout: float) -> None:
    """Until `client`'s plan has every one of `fragments`."""
    await client.until(lambda: all(f in str(client.plan) for f in fragments), timeout=timeout)


@pytest.mark.parametrize("appendonly", [False, True], ids=["no-aof", "aof"])
async def test_redis_restart_loses_nothing(tmp_path: Path, appendonly: bool) -> None:
    with redis_server(appendonly=appendonly) as redis:
        workers = [start_worker(tmp_path / f"w{i}", redis.url, f"w{i}") for i in (1, 2)]
        try:
            room = "restart"
            created = httpx.post(
                f"{workers[0].base}/api/rooms",
                json={"id": room, "title": "Restart"},
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
            assert created.status_code == 201
            async with (
                ydoc(workers[0].base, room, token(room, "coach", "Ann")) as ann,
                ydoc(workers[1].base, room, token(room, "teacher", "Tess")) as tess,
                join(workers[0].base, room, "coach", "Ann") as ann_room,
                join(workers[1].base, room, "teacher", "Tess") as tess_room,
            ):
                await ann_room.send(type="seek", position=33.0)
                await tess_room.expect("playback")
                typing = [
                    asyncio.create_task(type_fragments(ann, "a", 160)),
                    asyncio.create_task(type_fragments(tess, "t", 160)),
                ]
                await asyncio.sleep(1.0)
                redis.stop()
                await asyncio.sleep(OUTAGE)
                redis.start()
                fragments = [f for task in typing for f in await task]

                await until_holds(ann, fragments, 4 * TIMEOUT)
                await until_holds(tess, fragments, 4 * TIMEOUT)
                assert str(ann.plan) == str(tess.plan)
                for fragment in fragments:
                    assert str(ann.plan).count(fragment) == 1

                # The room's home (Ann's worker, where she joined first) could not save
                # anything while Redis was away, so it stepped down and sent its members
                # elsewhere (no two homes for a room). Back, Ann finds the room as it was before
                # the outage; Tess, on the other worker, was held and carries on.
                assert (await ann_room.closed())[0] == CloseCode.SERVICE_RESTART
                async with rejoin(workers[0].base, room, "coach", "Ann") as ann_again:
                    assert ann_again.welcome["playback"]["position"] == 33.0
                    await tess_room.send(type="ping", id=1, t0=0)
                    await tess_room.expect("pong")
                    await ann_again.send(type="play")
                    playback = await tess_room.expect("playback", timeout=2 * TIMEOUT)
                    state = playback["playback"]
                    assert state["status"] == "playing" and state["position"] >= 33.0

            await asyncio.sleep(1.0)
            # Redis holds the room and all of its document again (re-seeded if it forgot)...
            stored = await stored_doc(redis, room)
            assert all(f in str(stored.get("plan", type=Text)) for f in fragments)
            client = sync_redis.Redis.from_url(redis.url)
            try:
                assert client.exists(f"cocoach:{{{room}}}:record")
            finally:
                client.close()
            if not appendonly:
                assert any("re-seeding" in w.log.read_text() for w in workers)
            # ... and a newcomer on either worker gets it.
            for worker in workers:
                async with ydoc(worker.base, room, token(room, "observer", "Obi")) as reader:
                    await until_holds(reader, fragments, 2 * TIMEOUT)
        finally:
            for worker in workers:
                worker.kill()
