"""The video library: lesson videos uploaded once, transcoded once, served by WebRTC.

On disk, under `<data>/videos` (one directory every worker shares in distributed mode):

    <id>/upload        the upload as it arrives; deleted once the video is ingested
    <id>/360p.webm     VP8 + Opus, short side at most 360 px (never scaled up)
    <id>/720p.webm     short side at most 720 px; only when the source is larger than 360p
    <id>/*.webm.part   a rendition being written; renamed when complete

The records live in the Store (`VideoRecord`), so every worker sees every video. The media
side asks `worker.videos.get(id)` for a record and `worker.videos.file(record, "360p")` for the
file to serve. docs/videos.md describes the whole library.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from server.errors import NotFound
from server.library.purge import RetentionJob
from server.sync.store import VIDEO_ID, Consent, Rendition, Store, VideoRecord

if TYPE_CHECKING:
    from server.library.ingest import Ingest
    from server.session.worker import Worker

UPLOAD_FILE = "upload"
WITHDRAWN_CHANNEL = "cocoach:videos:withdrawn"  # every worker listens: close viewers of a video


@dataclass(frozen=True, slots=True)
class RenditionPlan:
    name: str
    short_side: int  # pixels; the picture is never scaled up past the source
    video_bitrate: int  # bits per second


# The order matters: the first is made first, and the video is ready once it exists.
RENDITIONS = (
    RenditionPlan("360p", 360, 700_000),
    RenditionPlan("720p", 720, 2_000_000),
)
RENDITION_NAMES = tuple(plan.name for plan in RENDITIONS)
AUDIO_BITRATE = 64_000


def new_video_id() -> str:
    return "v" + secrets.token_hex(6)


def plan_for(width: int, height: int) -> list[RenditionPlan]:
    """The renditions a source of this size gets: 360p always, and each larger one only when
    the source is larger than the one before (a 360p source gets no 720p copy of itself)."""
    short = min(width, height)
    plans = [RENDITIONS[0]]
    for smaller, plan in itertools.pairwise(RENDITIONS):
        if short > smaller.short_side:
            plans.append(plan)
    return plans


def path_of(root: Path, record: VideoRecord, rendition_name: str) -> Path:
    """The file of one rendition of a video, exactly that rendition; NotFound if it has none."""
    for rendition in record.renditions:
        if rendition.name == rendition_name:
            return root / rendition.file
    have = ", ".join(r.name for r in record.renditions) or "none yet"
    raise NotFound(f"video {record.id!r} has no {rendition_name} rendition (it has: {have})")


def pick_rendition(record: VideoRecord, wanted: str) -> Rendition:
    """`wanted` if the video has it, else the largest one below it (a 720p request for a video
    whose 720p is still being made, or was never needed, gets the 360p)."""
    if wanted not in RENDITION_NAMES:
        raise NotFound(f"there is no rendition {wanted[:20]!r}; choose one of {RENDITION_NAMES}")
    have = {r.name: r for r in record.renditions}
    for name in reversed(RENDITION_NAMES[: RENDITION_NAMES.index(wanted) + 1]):
        if name in have:
            return have[name]
    if record.renditions:
        return record.renditions[0]
    raise NotFound(f"video {record.id!r} has no rendition yet")


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
    """`worker.videos`: the records and files of the library, and its ingest queue."""

    def __init__(self, worker: Worker) -> None:
        from server.library.ingest import Ingest  # the queue needs the library, and vice versa

        self.worker = worker
        self.settings = worker.settings
        self.store = worker.store
        self.root = worker.settings.library or worker.settings.data / "videos"
        self.ingest: Ingest = Ingest(self)
        self.retention = RetentionJob(self)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[VideoLibrary]:
        """Run the ingest queue (and re-queue what a stopped worker left) while inside."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        broker = self.worker.broker
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
        await self.worker.broker.publish(WITHDRAWN_CHANNEL, f"{video_id}\n{reason}".encode())

    def _on_withdrawn(self, data: bytes) -> None:
        video_id, _, reason = data.decode("utf-8", "replace").partition("\n")
        for home in list(self.worker.homes.values()):
            self.worker.spawn(home.media.withdraw(video_id, reason), f"withdraw {video_id}")

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
