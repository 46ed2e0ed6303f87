"""The video library: lesson videos uploaded once, transcoded once, served by WebRTC.

On disk, under `<data>/videos` (one directory every worker shares in distributed mode):

    <id>/upload        the upload as it arrives; deleted once the video is ingested
    <id>/360p.webm     VP8 + Opus, short side at most 360 px (never scaled up)
    <id>/720p.webm     short side at most 720 px; only when the source is larger than 360p
    <id>/*.webm.part   a rendition being written; renamed when complete

The records live in the Store (`VideoRecord`), so every worker sees every video. The media
side asks `videos.get(id)` for a record and `videos.file(record, "360p")` for the
file to serve. docs/videos.md describes the whole library.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec

from server.errors import InvalidField, NotFound
from server.library.holds import HoldFrames
from server.library.ingest import Ingest
from server.library.purge import RetentionJob, purge_expired
from server.library.renditions import UPLOAD_FILE, pick_rendition
from server.settings import Settings
from server.sync.audit import AuditEvent
from server.sync.broker import Broker
from server.sync.keys import WITHDRAWN_CHANNEL
from server.sync.lease import Lease
from server.sync.store import VIDEO_ID, Consent, Store, VideoRecord

log = logging.getLogger(__name__)


def new_video_id() -> str:
    return "v" + secrets.token_hex(6)


async def add_generated_video(store: Store, root: Path, title: str, seconds: float) -> VideoRecord:
    """A video whose source the ingest generates (`server/library/clip.py`): the demo lesson.
    It is queued in the store; the first worker whose sweep finds it makes and ingests it."""
    video_id = new_video_id()

    def make() -> None:
        (root / video_id).mkdir(parents=True)
        (root / video_id / UPLOAD_FILE).touch()

    await asyncio.to_thread(make)
    now = time.time()
    record = VideoRecord(
        id=video_id,
        title=title,
        created=now,
        owner="admin",
        status="queued",
        filename="demo-lesson.mp4",
        updated=now,
        generate=seconds,
        consent="not_needed",  # a test picture and a tone: nobody is in it
    )
    await store.put_video(record)
    return record


class VideoLibrary:
    """The records and files of the library, and its ingest queue."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        broker: Broker,
        lease: Lease,
        holder: str,
        audit: Callable[[AuditEvent], None],
        on_withdrawn: Callable[[str, str], None],
    ) -> None:
        """`holder` names this process in the ingest and retention leases; `audit` records an
        event; `on_withdrawn(video, reason)` closes this process's viewers of a video."""
        self.settings = settings
        self.store = store
        self.broker = broker
        self.root = settings.library or settings.data / "videos"
        self._on_withdrawn_here = on_withdrawn
        self.holds = HoldFrames(self.root, settings.ingest_nice)
        self.ingest = Ingest(self, settings, lease=lease, holder=holder, holds=self.holds)
        self.retention = RetentionJob(
            lease=lease,
            holder=holder,
            interval=settings.retention_interval_seconds,
            purge=lambda noted: purge_expired(
                store, self.root, settings.video_retention_days, delete=self.delete, noted=noted
            ),
            audit=audit,
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[VideoLibrary]:
        """Run the ingest queue (and re-queue what a stopped worker left) while inside."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        broker = self.broker
        await broker.subscribe(WITHDRAWN_CHANNEL, self._on_withdrawn)
        try:
            async with self.ingest.running(), asyncio.TaskGroup() as group:
                job = group.create_task(self.retention.run(), name="retention")
                try:
                    yield self
                finally:
                    job.cancel()
        finally:
            await broker.unsubscribe(WITHDRAWN_CHANNEL, self._on_withdrawn)

    # ---- withdrawing ----------------------------------------------------------------------

    async def withdraw(self, video_id: str, reason: str) -> None:
        """Stop every viewer of the video at once, on every worker: it was deleted or its
        consent withdrawn (a pupil who must not be seen: DOMAIN.md). New viewers are refused by
        the record itself; this ends the sessions already open."""
        await self.broker.publish(WITHDRAWN_CHANNEL, f"{video_id}\n{reason}".encode())

    def _on_withdrawn(self, data: bytes) -> None:
        video_id, _, reason = data.decode("utf-8", "replace").partition("\n")
        self._on_withdrawn_here(video_id, reason)

    # ---- what the media side uses -------------------------------------------------------

    async def get(self, video_id: str) -> VideoRecord | None:
        if not VIDEO_ID.match(video_id):
            return None
        return await self.store.get_video(video_id)

    def file(self, record: VideoRecord | None, rendition: str = "360p") -> Path:
        """The WebM file to serve: NotFound (with the reason) unless the video is ready."""
        if record is None:
            raise NotFound("no such video")
        if record.status != "ready":
            detail = f": {record.error}" if record.error else ""
            raise NotFound(
                f"video {record.id!r} is not ready ({record.status}, "
                f"{record.progress:.0%} ingested){detail}"
            )
        chosen = pick_rendition(record, rendition)
        path = self.root / chosen.file
        if not path.is_file():
            raise NotFound(
                f"video {record.id!r}: its {chosen.name} file is missing from the library"
            )
        return path

    async def path(self, video_id: str, rendition: str = "360p") -> Path:
        """`file` for a video id."""
        record = await self.get(video_id)
        if record is None:
            raise NotFound(f"video {video_id[:64]!r} does not exist")
        return self.file(record, rendition)

    # ---- paths --------------------------------------------------------------------------

    def directory(self, video_id: str) -> Path:
        assert VIDEO_ID.match(video_id), video_id
        return self.root / video_id

    def upload_path(self, video_id: str) -> Path:
        return self.directory(video_id) / UPLOAD_FILE

    def rendition_file(self, video_id: str, name: str) -> str:
        """A rendition's path relative to the library, as the record keeps it."""
        return f"{video_id}/{name}.webm"

    # ---- records ------------------------------------------------------------------------

    async def create(
        self,
        *,
        owner: str,
        org: str | None,
        title: str,
        filename: str | None,
        length: int,
        consent: Consent = "not_obtained",
        retention_days: int | None = None,
    ) -> VideoRecord:
        """A new upload: its directory, an empty upload file, then the record."""
        now = time.time()
        record = VideoRecord(
            id=new_video_id(),
            title=title,
            created=now,
            owner=owner,
            org=org,
            upload_length=length,
            filename=filename,
            updated=now,
            consent=consent,
            retention_days=retention_days,
        )

        def make() -> None:
            self.directory(record.id).mkdir(parents=True, exist_ok=False)
            self.upload_path(record.id).touch()

        await asyncio.to_thread(make)
        await self.store.put_video(record)
        return record

    async def start_recording(
        self, *, room: str, owner: str, org: str | None, title: str
    ) -> VideoRecord:
        """A live lesson's recording: a video that is written while the lesson goes on
        (`recording`), then ingested like an upload (`queue_recording`)."""
        record = await self.create(
            owner=owner, org=org, title=title, filename=f"live-{room}.webm", length=0
        )
        return await self.save(msgspec.structs.replace(record, status="recording", room=room))

    async def queue_recording(self, video_id: str) -> str | None:
        """Hand a finished (or orphaned) recording to the ingest, like an upload; an empty one
        is deleted. Returns the video id if it was kept."""
        record = await self.get(video_id)
        if record is None or record.status != "recording":
            return video_id if record is not None else None
        path = self.upload_path(video_id)
        size = await asyncio.to_thread(lambda: path.stat().st_size if path.exists() else 0)
        if size == 0:
            await self.delete(video_id)
            return None
        record = await self.save(
            msgspec.structs.replace(record, status="queued", upload_length=size, upload_offset=size)
        )
        await self.ingest.submit(record)
        log.info("recording %s (%d bytes) queued for ingest", video_id, size)
        return video_id

    async def create_clip(
        self, parent: VideoRecord, start: float, end: float, title: str
    ) -> VideoRecord:
        """A clip's media (docs/groups.md): a video of its own, cut once from `parent` (its
        largest rendition) from `start` to `end` seconds by the ingest, like a finished
        recording. It belongs where its video does and follows its consent and retention.
        InvalidField for a clip of a clip or a range that is not one; the range is otherwise
        the caller's to check against the video (the ingest fails a cut past its end)."""
        if parent.clip_of is not None:
            raise InvalidField(f"video {parent.id!r} is a clip: a clip is cut from a lesson video")
        if not (math.isfinite(start) and math.isfinite(end) and 0.0 <= start < end):
            raise InvalidField(f"a clip runs from start to a later end, not {start} to {end}")
        now = time.time()
        record = VideoRecord(
            id=new_video_id(),
            title=title,
            created=now,
            owner=parent.owner,
            org=parent.org,
            status="queued",
            updated=now,
            consent=parent.consent,
            retention_days=parent.retention_days,
            clip_of=parent.id,
            clip_start=float(start),
            clip_end=float(end),
        )
        await asyncio.to_thread(self.directory(record.id).mkdir, parents=True, exist_ok=False)
        await self.store.put_video(record)
        await self.ingest.submit(record)
        log.info("clip %s of %s (%.3f-%.3f s) queued for ingest", record.id, parent.id, start, end)
        return record

    async def save(self, record: VideoRecord) -> VideoRecord:
        """Write the record back; NotFound if the video was deleted meanwhile (its files are
        then removed too, in case this writer made some after the deletion)."""
        record = _touched(record)
        if not await self.store.update_video(record):
            await self.remove_files(record.id)
            raise NotFound(f"video {record.id!r} was deleted")
        return record

    async def delete(self, video_id: str) -> bool:
        """The record, any ingest of it on this worker, and its files. An ingest on another
        worker notices at its next progress write and stops."""
        existed = await self.store.delete_video(video_id)
        self.ingest.cancel(video_id, "deleted")
        await self.withdraw(video_id, "the video was deleted")
        await self.remove_files(video_id)
        return existed

    async def remove_files(self, video_id: str) -> None:
        if not VIDEO_ID.match(video_id):
            return  # not an id the library makes, so no directory of ours: touch nothing
        await asyncio.to_thread(shutil.rmtree, self.directory(video_id), ignore_errors=True)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root if self.root.exists() else self.settings.data).free


def _touched(record: VideoRecord) -> VideoRecord:
    return msgspec.structs.replace(record, updated=time.time())
