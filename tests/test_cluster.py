"""Workers on a real Redis Cluster (three primaries, three replicas on loopback) while the
primary that holds a room is killed as two people type on two workers: its replica is
promoted, the workers follow it, and nothing anyone was shown is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pycrdt import Text

from server.errors import ConfigError
from server.sync.redis_connect import parse_cluster
from tests.support import (
    TIMEOUT,
    join,
    redis_cluster,
    rejoin,
    start_worker,
    token,
    until,
)
from tests.test_documents_multiworker import stored_doc
from tests.test_multiworker import create_room
from tests.test_redis_restart import type_fragments
from tests.yclient import YClient, ydoc


def test_cluster_urls_name_their_nodes() -> None:
    address = parse_cluster("redis+cluster://u:pw@10.0.0.1:7000,10.0.0.2:7001")
    assert address.nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert (address.username, address.password, address.tls) == ("u", "pw", False)
    assert parse_cluster("rediss+cluster://h:1").tls
    for bad in ("redis+cluster://h", "redis+cluster://h:1/0"):
        try:
            parse_cluster(bad)
        except ConfigError as error:
            assert "--redis" in error.message
        else:
            raise AssertionError(f"{bad} was accepted")


async def test_workers_follow_a_cluster_failover_and_lose_nothing(tmp_path: Path) -> None:
    with redis_cluster() as cluster:
        workers = [start_worker(tmp_path / f"w{i}", cluster.url, f"w{i}") for i in (1, 2)]
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
                owner = cluster.primary_of(f"cocoach:{{{room}}}:doc:log")
                owner.stop()
                await until(
                    lambda: cluster.primary_of(f"cocoach:{{{room}}}:doc:log") is not owner,
                    "the cluster to promote the room's replica",
                    timeout=4 * TIMEOUT,
                )
                fragments = [f for task in typing for f in await task]

                def has_all(client: YClient) -> bool:
                    return all(f in str(client.plan) for f in fragments)

                await ann.until(lambda: has_all(ann), timeout=4 * TIMEOUT)
                await tess.until(lambda: has_all(tess), timeout=4 * TIMEOUT)
                assert str(ann.plan) == str(tess.plan)

            # The room goes on, on the promoted node, from where it was.
            async with (
                rejoin(workers[0].base, room, "coach", "Ann") as ann_again,
                rejoin(workers[1].base, room, "teacher", "Tess") as tess_again,
            ):
                assert ann_again.welcome["playback"]["position"] == 33.0
                await ann_again.send(type="play")
                playback = await tess_again.expect("playback", timeout=2 * TIMEOUT)
                assert playback["playback"]["status"] == "playing"

            # The cluster holds every edit.
            await asyncio.sleep(1.0)
            stored = await stored_doc(cluster, room)
            assert all(f in str(stored.get("plan", type=Text)) for f in fragments)
        finally:
            for worker in workers:
                worker.kill()
