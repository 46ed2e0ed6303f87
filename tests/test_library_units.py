"""The video library built from its collaborators alone (a SQLite store, the in-memory broker
and lease): no worker. Ingest itself is tested end to end in tests/test_ingest.py."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from server.errors import NotFound
from server.library.ingest import _Progress
from server.library.library import VideoLibrary
from server.library.purge import LEASE, Purged, RetentionJob
from server.library.retention import Expired
from server.sync.audit import AuditEvent
from server.sync.broker import MemoryBroker
from server.sync.lease import MemoryLease
from server.sync.sqlite_store import SqliteStore
from server.sync.store import VideoRecord
from tests.support import make_settings


class Shelf:
    def __init__(self, tmp: Path) -> None:
        self.settings = make_settings(tmp, retention_interval_seconds=0.05)
        self.store = SqliteStore(tmp / "cocoach.sqlite3")
        self.broker = MemoryBroker()
        self.lease = MemoryLease()
        self.audited: list[AuditEvent] = []
        self.withdrawn: list[tuple[str, str]] = []
        self.library = VideoLibrary(
            self.settings,
            store=self.store,
            broker=self.broker,
            lease=self.lease,
            holder="w1",
            audit=self.audited.append,
            on_withdrawn=lambda video, reason: self.withdrawn.append((video, reason)),
        )


@pytest_asyncio.fixture
async def shelf(tmp_path: Path) -> AsyncIterator[Shelf]:
    made = Shelf(tmp_path)
    yield made
    await made.store.close()


async def test_a_recording_is_written_then_queued_like_an_upload(shelf: Shelf) -> None:
    library = shelf.library
    record = await library.start_recording(room="r1", owner="cam", org=None, title="Live")
    assert (record.status, record.room, record.owner) == ("recording", "r1", "cam")
    path = library.upload_path(record.id)
    path.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(100))  # what the muxer wrote

    assert await library.queue_recording(record.id) == record.id
    queued = await library.get(record.id)
    assert queued is not None and queued.status == "queued" and queued.upload_length == 104
    assert record.id in library.ingest.held  # this worker took the ingest lease
    assert await library.queue_recording(record.id) == record.id  # again: nothing changes


async def test_an_empty_recording_is_deleted(shelf: Shelf) -> None:
    library = shelf.library
    record = await library.start_recording(room="r1", owner="cam", org=None, title="Live")
    assert await library.queue_recording(record.id) is None
    assert await library.get(record.id) is None
    assert not library.directory(record.id).exists()
    with pytest.raises(NotFound):
        await library.path(record.id)


async def test_withdrawing_a_video_reaches_every_worker_listening(shelf: Shelf) -> None:
    async with shelf.library.running():
        await shelf.library.withdraw("v0000000000c3", "consent was withdrawn")
    assert shelf.withdrawn == [("v0000000000c3", "consent was withdrawn")]


async def test_deleting_a_video_withdraws_it(shelf: Shelf) -> None:
    library = shelf.library
    record = await library.create(owner="t1", org=None, title="Lesson", filename=None, length=3)
    async with library.running():
        assert await library.delete(record.id)
    assert shelf.withdrawn == [(record.id, "the video was deleted")]
    assert await library.get(record.id) is None


def purged(video: str) -> Purged:
    record = VideoRecord(id=video, title="Old", created=0.0, owner="t1", updated=0.0)
    return Purged(Expired(record, expired_at=time.time(), days=1), files=())


async def test_the_retention_round_runs_only_under_its_lease() -> None:
    lease = MemoryLease()
    audited: list[AuditEvent] = []
    rounds: list[str] = []

    async def purge(noted: Callable[[Purged], Awaitable[None]]) -> list[Purged]:
        rounds.append("purge")
        done = purged("v0000000000d4")
        await noted(done)
        return [done]

    job = RetentionJob(lease=lease, holder="w1", interval=0.05, purge=purge, audit=audited.append)
    assert await lease.acquire(LEASE, "w2", 10)  # another worker runs the job
    assert await job.round() == []
    assert rounds == [] and audited == []

    await lease.release(LEASE, "w2")
    done = await job.round()
    assert [p.expired.record.id for p in done] == ["v0000000000d4"]
    assert [(e.action, e.video) for e in audited] == [("video.purge", "v0000000000d4")]
    assert await lease.holder(LEASE) == "w1"


async def test_progress_reaches_one_only_when_the_last_rendition_is_saved(shelf: Shelf) -> None:
    """The transcoder says 1.0 as it finishes a rendition; the record must not, since a record
    at 1.0 is one with every rendition made (the page and the tests wait for that)."""
    record = VideoRecord(id="v0000000000e5", title="Lesson", created=0.0, owner="t1", updated=0.0)
    await shelf.store.put_video(record)
    for index in (0, 1):
        progress = _Progress(shelf.library, record, index, 2)
        progress._last = 0.0  # as if the last write was long ago
        await progress(1.0)
        stored = await shelf.library.get(record.id)
        assert stored is not None and stored.progress == progress.record.progress
        assert 0.0 < stored.progress < (index + 1) / 2
