"""Who may do what: the one table of role permissions, enforced server side."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Role(StrEnum):
    COACH = "coach"
    TEACHER = "teacher"
    OBSERVER = "observer"
    CAMERA = "camera"


class Permission(StrEnum):
    VIEW = "view"  # watch the lesson, read the plan and timeline
    CONTROL_PLAYBACK = "control_playback"  # play, pause, seek, rate, step
    EDIT = "edit"  # write the shared plan
    ANNOTATE = "annotate"  # add and change timeline notes
    PUBLISH = "publish"  # publish a live lesson (WHIP)
    TALKBACK = "talkback"  # speak into the teacher's earpiece
    HEAR_TALKBACK = "hear_talkback"  # be the earpiece: receive the talk-back audio
    SHARE = "share"  # choose which schools of the trust the room is shared with
    SPEAK = "speak"  # talk in the room's conversation (POST /rooms/{room}/voice)
    ALLOW_SPEAK = "allow_speak"  # let an observer speak, or stop them, live in the room


ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.COACH: frozenset(
        {
            Permission.VIEW,
            Permission.CONTROL_PLAYBACK,
            Permission.EDIT,
            Permission.ANNOTATE,
            Permission.TALKBACK,
            Permission.SPEAK,
            Permission.ALLOW_SPEAK,
        }
    ),
    Role.TEACHER: frozenset(
        {
            Permission.VIEW,
            Permission.CONTROL_PLAYBACK,
            Permission.EDIT,
            Permission.ANNOTATE,
            Permission.PUBLISH,
            Permission.HEAR_TALKBACK,
            # DOMAIN.md: the teacher controls sharing; the video is theirs.
            Permission.SHARE,
            Permission.SPEAK,
        }
    ),
    Role.OBSERVER: frozenset({Permission.VIEW}),
    # A classroom device publishes; it has no screen to watch or a keyboard to annotate with.
    # The classroom device may carry the teacher's earpiece.
    Role.CAMERA: frozenset({Permission.PUBLISH, Permission.HEAR_TALKBACK}),
}


def permissions_for(role: Role, grants: Mapping[str, bool] | None = None) -> frozenset[Permission]:
    """The role's defaults, widened or narrowed by a token's `grants` ({"talkback": true, ...}).

    Unknown grant names are ignored rather than refused: a portal minting tokens for a newer
    server must not lock users out of an older one.
    """
    allowed = set(ROLE_PERMISSIONS[role])
    for name, granted in (grants or {}).items():
        try:
            permission = Permission(name)
        except ValueError:
            continue
        if granted:
            allowed.add(permission)
        else:
            allowed.discard(permission)
    return frozenset(allowed)
