"""The worker's side of `MediaHost`: what a room's media at its home may ask of this process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from server.library.library import VideoLibrary
from server.media.host import Auditor, Recording
from server.media.mixes import Mixes
from server.orgs import Orgs
from server.settings import Settings
from server.sync.store import RoomRecord


class LibraryRecordings:
    """Live recordings go into the video library, owned by the room's school."""

    def __init__(
        self,
        videos: VideoLibrary,
        orgs: Orgs,
        room_record: Callable[[str], Awaitable[RoomRecord]],
    ) -> None:
        self._videos = videos
        self._orgs = orgs
        self._room_record = room_record

    async def begin(self, room: str, owner: str, title: str) -> Recording:
        # A classroom's recording is its school's, whoever in the room published it.
        record = await self._room_record(room)
        org = self._orgs.owning(record.org) if self._orgs.configured else None
        if record.cycle is not None:
            # An observation in a coaching cycle: the teacher's own lesson, as an upload of
            # hers is (among her videos, hers to keep or delete), not the classroom camera's.
            teachers = [person for person, role in record.people.items() if role == "teacher"]
            owner = teachers[0] if teachers else owner
        video = await self._videos.start_recording(room=room, owner=owner, org=org, title=title)
        return Recording(video.id, self._videos.upload_path(video.id))

    async def finish(self, video: str) -> str | None:
        return await self._videos.queue_recording(video)


class WorkerMediaHost:
    def __init__(
        self,
        settings: Settings,
        *,
        audit: Auditor,
        recordings: LibraryRecordings,
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
        viewer_count: Callable[[], int],
        mixes: Mixes,
    ) -> None:
        self._settings = settings
        self._audit = audit
        self._recordings = recordings
        self._spawn = spawn
        self._viewer_count = viewer_count
        self._mixes = mixes

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def audit(self) -> Auditor:
        return self._audit

    @property
    def recordings(self) -> LibraryRecordings:
        return self._recordings

    @property
    def mixes(self) -> Mixes:
        return self._mixes

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._spawn(coro, name)

    def viewer_count(self) -> int:
        return self._viewer_count()
