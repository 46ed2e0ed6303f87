"""Who may use the video library's REST endpoints, and which videos they see.

Private by default (docs/organisations.md). The admin key (the trust's IT staff) sees and
deletes every video, and each look at someone else's video is audited. A room token whose role
is `coach` or `teacher` may upload; its holder, known by the token's `org` and `sub` together,
lists, reads, changes and deletes only their own videos. The one other reader is a token for a
room the video is attached to, and only for its record (title, length: what the page's scrubber
needs); the media itself is served only through that room's WHEP. Any other role is refused.
A video the caller may not see answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from starlette.requests import Request

from server.audit import actor_of, remote_of
from server.errors import (
    Forbidden,
    NotFound,
    OrgForbidden,
    RoomNotFound,
    TokenInvalid,
    TokenMissing,
)
from server.http.admission import claims_for, is_admin, presented_token, room_for
from server.http.auth import actor_of_person
from server.http.clip_privacy import video_gone
from server.http.signed_in import person_of
from server.rooms.roles import Role
from server.session.worker import Worker
from server.sync.audit import ADMIN as ADMIN_ACTOR
from server.sync.audit import Actor
from server.sync.store import VideoRecord
from server.tokens import Claims

ADMIN = "admin"
UPLOAD_ROLES = frozenset({Role.COACH, Role.TEACHER})


@dataclass(frozen=True, slots=True)
class Caller:
    sub: str  # the token's `sub`, or "admin"
    admin: bool
    room: str | None  # the room the token is for
    org: str | None  # the token's organisation (the implicit one without COCOACH_ORGS)
    claims: Claims | None = None
    actor: Actor = ADMIN_ACTOR  # who, for the audit log


async def caller_of(request: Request, worker: Worker) -> Caller:
    given = presented_token(request)
    if not given:
        person = await person_of(request)
        if person is not None:  # signed in: their own library (docs/people.md)
            org = worker.orgs.of_token(person.org if worker.orgs.configured else None)
            return Caller(person.id, admin=False, room=None, org=org, actor=actor_of_person(person))
        raise TokenMissing(
            "the video library needs the admin key or a coach or teacher room token, "
            "as Authorization: Bearer (or ?token=), or a sign-in"
        )
    if is_admin(worker, given):
        return Caller(ADMIN, admin=True, room=None, org=None)
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
    return Caller(
        claims.sub,
        admin=False,
        room=claims.room,
        org=worker.orgs.of_token(claims.org),
        claims=claims,
        actor=actor_of(claims),
    )


def owns(worker: Worker, caller: Caller, record: VideoRecord) -> bool:
    return (
        not caller.admin
        and record.owner == caller.sub
        and worker.orgs.owning(record.org) == caller.org
    )


async def shows_in_callers_room(worker: Worker, caller: Caller, record: VideoRecord) -> bool:
    """The video is the one the caller's room shows, and the caller's organisation may reach
    that room."""
    if caller.claims is None or caller.room is None:
        return False
    try:
        room = await room_for(worker, caller.claims, caller.room)
    except (OrgForbidden, RoomNotFound):
        return False
    lessons = worker.lessons
    return await lessons.video_id(room.id) == record.id and lessons.belongs_to_room(room, record)


async def find_video(
    worker: Worker, caller: Caller, video_id: str, *, write: bool = False
) -> VideoRecord:
    """The video if the caller may see it (or, with `write`, change or delete it)."""
    record = await worker.videos.get(video_id)
    if record is not None:
        if owns(worker, caller, record):
            return record
        if caller.admin:
            if record.owner != ADMIN:
                # Admins manage every video, and each look at someone else's is on record.
                worker.audit.record(
                    "video.admin_manage" if write else "video.admin_read",
                    ADMIN_ACTOR,
                    video=record.id,
                    org=record.org,
                )
            return record
        if await shows_in_callers_room(worker, caller, record):
            if not write:
                return record
            raise Forbidden(
                f"video {video_id!r} is your room's video but not yours: "
                "only its uploader or the admin may change or delete it"
            )
    raise NotFound(f"no video {video_id[:64]!r} that you may see")


def upload_org(worker: Worker, caller: Caller, asked: str | None) -> str | None:
    """The organisation a new video belongs to: the uploader's. The admin key may name one
    (`org`; the default organisation when it names none); a token may name only its own."""
    if caller.admin:
        return worker.orgs.check_org(asked, "org")
    if asked is not None and asked != caller.org:
        raise OrgForbidden(f"a token of {caller.org!r} may not upload for {asked[:64]!r}")
    return caller.org if worker.orgs.configured else None


async def delete_as_caller(request: Request, worker: Worker) -> None:
    """Delete the video the request names, if the caller may, and put it on record: for the
    REST `DELETE` and tus termination alike."""
    caller = await caller_of(request, worker)
    record = await find_video(worker, caller, request.path_params["video"], write=True)
    await worker.videos.delete(record.id)
    await video_gone(worker, record.id)
    worker.audit.record(
        "video.delete",
        caller.actor,
        video=record.id,
        remote=remote_of(request),
        title=record.title,
        filename=record.filename,
    )
