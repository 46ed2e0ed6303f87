"""Who is in a clip's rooms (docs/groups.md), at each moment: a group's discussion and group
sessions follow the group's members and the clip's shares; one's own viewing room follows the
clip (its owner, or anyone of its trust while it is in the library). Checked on every route
that names a room (server/http/admission.py) and when a token is minted (server/http/home.py),
so a removed member or a withdrawn share is refused from that moment."""

from __future__ import annotations

from server.clips.rules import role_in_group_room
from server.session.worker import Worker
from server.sync.store import RoomRecord


async def role_in_clip_room(worker: Worker, record: RoomRecord, person: str) -> str | None:
    """The person's role in a room of a clip, or None when they are not in it (any more)."""
    assert record.clip is not None
    clip = await worker.clips.get(record.clip)
    if clip is None:
        return None
    if record.group is not None:
        group = await worker.clips.group(record.group)
        if group is None or not any(s.group == group.id for s in clip.shares):
            return None
        return role_in_group_room(group, person, record.members_as)
    role = record.people.get(person)
    if role is None or (person != clip.owner and clip.published is None):
        return None
    return role


def via_of(record: RoomRecord, person: str, owner: str) -> str:
    """What a view of the clip came through, for the audit log."""
    if record.group is not None:
        return record.group
    return "owner" if person == owner else "library"
