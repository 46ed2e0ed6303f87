"""A signed-in person's own coaching (docs/people.md): the home page, their rooms, a new room
with a colleague, and the way from the home page into a session.

A person sees only the rooms they are a member of (`RoomRecord.people`), never anyone else's:
a leader does not browse. Going into a session, the server mints the person's room token
(`POST /api/rooms/{room}/token`, with the session cookie) so the session page and every
endpoint behind it keep the token contracts of DESIGN §2; no token is ever put in a URL.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from server import __version__
from server.audit import remote_of
from server.errors import Forbidden, InvalidField, NotFound, RoomNotFound
from server.http.auth import actor_of_person, sign_in_page
from server.http.clip_rooms import role_in_clip_room, via_of
from server.http.pages import page_response
from server.http.request import read_json, worker_of
from server.http.signed_in import person_of, require_person, signed_in
from server.people.model import Person
from server.people.rules import trust_of
from server.rooms.roles import Role
from server.session.room_records import new_room_id
from server.session.worker import Worker
from server.sync.store import RoomRecord
from server.tokens import mint

PRIVATE = {"Cache-Control": "no-store"}
ROOM_ROLES = ("coach", "teacher")
MAX_TOKEN_SECONDS = 8 * 3600


class NewSession(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    title: str
    with_: str = msgspec.field(name="with")
    as_: str = msgspec.field(name="as", default="teacher")


async def index(request: Request) -> Response:
    """The home page for a browser (sign-in page when signed out); what this is, for others."""
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"service": "cocoach", "version": __version__, "docs": "README.md"})
    worker = worker_of(request)
    if await person_of(request) is None:
        return sign_in_page(worker, request)
    return page_response("home.html")


def _room_json(record: RoomRecord, me: Person, names: dict[str, str]) -> dict[str, object]:
    return {
        "id": record.id,
        "title": record.title,
        "created": record.created,
        "role": record.people.get(me.id),
        "people": [
            {"id": pid, "name": names.get(pid, "someone"), "role": role}
            for pid, role in record.people.items()
            if pid != me.id
        ],
    }


async def my_rooms(request: Request) -> Response:
    worker = worker_of(request)
    me = await require_person(request)
    mine = [r for r in await worker.store.list_rooms() if me.id in r.people]
    mine.sort(key=lambda r: r.created, reverse=True)
    names = {p.id: p.name for p in await worker.people.all()}
    return JSONResponse({"rooms": [_room_json(r, me, names) for r in mine]}, headers=PRIVATE)


async def new_session(request: Request) -> Response:
    """A coach or teacher opens a room with a colleague of their own trust."""
    worker = worker_of(request)
    me = await require_person(request)
    asked = await read_json(request, NewSession)
    title = asked.title.strip()
    if not 1 <= len(title) <= 200:
        raise InvalidField("title must be 1-200 characters")
    if asked.as_ not in ROOM_ROLES:
        raise InvalidField(f"as must be one of {list(ROOM_ROLES)}")
    if asked.as_ == "coach" and not me.has("coach"):
        raise Forbidden("only a coach may open a session as its coach")
    other = await worker.people.get(asked.with_)
    if other is None or trust_of(worker.orgs, other.org) != trust_of(worker.orgs, me.org):
        raise NotFound("no such person of your trust")
    if other.id == me.id:
        raise InvalidField("with must be someone else")
    their_role = "teacher" if asked.as_ == "coach" else "coach"
    # The room is the teacher's school's: the lesson and its people are theirs (DOMAIN.md).
    teacher = me if asked.as_ == "teacher" else other
    org = teacher.org if worker.orgs.configured else None
    shared = (
        () if org is None or other.org == me.org else ((me if teacher is other else other).org,)
    )
    record = RoomRecord(
        id=new_room_id(),
        title=title,
        created=time.time(),
        org=org,
        shared=shared,
        people={me.id: asked.as_, other.id: their_role},
    )
    await worker.store.create_room(record)
    worker.audit.record(
        "room.create",
        actor_of_person(me),
        room=record.id,
        remote=remote_of(request),
        title=record.title,
        org=record.org,
    )
    names = {me.id: me.name, other.id: other.name}
    return JSONResponse(_room_json(record, me, names), status_code=201, headers=PRIVATE)


async def _my_room(worker: Worker, person: Person, room_id: str) -> tuple[RoomRecord, str]:
    """The room and the person's role in it, if they are one of its people."""
    try:
        record = await worker.room_record(room_id)
    except RoomNotFound:
        record = None
    role = record.people.get(person.id) if record is not None else None
    if record is not None and record.clip is not None:
        role = await role_in_clip_room(worker, record, person.id)
    if record is None or role is None:
        raise NotFound(f"no session {room_id[:64]!r} of yours")
    return record, role


async def join(request: Request) -> Response:
    """From the home page into a session: the session page, which asks for its token."""
    worker = worker_of(request)
    person = await person_of(request)
    room = request.path_params["room"]
    if person is None:
        return RedirectResponse(f"/?next={quote(f'/rooms/{room}/join')}", status_code=303)
    await _my_room(worker, person, room)
    return RedirectResponse(f"/r/{quote(room, safe='')}", status_code=303)


async def room_token(request: Request) -> Response:
    """The signed-in person's token for one of their rooms, for the session page."""
    worker = worker_of(request)
    found = await signed_in(request)
    if found is None:
        await require_person(request)  # raises the 401
    assert found is not None
    person, sign_in = found
    record, role = await _my_room(worker, person, request.path_params["room"])
    assert worker.settings.secret is not None
    ttl = max(60.0, min(MAX_TOKEN_SECONDS, sign_in.expires - time.time()))
    grants = None
    if record.clip is not None:
        # Members of a group session comment on what they watch; every view of a clip is on
        # record with the group it came through.
        grants = {"annotate": True} if role == Role.OBSERVER else None
        clip = await worker.clips.get(record.clip)
        worker.audit.record(
            "clip.view",
            actor_of_person(person),
            room=record.id,
            video=record.video,
            remote=remote_of(request),
            clip=record.clip,
            via=via_of(record, person.id, clip.owner if clip else ""),
        )
    token = mint(
        worker.settings.secret,
        room=record.id,
        role=Role(role),
        name=person.name,
        sub=person.id,
        ttl=ttl,
        org=person.org if worker.orgs.configured else None,
        grants=grants,
    )
    return JSONResponse({"token": token, "role": role}, headers=PRIVATE)
