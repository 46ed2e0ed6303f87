"""What a room's media needs from the process that holds it, and nothing more.

`RoomMedia` and `LiveRoom` run at a room's home, but they do not know what a worker is: they
are handed a `MediaHost`. The worker gives them its own (`server/session/media_host.py`); the
unit tests give them a fake. So media depends on these few operations, never on `session/`.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from server.media.mixes import Mixes
from server.settings import Settings
from server.sync.audit import Actor, AuditAction, DetailValue


@dataclass(frozen=True, slots=True)
class Recording:
    """A live lesson's recording: the library's video id, and the file the muxer writes."""

    video: str
    path: Path


class Auditor(Protocol):
    def record(
        self,
        action: AuditAction,
        actor: Actor,
        *,
        room: str | None = None,
        video: str | None = None,
        remote: str | None = None,
        **detail: DetailValue,
    ) -> None:
        """Queue an audit event; never waits."""


class Recordings(Protocol):
    """Where live lessons are recorded: the video library, seen from the media side."""

    async def begin(self, room: str, owner: str, title: str) -> Recording:
        """A new recording of `room`'s live lesson, published by `owner`."""

    async def finish(self, video: str) -> str | None:
        """Hand a finished (or orphaned) recording to the ingest; an empty one is deleted.
        Returns the video id if it was kept."""


class MediaHost(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def audit(self) -> Auditor: ...

    @property
    def recordings(self) -> Recordings: ...

    @property
    def mixes(self) -> Mixes:
        """The process's mixing child, shared by the conversations of its rooms."""

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a background step owned by the host; its failure is logged, not raised."""

    def viewer_count(self) -> int:
        """Viewers this process serves across all its rooms (against `media_max_viewers`)."""
