"""The audit log's one contract, run against SQLite and a Redis stream (real redis-server)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from server.sync.audit import Actor, AuditEvent, AuditLog, AuditQuery
from server.sync.redis_audit import RedisAuditLog
from server.sync.sqlite_audit import SqliteAuditLog
from tests.support import RedisServer

ANN = Actor(sub="user:ann", name="Ann", role="coach", org="north")
TIA = Actor(sub="user:tia", name="Tia", role="teacher")


@pytest.fixture(params=["embedded", "redis"])
async def audit(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuditLog]:
    if request.param == "embedded":
        sqlite = SqliteAuditLog(tmp_path / "audit.sqlite3")
        yield sqlite
        await sqlite.close()
        return
    server: RedisServer = request.getfixturevalue("redis")
    client = aioredis.Redis.from_url(server.url)
    # A stream of its own: workers in other tests write to the shared one.
    yield RedisAuditLog(client, 100_000, stream=f"cocoach:test-audit:{uuid.uuid4().hex}")
    await client.aclose()


def event(t: float, action: str = "room.join", actor: Actor = ANN, **kw: object) -> AuditEvent:
    return AuditEvent(time=t, action=action, actor=actor, **kw)  # type: ignore[arg-type]


async def test_events_come_back_in_order_with_increasing_ids(audit: AuditLog) -> None:
    first = [event(100.0 + i, room="r1", detail={"i": i}) for i in range(5)]
    await audit.append(first)
    await audit.append([event(200.0, "room.leave", room="r1", detail={"reason": "left"})])
    events, more = await audit.query(AuditQuery())
    assert not more
    assert [e.action for e in events] == ["room.join"] * 5 + ["room.leave"]
    assert [e.detail for e in events] == [{"i": i} for i in range(5)] + [{"reason": "left"}]
    assert events[0].actor == ANN and events[0].room == "r1" and events[0].video is None
    assert all(e.id for e in events) and len({e.id for e in events}) == 6


async def test_every_filter_narrows(audit: AuditLog) -> None:
    await audit.append(
        [
            event(10.0, room="r1"),
            event(20.0, "video.watch", TIA, room="r1", video="v1", remote="127.0.0.1"),
            event(30.0, "video.delete", ANN, video="v1"),
            event(40.0, "room.join", TIA, room="r2"),
        ]
    )

    async def times(**filters: object) -> list[float]:
        events, _ = await audit.query(AuditQuery(**filters))  # type: ignore[arg-type]
        return [e.time for e in events]

    assert await times(room="r1") == [10.0, 20.0]
    assert await times(video="v1") == [20.0, 30.0]
    assert await times(actor="user:tia") == [20.0, 40.0]
    assert await times(action="room.join") == [10.0, 40.0]
    assert await times(since=20.0, until=40.0) == [20.0, 30.0]
    assert await times(room="r1", actor="user:tia", action="video.watch") == [20.0]
    assert await times(room="nowhere") == []
    watched, _ = await audit.query(AuditQuery(action="video.watch"))
    assert watched[0].remote == "127.0.0.1" and watched[0].actor == TIA


async def test_limit_says_there_is_more_and_after_pages_on(audit: AuditLog) -> None:
    await audit.append([event(float(i), room="r9", detail={"i": i}) for i in range(1, 13)])
    seen: list[object] = []
    after = None
    for _ in range(10):  # bounded: 12 events in pages of 5 take 3
        page, more = await audit.query(AuditQuery(room="r9", limit=5, after=after))
        seen += [e.detail["i"] for e in page]
        if not more:
            break
        after = page[-1].id
    assert seen == list(range(1, 13))


async def test_an_event_stamped_before_the_last_is_still_found_by_time(audit: AuditLog) -> None:
    # A worker whose clock is behind appends an event "earlier" than one already stored.
    await audit.append([event(50.0, room="on-time")])
    await audit.append([event(40.0, room="late")])
    late, _ = await audit.query(AuditQuery(since=35.0, until=45.0))
    assert [e.room for e in late] == ["late"]
    on_time, _ = await audit.query(AuditQuery(since=45.0))
    assert [e.room for e in on_time] == ["on-time"]


async def test_an_empty_log_answers_nothing(audit: AuditLog) -> None:
    assert await audit.query(AuditQuery(limit=1)) == ([], False)


# ---- what only one backend can show ---------------------------------------------------------


async def test_sqlite_refuses_to_change_or_delete_an_event(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "audit.sqlite3")
    await log.append([event(1.0, room="r1")])
    await log.close()
    db = sqlite3.connect(tmp_path / "audit.sqlite3")
    try:
        for statement in ("UPDATE audit SET actor = 'someone'", "DELETE FROM audit"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(statement)
        assert db.execute("SELECT count(*) FROM audit").fetchone() == (1,)
    finally:
        db.close()


async def test_the_redis_stream_is_capped(redis: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis.url)
    try:
        log = RedisAuditLog(client, 100, stream=f"cocoach:test-audit:{uuid.uuid4().hex}")
        for i in range(10):
            await log.append([event(float(i * 100 + j)) for j in range(100)])
        length = await client.xlen(log.stream)
        # MAXLEN ~ trims whole stream nodes (100 entries each): near the cap, never all 1,000.
        assert 100 <= length <= 300, length
        newest, _ = await log.query(AuditQuery(since=999.0))
        assert [e.time for e in newest] == [999.0]
    finally:
        await client.aclose()
