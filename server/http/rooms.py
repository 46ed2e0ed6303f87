"""REST: rooms (admin key; a teacher's room token may change whom a room is shared with)."""

from __future__ import annotations

import time

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.audit import remote_of
from server.documents.lessons import Lesson
from server.errors import Forbidden, InvalidField, RoomNotFound
from server.http.admission import bearer, claims_for, is_admin, presented_token, room_for
from server.http.home import new_session
from server.http.request import check_admin, read_json, worker_of
from server.people.cookie import SESSION_COOKIE
from server.rooms.roles import Permission, permissions_for
from server.session.room_records import ROOM_ID, check_room_video, new_room_id
from server.session.worker import Worker
from server.sync.audit import ADMIN
from server.sync.store import RoomRecord


class NewRoom(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    title: str
    id: str | None = None
    org: str | None = None
    framework: str | None = None
    video: str | None = None  # a video of the library (docs/videos.md)
    shared: list[str] = msgspec.field(default_factory=list)  # docs/organisations.md


class RoomChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`PATCH /api/rooms/{room}`: what may change after creation; absent keys stay."""

    title: str | None = None
    shared: list[str] | None = None
    video: str | None = None


def record_json(record: RoomRecord) -> dict[str, object]:
    return msgspec.to_builtins(record)  # type: ignore[no-any-return]


def validate_room(room: NewRoom) -> NewRoom:
    if not 1 <= len(room.title.strip()) <= 200:
        raise InvalidField("title must be 1-200 characters")
    if room.id is not None and not ROOM_ID.match(room.id):
        raise InvalidField("id must be 1-64 characters of A-Z a-z 0-9 _ -")
    if room.org is not None and not 1 <= len(room.org) <= 200:
        raise InvalidField("org must be 1-200 characters")
    return room


async def create_room(request: Request) -> Response:
    """The admin key makes any room; a signed-in coach or teacher (the session cookie, no
    Authorization) opens one with a colleague (server/http/home.py)."""
    worker = worker_of(request)
    if not bearer(request.headers) and SESSION_COOKIE in request.cookies:
        return await new_session(request)
    check_admin(request, worker)
    room = validate_room(await read_json(request, NewRoom))
    if room.framework is not None:
        worker.frameworks.get(room.framework)  # NotFound names it
    org = worker.orgs.check_org(room.org, "org")
    record = RoomRecord(
        id=room.id or new_room_id(),
        title=room.title.strip(),
        created=time.time(),
        org=org,
        framework=room.framework,
        video=room.video,
        shared=worker.orgs.check_shared(worker.orgs.owning(org), room.shared),
    )
    await check_room_video(worker.orgs, worker.store, record)
    await worker.store.create_room(record)
    worker.audit.record(
        "room.create",
        ADMIN,
        room=record.id,
        video=record.video,
        remote=remote_of(request),
        title=record.title,
        org=record.org,
    )
    return JSONResponse(record_json(record), status_code=201)


async def get_room(request: Request) -> Response:
    worker = worker_of(request)
    check_admin(request, worker)
    record = await worker.current_room_record(request.path_params["room"])
    return JSONResponse(record_json(record))


async def update_room(request: Request) -> Response:
    """Change a room's title, sharing or video. Sharing applies to every request and
    connection that starts afterwards, on every worker; connections already open stay."""
    worker = worker_of(request)
    given = bearer(request.headers)
    if given is not None and is_admin(worker, given):
        change = await read_json(request, RoomChange)
        record = await worker.current_room_record(request.path_params["room"])
    else:
        change, record = await _teachers_change(request, worker)
    if change.title is not None:
        if not 1 <= len(change.title.strip()) <= 200:
            raise InvalidField("title must be 1-200 characters")
        record = msgspec.structs.replace(record, title=change.title.strip())
    if change.shared is not None:
        shared = worker.orgs.check_shared(worker.orgs.owning(record.org), change.shared)
        record = msgspec.structs.replace(record, shared=shared)
    if change.video is not None:
        await check_room_video(
            worker.orgs, worker.store, msgspec.structs.replace(record, video=change.video)
        )
    if not await worker.store.update_room(record):
        raise RoomNotFound(f"room {record.id!r} does not exist")
    if change.video is not None:  # after: the lesson shown so far is listed first
        # The document says what the pages play: without this the record changed and
        # nothing else did (meta.video wins).
        video = await worker.store.get_video(change.video)
        recorded = video is not None and video.room is not None
        lesson = Lesson(change.video, time.time(), "recording" if recorded else "upload")
        await worker.show_lesson(record.id, lesson)
    return JSONResponse(record_json(await worker.current_room_record(record.id)))


async def _teachers_change(request: Request, worker: Worker) -> tuple[RoomChange, RoomRecord]:
    """A room token with `share` (the teacher: DOMAIN.md) may change whom the room is shared
    with, and nothing else; only a token of the room's own school may (a school it is shared
    with may not share it further)."""
    room_id = request.path_params["room"]
    claims = claims_for(worker, presented_token(request), room_id)
    record = await room_for(worker, claims, room_id)
    if Permission.SHARE not in permissions_for(claims.role, claims.grants):
        raise Forbidden(f"role {claims.role.value!r} may not change whom the room is shared with")
    if worker.orgs.of_token(claims.org) != worker.orgs.owning(record.org):
        raise Forbidden("only the room's own school may change whom it is shared with")
    change = await read_json(request, RoomChange)
    if change.title is not None or change.video is not None:
        raise Forbidden("a room token may change only `shared`; the rest needs the admin key")
    return change, record


async def list_rooms(request: Request) -> Response:
    worker = worker_of(request)
    check_admin(request, worker)
    rooms = await worker.store.list_rooms()
    wanted_org = request.query_params.get("org")
    if wanted_org is not None:
        rooms = [r for r in rooms if worker.orgs.owning(r.org) == wanted_org]
    return JSONResponse({"rooms": [record_json(r) for r in rooms]})
