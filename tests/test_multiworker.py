"""Two (or three) real `cocoach serve --redis` processes on one real Redis."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import (
    ADMIN_KEY,
    TIMEOUT,
    RedisServer,
    WorkerProcess,
    join,
    redis_or_cluster,  # noqa: F401  (the `redis` fixture: one Redis, a cluster)
    start_worker,
)


@pytest.fixture
def workers(tmp_path: Path, redis: RedisServer) -> Iterator[list[WorkerProcess]]:
    started = [start_worker(tmp_path / f"w{i}", redis.url, f"w{i}") for i in (1, 2)]
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


def create_room(base: str) -> str:
    room = f"room-{uuid.uuid4().hex[:8]}"
    response = httpx.post(
        f"{base}/api/rooms",
        json={"id": room, "title": "Questioning"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 201, response.text
    return room


def lease_holder(redis: RedisServer, room: str) -> str | None:
    client = redis.sync_client()
    try:
        value = client.get(f"cocoach:{{{room}}}:lease")
        return None if value is None else value.decode()
    finally:
        client.close()


async def test_members_on_two_workers_see_each_other(workers: list[WorkerProcess]) -> None:
    one, two = workers
    room = create_room(one.base)  # created on one worker, found by the other: a shared store
    async with join(one.base, room, "coach", "Ann") as ann:
        async with join(two.base, room, "teacher", "Tess") as tess:
            assert {m["name"] for m in tess.welcome["members"]} == {"Ann", "Tess"}
            joined = await ann.expect("member_joined")
            assert joined["member"]["id"] == tess.id

            await tess.send(type="presence", status="away", state={"tab": "plan"})
            updated = await ann.expect("member_updated")
            assert updated["member"]["status"] == "away"

            await tess.send(type="seek", position=12.0)
            for client in (ann, tess):
                assert (await client.expect("playback"))["playback"]["position"] == 12.0

            await tess.send(type="ping", id=1, t0=0.5)
            assert (await tess.expect("pong"))["t0"] == 0.5
        assert (await ann.expect("member_left"))["id"] == tess.id


async def test_a_killed_worker_has_its_members_reported_left(
    workers: list[WorkerProcess], redis: RedisServer
) -> None:
    one, two = workers
    room = create_room(one.base)
    async with join(one.base, room, "coach", "Ann") as ann:
        assert lease_holder(redis, room) == "w1"
        async with join(two.base, room, "teacher", "Tess") as tess:
            await ann.expect("member_joined")
            two.crash()
            left = await ann.expect("member_left", timeout=TIMEOUT)
            assert left["id"] == tess.id and left["reason"] == "disconnected"


async def test_the_home_moves_when_its_worker_is_killed(
    tmp_path: Path, workers: list[WorkerProcess], redis: RedisServer
) -> None:
    one, two = workers
    room = create_room(one.base)
    async with join(one.base, room, "coach", "Ann") as ann:
        assert lease_holder(redis, room) == "w1"
        async with (
            join(two.base, room, "teacher", "Tess") as tess,
            join(two.base, room, "observer", "Obi") as obi,
        ):
            await ann.send(type="seek", position=42.0)
            await obi.expect("playback")
            one.crash()

            # The survivors hear that Ann is gone, and the lease passes to their worker.
            left = await tess.expect("member_left", timeout=2 * TIMEOUT)
            assert left["id"] == ann.id
            assert lease_holder(redis, room) == "w2"

            # The new home serves intents, starting from the state the old home persisted.
            await tess.send(type="rate", rate=1.5)
            state = (await obi.expect("playback"))["playback"]
            assert state["rate"] == 1.5 and state["position"] == 42.0 and state["seq"] == 2

            # A newcomer (on a third worker) is welcomed with the right members and state.
            three = start_worker(tmp_path / "w3", redis.url, "w3")
            try:
                async with join(three.base, room, "coach", "Cy") as cy:
                    names = {m["name"] for m in cy.welcome["members"]}
                    assert names == {"Tess", "Obi", "Cy"}
                    assert cy.welcome["playback"]["position"] == 42.0
                    await tess.expect("member_joined")
            finally:
                three.kill()


async def test_a_stopping_worker_hands_over_at_once(
    workers: list[WorkerProcess], redis: RedisServer
) -> None:
    one, two = workers
    room = create_room(one.base)
    async with (
        join(one.base, room, "coach", "Ann") as ann,
        join(two.base, room, "teacher", "Tess") as tess,
    ):
        await ann.expect("member_joined")
        one.process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert one.process.wait(TIMEOUT) in (0, -signal.SIGTERM)
        left = await tess.expect("member_left", timeout=TIMEOUT)
        assert left["id"] == ann.id
        await tess.send(type="play")
        assert (await tess.expect("playback"))["playback"]["status"] == "playing"
        assert lease_holder(redis, room) == "w2"


async def test_the_lease_stays_with_a_live_home(
    workers: list[WorkerProcess], redis: RedisServer
) -> None:
    import asyncio

    one, two = workers
    room = create_room(one.base)
    async with join(one.base, room, "coach", "Ann") as ann, join(two.base, room, "teacher", "Tess"):
        await ann.expect("member_joined")
        await asyncio.sleep(3.5)  # longer than the lease's TTL: renewals must keep it
        assert lease_holder(redis, room) == "w1"
        await ann.silent(0.2)  # and nobody was reported gone
