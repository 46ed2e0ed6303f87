"""Which file a room's viewers watch: the video named by the room document's `meta.video`
(DESIGN §2), else the one the room was created with, in the rendition asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pycrdt import Map

from server.errors import NotFound, NoVideo
from server.media.room_media import Lesson

if TYPE_CHECKING:
    from server.session.worker import Worker

RENDITIONS = ("360p", "720p")


async def find_lesson(worker: Worker, room: str, rendition: str) -> Lesson:
    if rendition not in RENDITIONS:
        raise NotFound(f"rendition {rendition!r} does not exist; choose one of {RENDITIONS}")
    doc = await worker.documents.read(room)
    meta: Map[Any] = doc.get("meta", type=Map)
    video = meta.get("video")
    if not isinstance(video, str) or not video:
        video = (await worker.room_record(room)).video
    if not video:
        raise NoVideo(f"room {room!r} has no lesson video: set the room document's meta.video")
    record = await worker.videos.get(video)
    if record is None:
        raise NoVideo(f"the room's video {video!r} does not exist (deleted?)")
    if record.status != "ready":
        raise NoVideo(
            f"the room's video {video!r} is not ready yet ({record.status}, "
            f"{record.progress:.0%} ingested)"
        )
    path = worker.videos.file(record, rendition)
    return Lesson(video=video, path=path, duration=record.duration, fps=record.fps)
