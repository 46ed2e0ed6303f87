"""Which file a room's viewers watch: the video named by the room document's `meta.video`
(DESIGN §2), else the one the room was created with, in the rendition asked for."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pycrdt import Doc, Map

from server.errors import ConsentMissing, NotFound, NoVideo
from server.library.library import VideoLibrary
from server.library.renditions import RENDITION_NAMES as RENDITIONS
from server.library.renditions import pick_rendition
from server.library.retention import consent_covers
from server.media.room_media import Lesson
from server.orgs import Orgs
from server.sync.store import RoomRecord, VideoRecord


class Lessons:
    def __init__(
        self,
        *,
        read_document: Callable[[str], Awaitable[Doc[Any]]],
        room_record: Callable[[str], Awaitable[RoomRecord]],
        orgs: Orgs,
        videos: VideoLibrary,
    ) -> None:
        self._read_document = read_document
        self._room_record = room_record
        self._orgs = orgs
        self._videos = videos

    async def video_id(self, room: str) -> str | None:
        """The id of the video the room shows: its document's `meta.video`, else its record's."""
        doc = await self._read_document(room)
        meta: Map[Any] = doc.get("meta", type=Map)
        video = meta.get("video")
        if isinstance(video, str) and video:
            return video
        return (await self._room_record(room)).video

    def belongs_to_room(self, room: RoomRecord, video: VideoRecord) -> bool:
        """A room shows only a video of its own organisation: `meta.video` is written by room
        members, and naming another school's video there must not play it (private by
        default)."""
        return self._orgs.owning(video.org) == self._orgs.owning(room.org)

    async def find(self, room: str, rendition: str) -> Lesson:
        if rendition not in RENDITIONS:
            raise NotFound(f"rendition {rendition!r} does not exist; choose one of {RENDITIONS}")
        video = await self.video_id(room)
        if not video:
            raise NoVideo(f"room {room!r} has no lesson video: set the room document's meta.video")
        record = await self._videos.get(video)
        if record is None or not self.belongs_to_room(await self._room_record(room), record):
            raise NoVideo(
                f"the room's video {video!r} does not exist (deleted?) or is not this room's"
            )
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
        path = self._videos.file(record, rendition)
        chosen = pick_rendition(record, rendition)
        size = (chosen.width, chosen.height)
        return Lesson(video=video, path=path, duration=record.duration, fps=record.fps, size=size)
