"""What a cycle's people read of it: its action steps, the notes of its lessons, its progress,
and the whole cycle as its page (`/c/{cycle}`) and its report show it (docs/cycles.md).

A lesson whose video was deleted is gone from all of it: from the progress, the lessons shown
and the evidence.
"""

from __future__ import annotations

from typing import Any

import msgspec

from server.cycles.model import Cycle, Score
from server.cycles.progress import LessonTags, progress
from server.documents.actions import Action
from server.documents.model import Annotation
from server.session.worker import Worker

# The text of a note as the cycle's page lists it: enough to recognise the moment.
NOTE_PREVIEW_CHARS = 280

Notes = dict[str, list[tuple[str, tuple[str, ...]]]]


async def current_actions(worker: Worker, cycle: Cycle) -> list[Action]:
    """The action steps: those of the cycle's latest session (each session carries the ones
    before it, and a step deleted there is gone), each in its newest version, which may have
    been written in an earlier session after the next one began."""
    if not cycle.sessions:
        return []
    last = await worker.room_record(cycle.sessions[-1].room)
    newest = {a.id: a for a in await worker.documents.actions(last)}
    for session in cycle.sessions[:-1]:
        record = await worker.room_record(session.room)
        for action in await worker.documents.actions(record):
            known = newest.get(action.id)
            if known is not None and action.updated > known.updated:
                newest[action.id] = action
    return sorted(newest.values(), key=lambda a: (a.created, a.id))


async def cycle_notes(worker: Worker, cycle: Cycle) -> Notes:
    """Each lesson's notes as (note id, tags), from every session of the cycle."""
    found: Notes = {}
    for session in cycle.sessions:
        for video, notes in (await worker.documents.notes_by_lesson(session.room)).items():
            if video in cycle.lessons:
                found.setdefault(video, []).extend(notes)
    return found


async def live_lessons(worker: Worker, cycle: Cycle) -> dict[str, Any]:
    """The cycle's lessons whose video still exists, in order: video id -> its record."""
    found = {}
    for video in cycle.lessons:
        record = await worker.videos.get(video)
        if record is not None:
            found[video] = record
    return found


async def cycle_progress(worker: Worker, cycle: Cycle) -> dict[str, object]:
    lessons = await live_lessons(worker, cycle)
    scores = [s for s in await worker.cycles.scores(cycle.id) if s.video in lessons]
    return await _progress(worker, cycle, lessons, scores, await current_actions(worker, cycle))


async def _progress(
    worker: Worker,
    cycle: Cycle,
    lessons: dict[str, Any],
    scores: list[Score],
    steps: list[Action],
) -> dict[str, object]:
    """The progress of what the caller has already read (lessons, scores, steps)."""
    framework = worker.frameworks.get(cycle.framework)
    notes = await cycle_notes(worker, cycle)
    rows = []
    for video, record in lessons.items():
        counts: dict[str, int] = {}
        for _, tags in notes.get(video, []):
            for tag in tags:
                counts[tag] = counts.get(tag, 0) + 1
        rows.append(LessonTags(video, record.duration, counts))
    return progress(framework, rows, scores, [a.status for a in steps])


def note_json(room: str, note: Annotation) -> dict[str, object]:
    text = note.text
    if len(text) > NOTE_PREVIEW_CHARS:
        text = text[: NOTE_PREVIEW_CHARS - 1] + "…"
    return {
        "id": note.id,
        "room": room,
        "video": note.video,
        "start": note.start,
        "end": note.end,
        "text": text,
        "tags": list(note.tags),
        "author_name": note.author_name,
    }


async def lesson_notes(
    worker: Worker, cycle: Cycle, video: str | None = None
) -> list[dict[str, object]]:
    """The notes on the cycle's (undeleted) lessons, or on one of them, in lesson order, each
    with the session room it was written in (so a click opens that session at its moment)."""
    lessons = await live_lessons(worker, cycle)
    found: list[dict[str, object]] = []
    for session in cycle.sessions:
        found.extend(
            note_json(session.room, note)
            for note in await worker.documents.notes(session.room)
            if note.video in lessons and (video is None or note.video == video)
        )
    return sorted(found, key=lambda n: (str(n["video"]), float(str(n["start"]))))


async def whole(worker: Worker, cycle: Cycle) -> dict[str, object]:
    """The cycle with everything its page shows: its people by name, its lessons, the action
    steps, the scores, the notes they cite as evidence, its framework's tags and rubric, and
    its progress."""
    framework = worker.frameworks.get(cycle.framework)
    lessons = await live_lessons(worker, cycle)
    steps = await current_actions(worker, cycle)
    scores = [s for s in await worker.cycles.scores(cycle.id) if s.video in lessons]
    cited = {n for a in steps for n in a.evidence} | {n for s in scores for n in s.evidence}
    evidence = {}
    if cited:
        for note in await lesson_notes(worker, cycle):
            if note["id"] in cited:
                evidence[str(note["id"])] = note
    names = {}
    for person_id in (*cycle.people, *cycle.shared_with):
        person = await worker.people.get(person_id)
        names[person_id] = person.name if person is not None else person_id
    return {
        **msgspec.to_builtins(cycle),
        "names": names,
        "lesson_info": {
            video: {"title": record.title, "duration_s": record.duration}
            for video, record in lessons.items()
        },
        "actions": [msgspec.to_builtins(a) for a in steps],
        "scores": [msgspec.to_builtins(s) for s in scores],
        "evidence": evidence,
        "framework_info": {
            "id": framework.id,
            "name": framework.name,
            "tags": [msgspec.to_builtins(t) for t in framework.tags],
            "ratios": [msgspec.to_builtins(r) for r in framework.ratios],
            "rubric": msgspec.to_builtins(framework.rubric) if framework.rubric else None,
        },
        "progress": await _progress(worker, cycle, lessons, scores, steps),
    }
