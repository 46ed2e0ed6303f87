"""`--redis redis+sentinel://...`: workers find the primary through Redis Sentinel and follow it
when it fails over. A real primary, its replica and three sentinels on loopback; the primary is
killed while two people type on two workers."""

from __future__ import annotations

from pathlib import Path

from server.errors import ConfigError
from server.sync.redis_connect import parse_sentinel
from tests.failover_support import assert_holds_every_edit, type_through_failover
from tests.support import (
    TIMEOUT,
    redis_server,
    replica_of,
    sentinels,
    start_worker,
    until,
)
from tests.test_multiworker import create_room


def test_sentinel_urls_name_their_sentinels_and_service() -> None:
    address = parse_sentinel("redis+sentinel://u:p%40ss@10.0.0.1:26379,[::1]:26380/cocoach/2")
    assert address.sentinels == [("10.0.0.1", 26379), ("::1", 26380)]
    assert (
        address.service,
        address.db,
        address.credentials.username,
        address.credentials.password,
    ) == (
        "cocoach",
        2,
        "u",
        "p@ss",
    )
    assert not address.credentials.tls and parse_sentinel("rediss+sentinel://h:1/s").credentials.tls
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

            async def fail_over() -> None:
                primary.stop()
                await until(
                    lambda: watch.primary_port() == replica.port,
                    "the sentinels to promote the replica",
                    timeout=4 * TIMEOUT,
                )

            fragments = await type_through_failover(workers, room, fail_over)
            await assert_holds_every_edit(replica, room, fragments)
        finally:
            for worker in workers:
                worker.kill()
