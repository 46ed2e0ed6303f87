"""COCOACH_REDIS_WAIT_REPLICAS: a document edit is acknowledged (the append returns, and is
announced to the other workers) only once that many Redis replicas have it, so a failover to a
replica loses no acknowledged edit. Real primary and replica on loopback; the replica is stopped
to show what waits."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import redis as sync_redis
import redis.asyncio as aioredis

from server.errors import ServiceUnavailable
from server.sync.doclog import DocEntry
from server.sync.redis_broker import RedisBroker
from server.sync.redis_doclog import RedisDocLog
from tests.support import (
    TIMEOUT,
    redis_server,
    replica_of,
    start_worker,
    token,
    until,
    wait_in_sync,
)
from tests.test_multiworker import create_room
from tests.yclient import ydoc


async def entry_ids(url: str, room: str) -> list[str]:
    client = aioredis.Redis.from_url(url)
    try:
        rows = await client.xrange(f"cocoach:{{{room}}}:doc:log")
        return [row_id.decode() for row_id, _fields in rows]
    finally:
        await client.aclose()


def replica_updates(url: str, room: str) -> list[bytes]:
    client = sync_redis.Redis.from_url(url)
    try:
        return [fields[b"u"] for _id, fields in client.xrange(f"cocoach:{{{room}}}:doc:log")]
    finally:
        client.close()


async def test_an_append_returns_and_is_announced_only_once_a_replica_has_it() -> None:
    with redis_server() as primary, replica_of(primary) as replica:
        client = aioredis.Redis.from_url(primary.url)
        broker = RedisBroker(client)
        reader = asyncio.create_task(broker.run())
        log = RedisDocLog(client, broker, wait_replicas=1, wait_ms=300)
        room = f"doc-{uuid.uuid4().hex[:8]}"
        heard: asyncio.Queue[DocEntry] = asyncio.Queue()
        try:
            await log.subscribe(room, heard.put_nowait)
            first = await log.append(room, "w1", b"one")
            # Already on the replica when the append returns: no waiting here.
            assert first.id in await entry_ids(replica.url, room)
            assert await asyncio.wait_for(heard.get(), TIMEOUT) == first

            replica.stop()
            with pytest.raises(ServiceUnavailable, match="COCOACH_REDIS_WAIT_REPLICAS"):
                await log.append(room, "w1", b"two")
            await asyncio.sleep(0.3)
            assert heard.empty(), "an edit no replica has was announced"

            replica.start()
            await asyncio.to_thread(wait_in_sync, replica)
            third = await log.append(room, "w1", b"three")
            assert third.id in await entry_ids(replica.url, room)
            assert await asyncio.wait_for(heard.get(), TIMEOUT) == third
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await broker.close()
            await client.aclose()


async def test_workers_relay_an_edit_only_once_a_replica_has_it(tmp_path: Path) -> None:
    with redis_server() as primary, replica_of(primary) as replica:
        env = {"COCOACH_REDIS_WAIT_REPLICAS": "1", "COCOACH_REDIS_WAIT_MS": "300"}
        one = start_worker(tmp_path / "w1", primary.url, "w1", **env)
        two = start_worker(tmp_path / "w2", primary.url, "w2", **env)
        try:
            room = create_room(one.base)
            async with (
                ydoc(one.base, room, token(room, "coach", "Ann")) as ann,
                ydoc(two.base, room, token(room, "teacher", "Tess")) as tess,
            ):
                ann.plan += "<replicated>"
                await ann.flush()
                await tess.until(lambda: "<replicated>" in str(tess.plan), timeout=TIMEOUT)
                assert await entry_ids(replica.url, room)

                replica.stop()
                ann.plan += "<held>"
                await ann.flush()
                # Not acknowledged: Ann's worker keeps appending it until a replica has it (its
                # own clients are served meanwhile, as with Redis away).
                await until(
                    lambda: "COCOACH_REDIS_WAIT_REPLICAS" in one.log.read_text(),
                    "worker w1 to retry an append no replica has",
                )
                replica.start()
                await tess.until(lambda: "<held>" in str(tess.plan), timeout=3 * TIMEOUT)
                assert str(tess.plan) == str(ann.plan)
                await until(
                    lambda: b"<held>" in b"".join(replica_updates(replica.url, room)),
                    "the replica to have the held edit",
                )
        finally:
            one.kill()
            two.kill()
