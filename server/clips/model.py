"""Clips, Film Club groups and the trust library's entries: typed records kept in the store
(docs/groups.md)."""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

import msgspec

GroupKind = Literal["film_club", "hotspot"]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=2_000)]
Summary = Annotated[str, msgspec.Meta(max_length=2_000)]
GroupName = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]


class ClipNote(msgspec.Struct, frozen=True):
    """A timeline note carried along with a clip: its author kept, its times re-based to the
    clip's own (0 is the clip's first frame)."""

    id: str
    start: float
    end: float | None
    text: str
    tags: tuple[str, ...]
    author: str
    author_name: str | None = None


class Published(msgspec.Struct, frozen=True):
    summary: str
    at: float
    by: str


class Share(msgspec.Struct, frozen=True):
    """The clip is a group's: `room` is the group's discussion of it."""

    group: str
    room: str
    created: float
    by: str


class Clip(msgspec.Struct, frozen=True):
    id: str
    video: str  # the lesson it was cut from
    media: str  # its own video: the range, cut once
    owner: str  # the video's owner (a person id, or "admin")
    org: str | None
    trust: str
    title: str
    start: float
    end: float
    created: float
    description: str = ""
    framework: str | None = None  # the framework of the session its notes came from
    notes: tuple[ClipNote, ...] = ()
    shares: tuple[Share, ...] = ()
    published: Published | None = None
    room: str | None = None  # its owner's own viewing room, made when first watched

    @property
    def duration(self) -> float:
        return round(self.end - self.start, 3)


class Group(msgspec.Struct, frozen=True):
    id: str
    name: str
    kind: GroupKind
    trust: str
    created: float
    created_by: str
    members: tuple[str, ...]  # person ids, facilitators included
    facilitators: tuple[str, ...]

    def has(self, person: str) -> bool:
        return person in self.members


class Viewing(msgspec.Struct, frozen=True):
    """A person's own room for watching a clip (its owner's, or one found in the library)."""

    clip: str
    person: str
    room: str


def new_clip_id() -> str:
    return "k-" + secrets.token_hex(8)


def new_group_id() -> str:
    return "g-" + secrets.token_hex(8)
