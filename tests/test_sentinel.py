"""`--redis redis+sentinel://...`: workers find the primary through Redis Sentinel and follow it
when it fails over. A real primary, its replica and three sentinels on loopback; the primary is
killed while two people type on two workers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pycrdt import Text

from server.errors import ConfigError
from server.sync.redis_connect import parse_sentinel
from tests.support import (
    TIMEOUT,
    join,
    redis_server,
    rejoin,
    replica_of,
    sentinels,
    start_worker,
    token,
    until,
)
from tests.test_documents_multiworker import stored_doc
from tests.test_multiworker import create_room
from tests.test_redis_restart import type_fragments
from tests.yclient import YClient, ydoc


def test_sentinel_urls_name_their_sentinels_and_service() -> None:
    address = parse_sentinel("redis+sentinel://u:p%40ss@10.0.0.1:26379,[::1]:26380/cocoach/2")
    assert address.sentinels == [("10.0.0.1", 26379), ("::1", 26380)]
    assert (address.service, address.db, address.username, address.password) == (
        "cocoach",
        2,
        "u",
        "p@ss",
    )
    assert not address.tls and parse_sentinel("rediss+sentinel://h:1/s").tls
    for bad in ("redis+sentinel://h:1", "redis+sentinel://h/s", "redis+sentinel://h:1/s/x"):
        try:
            parse_sentinel(bad)
        except ConfigError as error:
            assert "--redis" in error.message
        else:
            raise AssertionError(f"{bad} was accepted")


async def test_workers_follow_a_sentinel_failover_and_lose_nothing(tmp_path: Path) -> None:
    with (
        redis_server() as primary,
        replica_of(primary) as replica,
        sentinels(primary) as watch,
    ):
        workers = [start_worker(tmp_path / f"w{i}", watch.url, f"w{i}") for i in (1, 2)]
        try:
            room = create_room(workers[0].base)
            async with (
                ydoc(workers[0].base, room, token(room, "coach", "Ann")) as ann,
                ydoc(workers[1].base, room, token(room, "teacher", "Tess")) as tess,
                join(workers[0].base, room, "coach", "Ann") as ann_room,
                join(workers[1].base, room, "teacher", "Tess") as tess_room,
            ):
                await ann_room.send(type="seek", position=33.0)
                await tess_room.expect("playback")
                typing = [
                    asyncio.create_task(type_fragments(ann, "a", 120)),
                    asyncio.create_task(type_fragments(tess, "t", 120)),
                ]
                await asyncio.sleep(1.0)
                primary.stop()
                await until(
                    lambda: watch.primary_port() == replica.port,
                    "the sentinels to promote the replica",
                    timeout=4 * TIMEOUT,
                )
                fragments = [f for task in typing for f in await task]

                def has_all(client: YClient) -> bool:
                    return all(f in str(client.plan) for f in fragments)

                await ann.until(lambda: has_all(ann), timeout=4 * TIMEOUT)
                await tess.until(lambda: has_all(tess), timeout=4 * TIMEOUT)
                assert str(ann.plan) == str(tess.plan)

            # The room goes on, on the new primary, from where it was.
            async with (
                rejoin(workers[0].base, room, "coach", "Ann") as ann_again,
                rejoin(workers[1].base, room, "teacher", "Tess") as tess_again,
            ):
                assert ann_again.welcome["playback"]["position"] == 33.0
                await ann_again.send(type="play")
                playback = await tess_again.expect("playback", timeout=2 * TIMEOUT)
                assert playback["playback"]["status"] == "playing"

            # The promoted replica holds every edit.
            await asyncio.sleep(1.0)
            stored = await stored_doc(replica, room)
            assert all(f in str(stored.get("plan", type=Text)) for f in fragments)
        finally:
            for worker in workers:
                worker.kill()
