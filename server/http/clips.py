"""Clips over HTTP (docs/groups.md): cut by a video's owner, shared with groups, watched in rooms
whose media is the clip's own (so nothing outside its range is ever served).

A clip one may not see answers 404, as if it did not exist.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.audit import remote_of
from server.clips.library import tag_counts
from server.clips.model import (
    Clip,
    ClipNote,
    Description,
    Group,
    Share,
    Title,
    Viewing,
    new_clip_id,
)
from server.clips.rules import check_may_see, check_notes_in_range, check_range
from server.errors import Forbidden, InvalidField, NotFound
from server.http.access import Caller, caller_of, find_video
from server.http.admission import bearer, is_admin
from server.http.auth import actor_of_person
from server.http.clip_privacy import remove
from server.http.request import read_json, worker_of
from server.http.signed_in import require_person
from server.people.model import Person
from server.people.rules import trust_of
from server.session.room_records import new_room_id
from server.session.worker import Worker
from server.sync.audit import ADMIN
from server.sync.store import RoomRecord, VideoRecord

PRIVATE = {"Cache-Control": "no-store"}
MAX_NOTES = 200


class NewClip(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    video: str
    start: float
    end: float
    title: Title
    description: Description = ""
    room: str | None = None
    notes: list[str] = msgspec.field(default_factory=list)


class NewShare(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    group: str


class Watch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    via: str | None = None


def trust_of_org(worker: Worker, org: str | None) -> str:
    return trust_of(worker.orgs, org or worker.orgs.default)


async def clip_json(worker: Worker, clip: Clip, *, full: bool) -> dict[str, object]:
    """The clip as docs/groups.md shows it; `full` (its owner, the admin key) adds its shares."""
    media = await worker.videos.get(clip.media)
    owner = await worker.people.get(clip.owner)
    body: dict[str, object] = {
        **msgspec.to_builtins(clip),
        "duration": clip.duration,
        "owner_name": owner.name if owner is not None else None,
        "status": media.status if media is not None else "failed",
        "tags": tag_counts(clip),
    }
    del body["room"]
    if full:
        shares = []
        for share in clip.shares:
            group = await worker.clips.group(share.group)
            shares.append(
                {**msgspec.to_builtins(share), "group_name": group.name if group else None}
            )
        body["shares"] = shares
    else:
        del body["shares"]
    return body


async def mine(request: Request) -> tuple[Clip, Person | None]:
    """The clip of the address for its owner (a person), or for the admin key (None)."""
    worker = worker_of(request)
    clip = await worker.clips.get(request.path_params["clip"])
    if is_admin(worker, bearer(request.headers)):
        if clip is None:
            raise NotFound(f"no clip {request.path_params['clip'][:64]!r}")
        return clip, None
    me = await require_person(request)
    if clip is None or clip.owner != me.id:
        raise NotFound(f"no clip {request.path_params['clip'][:64]!r} of yours")
    return clip, me


async def seen_by(worker: Worker, clip_id: str, me: Person) -> tuple[Clip, str]:
    """The clip and how `me` may see it ("owner", a group id, "library"); 404 otherwise."""
    clip = await worker.clips.get(clip_id)
    if clip is None or await worker.videos.get(clip.media) is None:
        raise NotFound(f"no clip {clip_id[:64]!r} that you may see")
    groups = await worker.clips.groups_of(me.id)
    return clip, check_may_see(clip, me.id, groups, trust_of_org(worker, me.org))


# ---- making a clip ------------------------------------------------------------------------


async def _carried(
    worker: Worker, caller: Caller, video: VideoRecord, asked: NewClip
) -> tuple[tuple[ClipNote, ...], str | None]:
    """The notes the clip carries, re-based to it, and the framework they were written in."""
    if not asked.notes:
        return (), None
    if asked.room is None:
        raise InvalidField("room: the session the notes come from is needed with notes")
    if len(asked.notes) > MAX_NOTES:
        raise InvalidField(f"notes: at most {MAX_NOTES}")
    try:
        record = await worker.room_record(asked.room)
    except NotFound:
        raise InvalidField(f"room: no session {asked.room[:64]!r} of yours") from None
    if not (caller.admin or caller.room == record.id or caller.sub in record.people):
        raise InvalidField(f"room: no session {asked.room[:64]!r} of yours")
    notes = {n.id: n for n in await worker.documents.notes(record.id) if n.video == video.id}
    missing = [n for n in asked.notes if n not in notes]
    if missing:
        raise InvalidField(f"notes: {missing[0][:64]!r} is not a note of this video in the room")
    picked = [notes[n] for n in dict.fromkeys(asked.notes)]
    check_notes_in_range(((n.id, n.start) for n in picked), asked.start, asked.end)
    length = asked.end - asked.start
    carried = tuple(
        ClipNote(
            id=n.id,
            start=round(n.start - asked.start, 3),
            end=None if n.end is None else round(min(n.end - asked.start, length), 3),
            text=n.text,
            tags=tuple(n.tags),
            author=n.author,
            author_name=n.author_name,
        )
        for n in sorted(picked, key=lambda n: n.start)
    )
    return carried, record.framework or await worker.documents.framework_of(record.id)


async def create(request: Request) -> Response:
    """The video's owner (a sign-in, or their room token from the session page) or the admin
    key cuts a clip."""
    worker = worker_of(request)
    caller = await caller_of(request, worker)
    asked = await read_json(request, NewClip)
    video = await find_video(worker, caller, asked.video, write=True)
    if video.clip_of is not None:
        raise InvalidField("video: a clip is not cut again; cut from the lesson itself")
    if video.status != "ready":
        raise InvalidField(f"video: it is {video.status}, not ready to be clipped")
    check_range(asked.start, asked.end, video.duration, worker.settings.clip_max_seconds)
    notes, framework = await _carried(worker, caller, video, asked)
    media = await worker.videos.create_clip(video, asked.start, asked.end, asked.title)
    clip = Clip(
        id=new_clip_id(),
        video=video.id,
        media=media.id,
        owner=video.owner,
        org=video.org,
        trust=trust_of_org(worker, video.org),
        title=asked.title.strip() or video.title,
        start=asked.start,
        end=asked.end,
        created=time.time(),
        description=asked.description.strip(),
        framework=framework,
        notes=notes,
    )
    await worker.clips.save(clip)
    worker.audit.record(
        "clip.create",
        caller.actor,
        video=video.id,
        remote=remote_of(request),
        clip=clip.id,
        start=clip.start,
        end=clip.end,
    )
    return JSONResponse(await clip_json(worker, clip, full=True), status_code=201, headers=PRIVATE)


async def list_mine(request: Request) -> Response:
    worker = worker_of(request)
    me = await require_person(request)
    found = [await clip_json(worker, c, full=True) for c in await worker.clips.of_owner(me.id)]
    return JSONResponse({"clips": found}, headers=PRIVATE)


async def get_one(request: Request) -> Response:
    worker = worker_of(request)
    if is_admin(worker, bearer(request.headers)):
        clip, _ = await mine(request)
        return JSONResponse(await clip_json(worker, clip, full=True), headers=PRIVATE)
    me = await require_person(request)
    clip, via = await seen_by(worker, request.path_params["clip"], me)
    return JSONResponse(await clip_json(worker, clip, full=via == "owner"), headers=PRIVATE)


# ---- taking a clip away -------------------------------------------------------------------


async def cut_off(worker: Worker, clip: Clip, rooms: Sequence[str], reason: str) -> None:
    """Stop everyone watching the clip in `rooms`, on every worker at once."""
    for room in rooms:
        await worker.cut_room(room, clip.media, reason)


async def group_rooms(worker: Worker, clip: Clip, group: str) -> list[str]:
    """Every room the clip is watched in through `group`: its discussion, its group sessions."""
    return [r.id for r in await worker.store.list_rooms() if r.clip == clip.id and r.group == group]


async def delete(request: Request) -> Response:
    worker = worker_of(request)
    clip, me = await mine(request)
    await remove(worker, clip)
    worker.audit.record(
        "clip.delete",
        actor_of_person(me) if me is not None else ADMIN,
        video=clip.video,
        remote=remote_of(request),
        clip=clip.id,
    )
    return Response(status_code=204)


# ---- shares -------------------------------------------------------------------------------


async def group_room(
    worker: Worker, clip: Clip, group: Group, members_as: str, title: str
) -> RoomRecord:
    """A room of the clip's media for `group`: its people are the group's at each moment
    (facilitators as coaches, members as `members_as`), from any school of the trust; it opens
    with the notes the clip carried."""
    orgs = worker.orgs
    record = RoomRecord(
        id=new_room_id(),
        title=title,
        created=time.time(),
        org=clip.org if orgs.configured else None,
        shared=tuple(o for o in orgs.schools_of(group.trust) if o != clip.org)
        if orgs.configured
        else (),
        video=clip.media,
        framework=clip.framework,
        clip=clip.id,
        group=group.id,
        members_as=members_as,
    )
    await worker.store.create_room(record)
    if clip.notes:
        await worker.documents.carry_notes(record, clip)
    return record


async def share(request: Request) -> Response:
    worker = worker_of(request)
    me = await require_person(request)
    clip, _ = await mine(request)
    asked = await read_json(request, NewShare)
    group = await worker.clips.group(asked.group)
    if group is None or not group.has(me.id):
        raise NotFound(f"group: no group {asked.group[:64]!r} of yours")
    if group.trust != clip.trust:
        raise InvalidField("group: it is of another trust than the clip")
    existing = next((s for s in clip.shares if s.group == group.id), None)
    if existing is not None:
        return JSONResponse(
            {"group": group.id, "room": existing.room}, status_code=200, headers=PRIVATE
        )
    # Its discussion: members write on its timeline, and play it when they like.
    room = await group_room(worker, clip, group, "teacher", f"{clip.title} · {group.name}")
    added = Share(group=group.id, room=room.id, created=time.time(), by=me.id)
    fresh = await worker.clips.get(clip.id) or clip
    await worker.clips.save(msgspec.structs.replace(fresh, shares=(*fresh.shares, added)))
    worker.audit.record(
        "clip.share",
        actor_of_person(me),
        video=clip.video,
        remote=remote_of(request),
        clip=clip.id,
        group=group.id,
    )
    return JSONResponse({"group": group.id, "room": room.id}, status_code=201, headers=PRIVATE)


async def unshare(request: Request) -> Response:
    worker = worker_of(request)
    clip, me = await mine(request)
    group = request.path_params["group"]
    if not any(s.group == group for s in clip.shares):
        raise NotFound(f"the clip is not shared with {group[:64]!r}")
    kept = tuple(s for s in clip.shares if s.group != group)
    await worker.clips.save(msgspec.structs.replace(clip, shares=kept))
    # After the record: a viewer cut off now cannot open it again.
    await cut_off(worker, clip, await group_rooms(worker, clip, group), "the clip's share ended")
    worker.audit.record(
        "clip.unshare",
        actor_of_person(me) if me is not None else ADMIN,
        video=clip.video,
        remote=remote_of(request),
        clip=clip.id,
        group=group,
    )
    return Response(status_code=204)


# ---- watching -----------------------------------------------------------------------------


async def _viewing_room(worker: Worker, clip: Clip, me: Person) -> str:
    """One's own room for watching the clip: made the first time, kept after."""
    found = await worker.clips.viewing(clip.id, me.id)
    if found is not None:
        return found.room
    record = RoomRecord(
        id=new_room_id(),
        title=clip.title,
        created=time.time(),
        # The clip's school owns the room (a room shows only its own school's videos); a
        # viewer of another school of the trust comes in as one it is shared with.
        org=clip.org if worker.orgs.configured else None,
        shared=(me.org,) if worker.orgs.configured and me.org != clip.org else (),
        video=clip.media,
        framework=clip.framework,
        people={me.id: "teacher"},
        clip=clip.id,
    )
    await worker.store.create_room(record)
    if clip.notes:
        await worker.documents.carry_notes(record, clip)
    await worker.clips.save_viewing(Viewing(clip.id, me.id, record.id))
    return record.id


async def watch(request: Request) -> Response:
    """The room to watch the clip in: the group's discussion (`via` a group), or one's own."""
    worker = worker_of(request)
    me = await require_person(request)
    asked = await read_json(request, Watch)
    clip, via = await seen_by(worker, request.path_params["clip"], me)
    if asked.via is not None:
        share_of = next((s for s in clip.shares if s.group == asked.via), None)
        group = await worker.clips.group(asked.via)
        if share_of is None or group is None or not group.has(me.id):
            raise NotFound(f"via: the clip is not shared with a group {asked.via[:64]!r} of yours")
        return JSONResponse({"room": share_of.room}, headers=PRIVATE)
    in_library = clip.published is not None and clip.trust == trust_of_org(worker, me.org)
    if via != "owner" and not in_library:
        raise Forbidden("watch it with your group: name the group as `via`")
    return JSONResponse({"room": await _viewing_room(worker, clip, me)}, headers=PRIVATE)
