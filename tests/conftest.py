from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import (
    RedisClusterServers,
    RedisServer,
    Running,
    make_settings,
    redis_cluster,
    redis_server,
    replica_of,
    serve_in_process,
)

# The files that take longest (`make test`'s three processes, Dec 2026), longest first, with the
# browser-heavy ones between lighter ones that mostly wait (the mixer, Redis restarts): the
# first three start together and each process then takes the next file (--dist loadfile
# --no-loadscope-reorder), so the long files start early and two pages-full of Chromium
# seldom share the two cores. A file missing here only runs later; nothing is skipped.
LONGEST_FIRST = [
    "test_web_live_join.py",
    "test_mixer.py",
    "test_fuzz.py",
    "test_web_voice.py",
    "test_redis_restart.py",
    "test_cluster.py",
    "test_web.py",
    "test_multiworker.py",
    "test_clips_api.py",
    "test_supervisor.py",
    "test_sentinel.py",
    "test_web_groups.py",
    "test_room_socket.py",
    "test_web_cycle.py",
    "test_ingest.py",
    "test_partition.py",
    "test_org_access.py",
    "test_web_lessons.py",
    "test_videos.py",
    "test_redis_replicas.py",
    "test_live.py",
    "test_clip_media.py",
    "test_voice.py",
    "test_documents_multiworker.py",
    "test_codec_isolation.py",
    "test_package.py",
    "test_sign_in.py",
    "test_clips_multiworker.py",
    "test_live_multiworker.py",
    "test_cycle_report.py",
    "test_lesson_tracks.py",
    "test_whep.py",
    "test_web_admin.py",
    "test_voice_multiworker.py",
    "test_web_live.py",
    "test_worker_crash.py",
    "test_web_home.py",
    "test_web_consent.py",
    "test_demo_ingest.py",
    "test_cli.py",
    "test_audit.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file


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


@pytest.fixture(scope="session")
def cluster() -> Iterator[RedisClusterServers]:
    """A Redis Cluster (three primaries, three replicas) for the whole run; tests use their own
    keys and must not kill its nodes (a test that fails a node over starts its own)."""
    with redis_cluster() as servers:
        yield servers


@pytest.fixture(scope="session")
def replicated_redis() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A redis-server and its replica, for the whole run: (primary, replica)."""
    with redis_server() as primary, replica_of(primary) as replica:
        yield primary, replica


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
