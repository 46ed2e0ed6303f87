"""Which file a room's viewers watch: the video named by the room document's `meta.video`
(DESIGN §2), else the one the room was created with, in the rendition asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pycrdt import Map

from server.errors import ConsentMissing, NotFound, NoVideo
from server.library.retention import consent_covers
from server.media.room_media import Lesson
from server.sync.store import RoomRecord, VideoRecord

if TYPE_CHECKING:
    from server.session.worker import Worker

RENDITIONS = ("360p", "720p")


async def lesson_video_id(worker: Worker, room: str) -> str | None:
    """The id of the video the room shows: its document's `meta.video`, else its record's."""
    doc = await worker.documents.read(room)
    meta: Map[Any] = doc.get("meta", type=Map)
    video = meta.get("video")
    if isinstance(video, str) and video:
        return video
    return (await worker.room_record(room)).video


def belongs_to_room(worker: Worker, room: RoomRecord, video: VideoRecord) -> bool:
    """A room shows only a video of its own organisation: `meta.video` is written by room
    members, and naming another school's video there must not play it (private by default)."""
    return worker.orgs.owning(video.org) == worker.orgs.owning(room.org)


async def find_lesson(worker: Worker, room: str, rendition: str) -> Lesson:
    if rendition not in RENDITIONS:
        raise NotFound(f"rendition {rendition!r} does not exist; choose one of {RENDITIONS}")
    video = await lesson_video_id(worker, room)
    if not video:
        raise NoVideo(f"room {room!r} has no lesson video: set the room document's meta.video")
    record = await worker.videos.get(video)
    if record is None or not belongs_to_room(worker, await worker.room_record(room), record):
        raise NoVideo(f"the room's video {video!r} does not exist (deleted?) or is not this room's")
    if record.status != "ready":
        raise NoVideo(
            f"the room's video {video!r} is not ready yet ({record.status}, "
            f"{record.progress:.0%} ingested)"
        )
    if not consent_covers(record):
        raise ConsentMissing(
            f"the room's video {video!r} is not shown: consent for it is not recorded "
            "(an admin records it with PATCH /api/videos/{video})"
        )
    path = worker.videos.file(record, rendition)
    return Lesson(video=video, path=path, duration=record.duration, fps=record.fps)
