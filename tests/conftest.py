from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import RedisServer, Running, make_settings, redis_server, serve_in_process


@pytest.fixture(autouse=True)
def loopback_media() -> None:
    """Every WebRTC peer in the test process, ours and in-process servers', offers 127.0.0.1
    only (DESIGN §3): tests never send media to another address."""
    from server.media.ice import offer_host_addresses

    offer_host_addresses(["127.0.0.1"])


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    """One real redis-server on a free port for the whole run; tests use their own keys."""
    with redis_server() as server:
        yield server


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Running]:
    """A real embedded-mode server (in-memory broker, SQLite) on port 0, with room `r1`."""
    from server.sync.sqlite_store import SqliteStore
    from server.sync.store import RoomRecord

    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    await store.create_room(RoomRecord(id="r1", title="Lesson one", created=0.0))
    await store.close()
    async with serve_in_process(make_settings(tmp_path)) as running:
        yield running
