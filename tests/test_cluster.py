"""Workers on a real Redis Cluster (three primaries, three replicas on loopback) while the
primary that holds a room is killed as two people type on two workers: its replica is
promoted, the workers follow it, and nothing anyone was shown is lost."""

from __future__ import annotations

from pathlib import Path

from server.errors import ConfigError
from server.sync.redis_connect import parse_cluster
from tests.failover_support import assert_holds_every_edit, type_through_failover
from tests.support import (
    TIMEOUT,
    redis_cluster,
    start_worker,
    until,
)
from tests.test_multiworker import create_room


def test_cluster_urls_name_their_nodes() -> None:
    address = parse_cluster("redis+cluster://u:pw@10.0.0.1:7000,10.0.0.2:7001")
    assert address.nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert (
        address.credentials.username,
        address.credentials.password,
        address.credentials.tls,
    ) == ("u", "pw", False)
    assert parse_cluster("rediss+cluster://h:1").credentials.tls
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
            key = f"cocoach:{{{room}}}:doc:log"

            async def fail_over() -> None:
                owner = cluster.primary_of(key)
                owner.stop()
                await until(
                    lambda: cluster.primary_of(key) is not owner,
                    "the cluster to promote the room's replica",
                    timeout=4 * TIMEOUT,
                )

            fragments = await type_through_failover(workers, room, fail_over)
            await assert_holds_every_edit(cluster, room, fragments)
        finally:
            for worker in workers:
                worker.kill()
