"""Room records: their ids, and which video a room may show. Shared by the routes and the CLI."""

from __future__ import annotations

import re
import secrets

from server.errors import NotFound
from server.orgs import Orgs
from server.sync.store import RoomRecord, Store

ROOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def new_room_id() -> str:
    return secrets.token_urlsafe(8).replace("_", "x").replace("-", "y").lower()


async def check_room_video(orgs: Orgs, store: Store, record: RoomRecord) -> None:
    """A room may show only a video of its own organisation (private by default); another
    school's video answers as if it did not exist."""
    if record.video is None:
        return
    video = await store.get_video(record.video)
    if video is None or orgs.owning(video.org) != orgs.owning(record.org):
        raise NotFound(f"video {record.video[:64]!r} does not exist in the room's organisation")
