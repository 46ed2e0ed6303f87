"""Film Club groups over HTTP (docs/groups.md): teachers of schools of one trust who watch and
discuss each other's clips. Only its members see a group; anyone else gets 404."""

from __future__ import annotations

import time
from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.audit import remote_of
from server.clips.model import Clip, Group, GroupKind, GroupName, new_group_id
from server.clips.rules import (
    check_facilitator,
    check_one_trust,
    check_size,
    may_create_group,
)
from server.errors import Forbidden, InvalidField, NotFound
from server.http.auth import actor_of_person
from server.http.clips import group_room, trust_of_org
from server.http.request import read_json, worker_of
from server.http.signed_in import require_person
from server.people.model import Person
from server.session.worker import Worker
from server.sync.store import RoomRecord

PRIVATE = {"Cache-Control": "no-store"}
PersonIds = Annotated[list[str], msgspec.Meta(max_length=200)]


class NewGroup(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: GroupName
    members: PersonIds
    facilitators: PersonIds = msgspec.field(default_factory=list)
    kind: GroupKind = "film_club"


class NewMember(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    person: str


class NewSession(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    clip: str


async def _people(worker: Worker, ids: list[str], trust: str) -> list[Person]:
    """The people by id, every one of `trust`: refused naming the first who is not."""
    found = []
    for person_id in ids:
        person = await worker.people.get(person_id)
        if person is None:
            raise InvalidField(f"members: no person {person_id[:64]!r}")
        found.append(person)
    check_one_trust(trust, ((p.id, trust_of_org(worker, p.org)) for p in found))
    return found


async def group_json(
    worker: Worker,
    group: Group,
    clips_rooms: tuple[list[Clip], list[RoomRecord]] | None = None,
) -> dict[str, object]:
    """The group as docs/groups.md shows it. `clips_rooms`: the store's clips and rooms, read
    once by a caller listing several groups."""
    every_clip, rooms = clips_rooms or await _clips_and_rooms(worker)

    async def person(person_id: str) -> dict[str, object]:
        found = await worker.people.get(person_id)
        return {
            "id": person_id,
            "name": found.name if found else person_id,
            "org": found.org if found else None,
        }

    clips = []
    for clip in every_clip:
        share = next((s for s in clip.shares if s.group == group.id), None)
        if share is None or await worker.videos.get(clip.media) is None:
            continue
        owner = await worker.people.get(clip.owner)
        clips.append(
            {
                "clip": clip.id,
                "title": clip.title,
                "duration": clip.duration,
                "owner_name": owner.name if owner else None,
                "room": share.room,
                "created": share.created,
            }
        )
    sessions = [
        {"room": r.id, "clip": r.clip, "title": r.title, "created": r.created}
        for r in rooms
        if r.group == group.id and r.members_as == "observer"
    ]
    return {
        **msgspec.to_builtins(group),
        "sessions": sorted(sessions, key=lambda s: float(str(s["created"])), reverse=True),
        "members": [await person(p) for p in group.members],
        "facilitators": [await person(p) for p in group.facilitators],
        "clips": sorted(clips, key=lambda c: float(str(c["created"])), reverse=True),
    }


async def _clips_and_rooms(worker: Worker) -> tuple[list[Clip], list[RoomRecord]]:
    return await worker.clips.all(), await worker.store.list_rooms()


async def _mine(request: Request, me: Person) -> Group:
    worker = worker_of(request)
    group = await worker.clips.group(request.path_params["group"])
    if group is None or not group.has(me.id):
        raise NotFound(f"no group {request.path_params['group'][:64]!r} of yours")
    return group


async def create(request: Request) -> Response:
    worker = worker_of(request)
    me = await require_person(request)
    if not may_create_group(me.roles):
        raise Forbidden("a coach or a leader starts a group")
    asked = await read_json(request, NewGroup)
    trust = trust_of_org(worker, me.org)
    facilitators = list(dict.fromkeys([me.id, *asked.facilitators]))
    members = list(dict.fromkeys([*facilitators, *asked.members]))
    check_size(len(members))
    await _people(worker, members, trust)
    group = Group(
        id=new_group_id(),
        name=asked.name.strip(),
        kind=asked.kind,
        trust=trust,
        created=time.time(),
        created_by=me.id,
        members=tuple(members),
        facilitators=tuple(facilitators),
    )
    await worker.clips.save_group(group)
    worker.audit.record(
        "group.create",
        actor_of_person(me),
        remote=remote_of(request),
        group=group.id,
        members=len(members),
    )
    return JSONResponse(await group_json(worker, group), status_code=201, headers=PRIVATE)


async def list_mine(request: Request) -> Response:
    worker = worker_of(request)
    me = await require_person(request)
    read = await _clips_and_rooms(worker)
    groups = [await group_json(worker, g, read) for g in await worker.clips.groups_of(me.id)]
    return JSONResponse({"groups": groups}, headers=PRIVATE)


async def get_one(request: Request) -> Response:
    worker = worker_of(request)
    me = await require_person(request)
    return JSONResponse(await group_json(worker, await _mine(request, me)), headers=PRIVATE)


async def add_member(request: Request) -> Response:
    worker = worker_of(request)
    me = await require_person(request)
    group = await _mine(request, me)
    check_facilitator(group, me.id)
    asked = await read_json(request, NewMember)
    await _people(worker, [asked.person], group.trust)
    check_size(len(group.members) + 1)
    changed = msgspec.structs.replace(
        group, members=tuple(dict.fromkeys([*group.members, asked.person]))
    )
    await worker.clips.save_group(changed)
    worker.audit.record(
        "group.members",
        actor_of_person(me),
        remote=remote_of(request),
        group=group.id,
        added=asked.person,
    )
    return JSONResponse(await group_json(worker, changed), headers=PRIVATE)


async def remove_member(request: Request) -> Response:
    """A facilitator takes someone out, or a member leaves. The group's rooms refuse them from
    now on (server/http/admission.py)."""
    worker = worker_of(request)
    me = await require_person(request)
    group = await _mine(request, me)
    person = request.path_params["person"]
    if person != me.id:
        check_facilitator(group, me.id)
    if not group.has(person):
        raise NotFound(f"{person[:64]!r} is not a member")
    facilitators = tuple(p for p in group.facilitators if p != person)
    if not facilitators:
        raise InvalidField("person: a group keeps at least one facilitator")
    changed = msgspec.structs.replace(
        group,
        members=tuple(p for p in group.members if p != person),
        facilitators=facilitators,
    )
    await worker.clips.save_group(changed)
    worker.audit.record(
        "group.members",
        actor_of_person(me),
        remote=remote_of(request),
        group=group.id,
        removed=person,
    )
    return Response(status_code=204)


async def start_session(request: Request) -> Response:
    """A live room where the group watches a clip shared with it in sync: facilitators control
    the playback, members watch and comment."""
    worker = worker_of(request)
    me = await require_person(request)
    group = await _mine(request, me)
    check_facilitator(group, me.id)
    asked = await read_json(request, NewSession)
    clip = await worker.clips.get(asked.clip)
    if clip is None or not any(s.group == group.id for s in clip.shares):
        raise NotFound(f"clip: no clip {asked.clip[:64]!r} shared with the group")
    record = await group_room(worker, clip, group, "observer", f"{group.name}: {clip.title}")
    return JSONResponse({"room": record.id}, status_code=201, headers=PRIVATE)
