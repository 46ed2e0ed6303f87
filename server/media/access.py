"""Who may use the video library's REST endpoints, and which videos they see.

The admin key sees and deletes every video. A room token whose role is `coach` or `teacher`
may upload; its holder (the token's `sub`) sees their own videos and the video of the room the
token is for, and deletes only their own. Any other role is refused. A video the caller may
not see answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import jwt
from starlette.requests import Request

from server.errors import Forbidden, NotFound, TokenInvalid, TokenMissing
from server.rooms.roles import Role
from server.session.admission import claims_for, is_admin, presented_token
from server.sync.store import VideoRecord

if TYPE_CHECKING:
    from server.session.worker import Worker

ADMIN = "admin"
UPLOAD_ROLES = frozenset({Role.COACH, Role.TEACHER})


@dataclass(frozen=True, slots=True)
class Caller:
    sub: str  # the token's `sub`, or "admin"
    admin: bool
    room: str | None  # the room the token is for


def caller_of(request: Request, worker: Worker) -> Caller:
    given = presented_token(request)
    if not given:
        raise TokenMissing(
            "the video library needs the admin key or a coach or teacher room token, "
            "as Authorization: Bearer (or ?token=)"
        )
    if is_admin(worker, given):
        return Caller(ADMIN, admin=True, room=None)
    try:
        # Only to learn which room to check the token against; verify() checks everything.
        unverified = jwt.decode(given, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenInvalid("Authorization is neither the admin key nor a valid token") from None
    room = unverified.get("room")
    claims = claims_for(worker, given, room if isinstance(room, str) else "")
    if claims.role not in UPLOAD_ROLES:
        raise Forbidden(
            f"role {claims.role.value!r} may not use the video library; "
            "a coach or teacher token or the admin key may"
        )
    return Caller(claims.sub, admin=False, room=claims.room)


async def room_video(worker: Worker, caller: Caller) -> str | None:
    """The video of the room the caller's token is for."""
    if caller.room is None:
        return None
    room = await worker.store.get_room(caller.room)
    return None if room is None else room.video


async def may_see(worker: Worker, caller: Caller, record: VideoRecord) -> bool:
    if caller.admin or record.owner == caller.sub:
        return True
    return await room_video(worker, caller) == record.id


async def find_video(
    worker: Worker, caller: Caller, video_id: str, *, write: bool = False
) -> VideoRecord:
    """The video if the caller may see it (or, with `write`, change or delete it)."""
    record = await worker.videos.get(video_id)
    if record is not None:
        if caller.admin or record.owner == caller.sub:
            return record
        if await may_see(worker, caller, record):
            if not write:
                return record
            raise Forbidden(
                f"video {video_id!r} is your room's video but not yours: "
                "only its uploader or the admin may change or delete it"
            )
    raise NotFound(f"no video {video_id[:64]!r} that you may see")
