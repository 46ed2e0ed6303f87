"""The lessons of a room, and which lesson each note belongs to.

A room can hold several lessons over time: the video it was created with, the recording of a
live lesson, another lesson attached later. The document's `lessons` root (a map, kept by the
server: video id -> `{"added": server time, "kind": "upload" | "recording"}`) lists them, and
every note carries the `video` it was made on, so a note never moves to another lesson when the
room's video changes. Pure: no I/O, table-tested in tests/test_lessons.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pycrdt import Map

LessonKind = Literal["upload", "recording"]
LESSON_KINDS: tuple[LessonKind, ...] = ("upload", "recording")
# meta.schema: 2 means every note carries its `video` (rooms from before are migrated once).
NOTES_BOUND = 2


@dataclass(frozen=True, slots=True)
class Lesson:
    video: str
    added: float  # server time the room started showing it
    kind: LessonKind = "upload"

    def entry(self) -> dict[str, Any]:
        return {"added": self.added, "kind": self.kind}


def read_lessons(lessons: Map[Any]) -> list[Lesson]:
    """The room's lessons, oldest first; entries that do not read as one are left out."""
    found = []
    for video, value in lessons.items():
        if not isinstance(value, dict | Map):
            continue
        added, kind = value.get("added"), value.get("kind", "upload")
        if isinstance(added, int | float) and not isinstance(added, bool) and kind in LESSON_KINDS:
            found.append(Lesson(str(video), float(added), kind))
    return sorted(found, key=lambda lesson: (lesson.added, lesson.video))


def lesson_at(history: list[Lesson], moment: float) -> str | None:
    """The lesson the room showed at `moment`: the last added at or before it, else (a note
    older than every record of a lesson) the first."""
    ordered = sorted(history, key=lambda lesson: (lesson.added, lesson.video))
    if not ordered:
        return None
    shown = ordered[0].video
    for lesson in ordered:
        if lesson.added <= moment:
            shown = lesson.video
    return shown


def unbound_notes(timeline: Map[Any]) -> list[tuple[str, float]]:
    """(note, created) of every note without a `video` that could be given one (a map)."""
    found = []
    for key, value in timeline.items():
        if isinstance(value, Map) and not value.get("video"):
            created = value.get("created")
            moment = float(created) if isinstance(created, int | float) else 0.0
            found.append((str(key), moment))
    return found


def bindings(notes: Iterable[tuple[str, float]], history: list[Lesson]) -> dict[str, str]:
    """Which lesson each unbound note goes to; notes of a room that never had one stay."""
    bound = {}
    for note, created in notes:
        video = lesson_at(history, created)
        if video is not None:
            bound[note] = video
    return bound
