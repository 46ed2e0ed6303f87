"""One contract for each backend Protocol, run against the embedded and the Redis
implementation (real redis-server on a free port)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from server.cycles.directory import Cycles
from server.cycles.model import Cycle, Score
from server.errors import Conflict, StaleHome
from server.sync.broker import Broker, MemoryBroker
from server.sync.fence import Fence, MemoryFence
from server.sync.keys import out_channel
from server.sync.lease import Lease, MemoryLease
from server.sync.redis_broker import RedisBroker
from server.sync.redis_fence import RedisFence
from server.sync.redis_lease import RedisLease
from server.sync.redis_store import RedisStore
from server.sync.sqlite_store import SqliteStore
from server.sync.store import (
    MAX_TALK_SEGMENTS,
    Rendition,
    RoomRecord,
    SourceInfo,
    Store,
    VideoRecord,
)
from tests.support import TIMEOUT, RedisClusterServers, RedisServer

KINDS = ["embedded", "redis", "cluster"]


def redis_client(request: pytest.FixtureRequest) -> Any:
    """A client of the one Redis (`redis`) or of the cluster (`cluster`) the run shares."""
    server: RedisServer | RedisClusterServers = request.getfixturevalue(request.param)
    return server.async_client()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=KINDS)
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    if request.param == "embedded":
        yield MemoryBroker()
        return
    client = redis_client(request)
    redis_broker = RedisBroker(client)
    reader = asyncio.create_task(redis_broker.run())
    try:
        yield redis_broker
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await redis_broker.close()
        await client.aclose()


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "embedded":
        sqlite = SqliteStore(tmp_path / "store.sqlite3")
        yield sqlite
        await sqlite.close()
        return
    client = redis_client(request)
    yield RedisStore(client)
    await client.aclose()


@pytest.fixture(params=KINDS)
async def lease(request: pytest.FixtureRequest) -> AsyncIterator[Lease]:
    if request.param == "embedded":
        yield MemoryLease()
        return
    client = redis_client(request)
    yield RedisLease(client)
    await client.aclose()


@dataclass
class Fenced:
    """What a room's home writes through, on one backend."""

    lease: Lease
    fence: Fence
    store: Store
    broker: Broker


@pytest.fixture(params=KINDS)
async def fenced(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Fenced]:
    if request.param == "embedded":
        memory_lease, memory_broker = MemoryLease(), MemoryBroker()
        sqlite = SqliteStore(tmp_path / "store.sqlite3")
        yield Fenced(
            memory_lease, MemoryFence(memory_lease, sqlite, memory_broker), sqlite, memory_broker
        )
        await sqlite.close()
        return
    client = redis_client(request)
    redis_broker = RedisBroker(client)
    reader = asyncio.create_task(redis_broker.run())
    try:
        store = RedisStore(client)
        yield Fenced(RedisLease(client), RedisFence(client, store), store, redis_broker)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await redis_broker.close()
        await client.aclose()


# ---- Broker -------------------------------------------------------------------------------


async def test_broker_delivers_in_order_to_every_subscriber(broker: Broker) -> None:
    channel = unique("chan")
    got_a: asyncio.Queue[bytes] = asyncio.Queue()
    got_b: asyncio.Queue[bytes] = asyncio.Queue()
    await broker.subscribe(channel, got_a.put_nowait)
    await broker.subscribe(channel, got_b.put_nowait)
    for i in range(50):
        await broker.publish(channel, b"m%d" % i)
    for queue in (got_a, got_b):
        received = [await asyncio.wait_for(queue.get(), TIMEOUT) for _ in range(50)]
        assert received == [b"m%d" % i for i in range(50)]


async def test_broker_subscribe_returns_only_when_subscribed(broker: Broker) -> None:
    # Publish right after subscribe returns, from the same task: must not be missed.
    for _ in range(20):
        channel = unique("chan")
        got: asyncio.Queue[bytes] = asyncio.Queue()
        await broker.subscribe(channel, got.put_nowait)
        await broker.publish(channel, b"first")
        assert await asyncio.wait_for(got.get(), TIMEOUT) == b"first"


async def test_broker_unsubscribe_stops_delivery_and_isolates_channels(broker: Broker) -> None:
    one, two = unique("one"), unique("two")
    got_one: asyncio.Queue[bytes] = asyncio.Queue()
    got_two: asyncio.Queue[bytes] = asyncio.Queue()
    await broker.subscribe(one, got_one.put_nowait)
    await broker.subscribe(two, got_two.put_nowait)
    await broker.unsubscribe(one, got_one.put_nowait)
    await broker.publish(one, b"lost")
    await broker.publish(two, b"kept")
    assert await asyncio.wait_for(got_two.get(), TIMEOUT) == b"kept"
    await asyncio.sleep(0.1)
    assert got_one.empty()
    await broker.ping()


# ---- Store --------------------------------------------------------------------------------


async def test_store_rooms(store: Store) -> None:
    record = RoomRecord(id=unique("room"), title="Wait time", created=1.5, org="north")
    assert await store.get_room(record.id) is None
    await store.create_room(record)
    assert await store.get_room(record.id) == record
    with pytest.raises(Conflict):
        await store.create_room(RoomRecord(id=record.id, title="Other", created=2.0))
    assert record in await store.list_rooms()
    await store.ping()


async def test_store_rooms_carry_org_and_sharing_and_update(store: Store) -> None:
    record = RoomRecord(
        id=unique("room"), title="Questioning", created=2.5, org="ashby", shared=("brook",)
    )
    await store.create_room(record)
    assert await store.get_room(record.id) == record
    changed = msgspec.structs.replace(record, shared=("brook", "north"), title="Wait time")
    assert await store.update_room(changed)
    assert await store.get_room(record.id) == changed
    assert changed in await store.list_rooms()
    missing = RoomRecord(id=unique("room"), title="Nobody", created=3.0)
    assert not await store.update_room(missing), "update must not create"
    assert await store.get_room(missing.id) is None


async def test_store_videos_carry_org(store: Store) -> None:
    record = VideoRecord(id=unique("v"), title="Lesson", created=4.0, owner="t1", org="ashby")
    await store.put_video(record)
    assert (await store.get_video(record.id)) == record
    assert record in await store.list_videos()


async def test_store_room_state(store: Store) -> None:
    room_id = unique("room")
    assert await store.load_room_state(room_id) is None
    await store.save_room_state(room_id, b"\x00one")
    await store.save_room_state(room_id, b"\x00two")
    assert await store.load_room_state(room_id) == b"\x00two"


async def test_store_seeds_a_room_state_only_where_there_is_none(store: Store) -> None:
    room_id = unique("room")
    assert await store.seed_room_state(room_id, b"kept")
    assert not await store.seed_room_state(room_id, b"again")
    await store.save_room_state(room_id, b"by its home")
    assert not await store.seed_room_state(room_id, b"late")
    assert await store.load_room_state(room_id) == b"by its home"


async def test_store_talk_appends_in_order_and_rooms_are_separate(store: Store) -> None:
    one, two = unique("room"), unique("room")
    assert await store.load_talk(one) == []
    stretches = [b"\x00talk%d" % i for i in range(30)]
    for i, data in enumerate(stretches):
        assert await store.append_talk(one, data)
        if i % 3 == 0:
            assert await store.append_talk(two, b"other%d" % i)
    assert await store.load_talk(one) == stretches, "oldest first"
    assert await store.load_talk(two) == [b"other%d" % i for i in range(0, 30, 3)]
    assert await store.load_talk(unique("room")) == []


async def test_store_talk_delete(store: Store) -> None:
    room, other = unique("room"), unique("room")
    await store.append_talk(room, b"a")
    await store.append_talk(room, b"b")
    await store.append_talk(other, b"kept")
    await store.delete_talk(room)
    assert await store.load_talk(room) == []
    assert await store.load_talk(other) == [b"kept"]
    await store.delete_talk(unique("room"))  # nothing to forget: no error
    assert await store.append_talk(room, b"again"), "a deleted record starts afresh"
    assert await store.load_talk(room) == [b"again"]


async def test_store_talk_is_bounded(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(store, SqliteStore | RedisStore)
    assert store.talk_limit == MAX_TALK_SEGMENTS == 20_000
    monkeypatch.setattr(store, "talk_limit", 5)
    room, other = unique("room"), unique("room")
    for i in range(5):
        assert await store.append_talk(room, b"s%d" % i)
    assert not await store.append_talk(room, b"over"), "full: refused"
    assert await store.load_talk(room) == [b"s%d" % i for i in range(5)], "nothing written"
    assert await store.append_talk(other, b"x"), "the bound is per room"
    await store.delete_talk(room)
    assert await store.append_talk(room, b"fresh")


async def test_store_talk_bound_holds_under_concurrent_appends(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "talk_limit", 7)
    room = unique("room")
    added = await asyncio.gather(*(store.append_talk(room, b"c%d" % i) for i in range(40)))
    assert sum(added) == 7
    assert len(await store.load_talk(room)) == 7


# ---- Lease --------------------------------------------------------------------------------


async def test_lease_acquire_renew_release(lease: Lease) -> None:
    room = unique("room")
    assert await lease.holder(room) is None
    assert await lease.acquire(room, "a", 5.0)
    assert await lease.acquire(room, "a", 5.0)  # already ours
    assert not await lease.acquire(room, "b", 5.0)
    assert await lease.holder(room) == "a"
    assert await lease.renew(room, "a", 5.0)
    assert not await lease.renew(room, "b", 5.0)
    await lease.release(room, "b")  # not b's to release
    assert await lease.holder(room) == "a"
    await lease.release(room, "a")
    assert await lease.holder(room) is None
    assert await lease.acquire(room, "b", 5.0)


async def test_lease_lapses_and_is_taken_over(lease: Lease) -> None:
    room = unique("room")
    assert await lease.acquire(room, "a", 0.2)
    assert not await lease.acquire(room, "b", 0.2)
    await asyncio.sleep(0.3)
    assert await lease.holder(room) is None
    assert not await lease.renew(room, "a", 0.2)  # lost: renewal must not revive it
    assert await lease.acquire(room, "b", 5.0)
    assert await lease.holder(room) == "b"


async def test_store_epoch_is_stable_while_it_runs(store: Store) -> None:
    first = await store.epoch()
    assert first and await store.epoch() == first


async def test_store_videos(store: Store) -> None:
    video_id = unique("v")
    assert await store.get_video(video_id) is None
    assert not await store.delete_video(video_id)
    record = VideoRecord(
        id=video_id, title="Wait time", created=10.0, owner="user:ann", upload_length=1234
    )
    assert not await store.update_video(record), "update must not create"
    assert await store.get_video(video_id) is None
    await store.put_video(record)
    assert await store.get_video(video_id) == record
    ready = msgspec.structs.replace(
        record,
        status="ready",
        progress=1.0,
        upload_offset=1234,
        duration=61.5,
        fps=30.0,
        width=1280,
        height=720,
        renditions=(
            Rendition("360p", 640, 360, f"{video_id}/360p.webm", 5_000_000, 30, 61.5),
            Rendition("720p", 1280, 720, f"{video_id}/720p.webm", 15_000_000, 30, 61.5),
        ),
        source=SourceInfo("mov,mp4,m4a,3gp,3g2,mj2", "h264", "aac", 1920, 1080, 29.97, -90),
    )
    assert await store.update_video(ready)
    assert await store.get_video(video_id) == ready
    older = VideoRecord(id=unique("v"), title="Older", created=5.0, owner="admin")
    await store.put_video(older)
    listed = [v for v in await store.list_videos() if v.id in (video_id, older.id)]
    assert listed == [older, ready], "oldest first"
    assert await store.delete_video(video_id)
    assert await store.get_video(video_id) is None
    assert not await store.update_video(ready), "a deleted video stays deleted"
    assert video_id not in {v.id for v in await store.list_videos()}


async def test_store_records_of_the_layer_above_rooms(store: Store) -> None:
    kind = f"person-{uuid.uuid4().hex[:6]}"
    assert await store.get_record(kind, "p-1") is None
    assert await store.list_records(kind) == []
    await store.put_record(kind, "p-1", b"\x00one")
    await store.put_record(kind, "p-2", b"two")
    await store.put_record(f"{kind}-other", "p-1", b"elsewhere")  # kinds are separate
    await store.put_record(kind, "p-1", b"one again")  # replaced
    assert await store.get_record(kind, "p-1") == b"one again"
    assert sorted(await store.list_records(kind)) == [b"one again", b"two"]
    assert await store.delete_record(kind, "p-2") is True
    assert await store.delete_record(kind, "p-2") is False
    assert await store.list_records(kind) == [b"one again"]


async def test_store_take_record_gives_a_record_to_one_taker_only(store: Store) -> None:
    kind = f"link-{uuid.uuid4().hex[:6]}"
    await store.put_record(kind, "secret", b"the link")
    taken = await asyncio.gather(*(store.take_record(kind, "secret") for _ in range(10)))
    assert taken.count(b"the link") == 1 and taken.count(None) == 9
    assert await store.get_record(kind, "secret") is None
    assert await store.take_record(kind, "never") is None


async def test_cycles_and_their_scores_read_the_same_from_either_store(store: Store) -> None:
    """The cycles directory (server/cycles/directory.py) over either store: a saved cycle is
    read back whole, listed for each of its people only, and a scorer's new score replaces
    theirs without touching the other scorer's."""
    teacher, coach, other = unique("p-tia"), unique("p-cora"), unique("p-sam")
    cycles = Cycles(store)
    cycle = Cycle(
        id=unique("c"),
        teacher=teacher,
        coaches=(coach,),
        focus="My questions reach the same five pupils",
        framework="questioning",
        created=time.time(),
        proposed_by=coach,
        success_criteria=("Ten pupils answer",),
    )
    await cycles.save(cycle)
    assert await cycles.get(cycle.id) == cycle
    assert await cycles.get(unique("c")) is None
    moved = msgspec.structs.replace(cycle, status="active")
    await cycles.save(moved)
    assert [c.id for c in await cycles.of(teacher)] == [cycle.id]
    assert [c.status for c in await cycles.of(coach)] == ["active"]
    assert await cycles.of(other) == []
    video = unique("v")
    await cycles.score(Score(cycle.id, video, coach, "question-reach", 3, ("n-1",)))
    await cycles.score(Score(cycle.id, video, teacher, "question-reach", 2))
    await cycles.score(Score(cycle.id, video, coach, "question-reach", 4))  # replaces hers
    found = sorted(await cycles.scores(cycle.id), key=lambda s: s.scorer)
    assert [(s.scorer, s.level, s.evidence) for s in found] == sorted(
        [(coach, 4, ()), (teacher, 2, ())]
    )


# ---- Lease with fencing tokens, and the Fence ---------------------------------------------


async def test_every_take_gives_a_larger_token(lease: Lease) -> None:
    room = unique("room")
    first = await lease.take(room, "a", 5.0)
    assert first > 0
    assert await lease.take(room, "b", 5.0) == 0  # a holds it
    again = await lease.take(room, "a", 5.0)  # a second home on the same worker
    assert again > first
    await lease.release(room, "a")
    taken = await lease.take(room, "b", 5.0)
    assert taken > again and await lease.holder(room) == "b"
    assert await lease.renew(room, "b", 5.0)


async def test_the_fence_lets_only_the_current_holder_write(fenced: Fenced) -> None:
    room = unique("room")
    channel = out_channel(room)  # a home publishes on its room's channels (its slot)
    got: asyncio.Queue[bytes] = asyncio.Queue()
    await fenced.broker.subscribe(channel, got.put_nowait)

    old = await fenced.lease.take(room, "a", 0.3)
    await fenced.fence.save_room_state(room, "a", old, b"by a")
    await fenced.fence.publish(room, "a", old, channel, b"from a")
    assert await asyncio.wait_for(got.get(), TIMEOUT) == b"from a"
    assert await fenced.store.load_room_state(room) == b"by a"

    await asyncio.sleep(0.5)  # a's lease lapses: nobody holds it, so nobody may write
    with pytest.raises(StaleHome):
        await fenced.fence.save_room_state(room, "a", old, b"lapsed")

    new = await fenced.lease.take(room, "b", 5.0)
    await fenced.fence.save_room_state(room, "b", new, b"by b")
    # a comes back with what it had in flight: refused, and b's state stays.
    with pytest.raises(StaleHome):
        await fenced.fence.save_room_state(room, "a", old, b"late a")
    with pytest.raises(StaleHome):
        await fenced.fence.publish(room, "a", old, channel, b"late a")
    # A worker's own older token is refused too (a home it ran before).
    with pytest.raises(StaleHome):
        await fenced.fence.save_room_state(room, "b", old, b"old b")
    assert await fenced.store.load_room_state(room) == b"by b"
    # The talk record too: only the holder adds to it.
    with pytest.raises(StaleHome):
        await fenced.fence.append_talk(room, "a", old, b"late talk")
    assert await fenced.fence.append_talk(room, "b", new, b"talk")
    assert await fenced.store.load_talk(room) == [b"talk"]
    await fenced.fence.publish(room, "b", new, channel, b"from b")
    assert await asyncio.wait_for(got.get(), TIMEOUT) == b"from b"
    assert got.empty()
