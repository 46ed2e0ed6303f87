"""One contract for the document log, run against SQLite (embedded) and Redis."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.sync.doclog import NO_ENTRY, DocEntry, DocLog
from server.sync.redis_broker import RedisBroker
from server.sync.redis_doclog import RedisDocLog
from server.sync.sqlite_doclog import SqliteDocLog
from tests.support import TIMEOUT, RedisClusterServers, RedisServer


@pytest.fixture(
    params=["embedded", "redis", "redis-wait-replica", "cluster", "cluster-wait-replica"]
)
async def log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DocLog]:
    if request.param == "embedded":
        sqlite = SqliteDocLog(tmp_path / "docs.sqlite3")
        yield sqlite
        await sqlite.close()
        return
    wait = 0
    server: RedisServer | RedisClusterServers
    if request.param == "redis":
        server = request.getfixturevalue("redis")
    elif request.param.startswith("cluster"):
        server = request.getfixturevalue("cluster")
        wait = 1 if request.param == "cluster-wait-replica" else 0  # each primary has one
    else:  # COCOACH_REDIS_WAIT_REPLICAS=1: appends wait for the replica
        server, _replica = request.getfixturevalue("replicated_redis")
        wait = 1
    client = server.async_client()
    broker = RedisBroker(client)
    reader = asyncio.create_task(broker.run())
    try:
        yield RedisDocLog(client, broker, wait_replicas=wait)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await broker.close()
        await client.aclose()


def room() -> str:
    return f"doc-{uuid.uuid4().hex[:8]}"


async def test_append_chains_entries_and_announces_in_order(log: DocLog) -> None:
    r = room()
    heard: asyncio.Queue[DocEntry] = asyncio.Queue()
    await log.subscribe(r, heard.put_nowait)
    appended = [await log.append(r, "w1" if i % 2 else "w2", b"u%d" % i) for i in range(20)]
    assert appended[0].prev == NO_ENTRY
    for before, after in itertools.pairwise(appended):
        assert after.prev == before.id
    announced = [await asyncio.wait_for(heard.get(), TIMEOUT) for _ in range(20)]
    assert announced == appended
    await log.unsubscribe(r, heard.put_nowait)
    await log.append(r, "w1", b"after")
    await asyncio.sleep(0.1)
    assert heard.empty()


async def test_load_and_read_after(log: DocLog) -> None:
    r = room()
    empty = await log.load(r)
    assert empty.snapshot is None and empty.entries == [] and empty.last == NO_ENTRY
    appended = [await log.append(r, "w1", b"u%d" % i) for i in range(5)]
    loaded = await log.load(r)
    assert loaded.entries == appended and loaded.last == appended[-1].id
    assert await log.read_after(r, appended[1].id) == appended[2:]
    assert await log.read_after(r, NO_ENTRY) == appended
    assert await log.length(r) == 5


async def test_compaction_folds_entries_into_a_snapshot(log: DocLog) -> None:
    r = room()
    appended = [await log.append(r, "w1", b"u%d" % i) for i in range(6)]
    remaining = await log.compact(r, b"snapshot-through-3", appended[3].id)
    assert remaining == 2
    loaded = await log.load(r)
    assert loaded.snapshot == b"snapshot-through-3"
    assert [e.update for e in loaded.entries] == [b"u4", b"u5"]
    assert loaded.entries[0].prev == appended[3].id
    assert loaded.last == appended[5].id
    # An older snapshot never replaces a newer one.
    await log.compact(r, b"stale", appended[1].id)
    assert (await log.load(r)).snapshot == b"snapshot-through-3"
    # New entries chain on from the last one, compaction or not.
    after = await log.append(r, "w2", b"u6")
    assert after.prev == appended[5].id
    await log.compact(r, b"all", after.id)
    loaded = await log.load(r)
    assert loaded.entries == [] and loaded.last == after.id and loaded.snapshot == b"all"
    assert (await log.append(r, "w1", b"u7")).prev == after.id


async def test_rooms_are_separate(log: DocLog) -> None:
    a, b = room(), room()
    await log.append(a, "w1", b"a")
    assert (await log.load(b)).entries == []
    assert (await log.append(b, "w1", b"b")).prev == NO_ENTRY


async def test_append_many_appends_each_room_in_order(log: DocLog) -> None:
    a, b = room(), room()
    heard: asyncio.Queue[DocEntry] = asyncio.Queue()
    await log.subscribe(a, heard.put_nowait)
    first = await log.append(a, "w1", b"a0")
    entries = await log.append_many("w2", [(a, b"a1"), (b, b"b0")])
    assert [e.update for e in entries] == [b"a1", b"b0"]
    assert entries[0].prev == first.id and entries[1].prev == NO_ENTRY
    assert [(await asyncio.wait_for(heard.get(), TIMEOUT)).update for _ in range(2)] == [
        b"a0",
        b"a1",
    ]
    assert [e.update for e in (await log.load(b)).entries] == [b"b0"]
