"""A room's media at its home: the playback clock and the WHEP viewers that follow it.

Only the home holds viewers (DESIGN §1): media flows straight between a viewer and the home,
and every viewer of the room follows one clock in one process, which is what keeps them on the
same frame. Other workers reach this through `server/media/signaling.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from server.errors import Forbidden, MediaFull, NotFound
from server.media.clock import PlaybackClock
from server.media.ice import RemotePolicy
from server.media.viewer import Viewer, check_offer, new_viewer
from server.messages import PlaybackInfo

if TYPE_CHECKING:
    from server.session.worker import Worker

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class Lesson:
    """The file a room's viewers watch, and what the room's rules need to know of it."""

    video: str
    path: Path
    duration: float | None
    fps: float | None


class LessonFinder(Protocol):
    async def __call__(self, room: str, rendition: str) -> Lesson: ...


class RoomMedia:
    def __init__(
        self,
        worker: Worker,
        room_id: str,
        *,
        find_lesson: LessonFinder,
        attach: Callable[[Lesson], None],
    ) -> None:
        self.worker = worker
        self.room_id = room_id
        self.clock = PlaybackClock()
        self.viewers: dict[str, Viewer] = {}
        self._find_lesson = find_lesson
        self._attach = attach
        self._policy = RemotePolicy.parse(worker.settings.media_remote_networks)
        self._wake = asyncio.Event()

    def follow(self, state: PlaybackInfo) -> None:
        self.clock.update(state)

    # ---- signaling ----------------------------------------------------------------------

    async def watch(self, *, user: str, name: str, offer: str, rendition: str) -> tuple[str, str]:
        """Answer a WHEP offer; returns the viewer's id and the SDP answer."""
        kinds = check_offer(offer)
        if self.worker.media_viewers() >= self.worker.settings.media_max_viewers:
            raise MediaFull(
                f"this server already serves {self.worker.settings.media_max_viewers} viewers"
            )
        lesson = await self._find_lesson(self.room_id, rendition)
        self._attach(lesson)  # a new lesson resets the clock through the room's rules
        viewer = new_viewer(user=user, name=name, path=lesson.path, clock=self.clock, kinds=kinds)
        viewer.pc.on("connectionstatechange", lambda: self._on_change(viewer))
        try:
            answer = await viewer.answer(offer, self._policy)
        except BaseException:
            await viewer.close()
            raise
        self.viewers[viewer.id] = viewer
        log.info("room %s: viewer %s (%s) watching %s", self.room_id, viewer.id, user, lesson.video)
        return viewer.id, answer

    async def trickle(self, session: str, user: str, fragment: str) -> None:
        await self._own(session, user).trickle(fragment, self._policy)

    async def leave(self, session: str, user: str) -> None:
        viewer = self._own(session, user)
        await self._close(viewer, "left")

    def _own(self, session: str, user: str) -> Viewer:
        viewer = self.viewers.get(session)
        if viewer is None:
            raise NotFound(f"no viewer session {session!r} in room {self.room_id!r}")
        if viewer.user != user:
            raise Forbidden("this viewer session belongs to someone else")
        return viewer

    # ---- housekeeping -------------------------------------------------------------------

    def _on_change(self, viewer: Viewer) -> None:
        if viewer.pc.connectionState in ("failed", "closed"):
            self._wake.set()

    async def run(self) -> None:
        """Close viewers whose connection failed or never came up; until cancelled."""
        try:
            while True:
                self._wake.clear()
                await self._sweep(time.monotonic())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SWEEP_INTERVAL):
                        await self._wake.wait()
        finally:
            await self.close()

    async def _sweep(self, now: float) -> None:
        timeout = self.worker.settings.media_connect_timeout
        for viewer in list(self.viewers.values()):
            state = viewer.pc.connectionState
            if state in ("failed", "closed"):
                await self._close(viewer, state)
            elif state != "connected" and now - viewer.created > timeout:
                await self._close(viewer, "never connected")

    async def _close(self, viewer: Viewer, reason: str) -> None:
        if self.viewers.pop(viewer.id, None) is not None:
            log.info("room %s: viewer %s closed (%s)", self.room_id, viewer.id, reason)
        await viewer.close()

    async def close(self) -> None:
        for viewer in list(self.viewers.values()):
            await self._close(viewer, "home stopping")
