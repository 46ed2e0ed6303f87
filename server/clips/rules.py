"""The rules of clips, groups and the library, pure (docs/groups.md): who may clip, see, share,
publish; who is in a group's rooms, and as what. Errors name the field that was wrong."""

from __future__ import annotations

from collections.abc import Iterable

from server.clips.model import Clip, Group
from server.errors import ConsentMissing, Forbidden, InvalidField, NotFound

MAX_MEMBERS = 200
SHOWN = frozenset({"obtained", "not_needed"})  # consent that lets a video be shown


def check_range(start: float, end: float, duration: float | None, longest: float) -> None:
    """A clip's range: inside its video, not empty, at most `longest` seconds."""
    if not (start >= 0 and end > start):
        raise InvalidField("start must be 0 or more and end after it (seconds)")
    if duration is not None and end > duration + 1e-3:
        raise InvalidField(f"end {end:g} s is past the video's end ({duration:g} s)")
    if end - start > longest + 1e-6:
        raise InvalidField(f"a clip is at most {longest:g} s long; this one is {end - start:g} s")


def check_notes_in_range(found: Iterable[tuple[str, float]], start: float, end: float) -> None:
    for note, at in found:
        if not start - 1e-3 <= at <= end + 1e-3:
            raise InvalidField(f"notes: note {note[:40]!r} at {at:g} s is outside the clip")


def may_create_group(roles: Iterable[str]) -> bool:
    return bool({"coach", "leader"} & set(roles))


def check_one_trust(trust: str, people: Iterable[tuple[str, str]]) -> None:
    """Every (person id, their trust) is of `trust`: a group never spans two trusts."""
    for person, theirs in people:
        if theirs != trust:
            raise InvalidField(f"members: {person[:64]!r} is of another trust")


def check_size(members: int) -> None:
    if members > MAX_MEMBERS:
        raise InvalidField(f"members: a group has at most {MAX_MEMBERS} members")


def check_facilitator(group: Group, person: str) -> None:
    if person not in group.facilitators:
        raise Forbidden("only the group's facilitators may do that")


def role_in_group_room(group: Group, person: str, members_as: str | None) -> str | None:
    """Facilitators as coaches; members as the room says (`teacher` in a discussion,
    `observer` in a group session); anyone else is not in it."""
    if person in group.facilitators:
        return "coach"
    if person in group.members:
        return members_as or "teacher"
    return None


def clip_via(clip: Clip, person: str, groups: Iterable[Group], trust: str | None) -> str | None:
    """How `person` may see the clip: "owner", a group id it is shared with that they are in,
    "library" (published, in their trust), or None."""
    if person == clip.owner:
        return "owner"
    shared = {s.group for s in clip.shares}
    for group in groups:
        if group.id in shared and group.has(person):
            return group.id
    if clip.published is not None and trust == clip.trust:
        return "library"
    return None


def check_may_see(clip: Clip, person: str, groups: Iterable[Group], trust: str | None) -> str:
    via = clip_via(clip, person, groups, trust)
    if via is None:
        raise NotFound(f"no clip {clip.id!r} that you may see")
    return via


def check_publishable(consent: str) -> None:
    if consent not in SHOWN:
        raise ConsentMissing(
            "the video's consent is not recorded: a clip is published only once everyone in "
            "it has consented (or none needed to)"
        )
