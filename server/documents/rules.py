"""Who may change what in a room's shared document, and what the document must stay.

An update is first applied to a *candidate* replica while a `ChangeWatch` records what it
touched; `judge` then says whether it may stand. Only then is it applied to the real replica,
stored and relayed. A refused update never reaches the store or another client.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pycrdt import Doc, Map, Subscription, Text

from server.documents.model import Annotation, read_annotation
from server.rooms.roles import Permission

ROOTS = frozenset({"plan", "timeline", "meta"})
MAX_PLAN_CHARS = 200_000
MAX_NOTES = 5_000
MAX_NOTE_CHARS = 10_000
META_STRINGS = {"title": 200, "video": 200}


def declare_roots(doc: Doc[Any]) -> tuple[Text, Map[Any], Map[Any]]:
    """Give the roots their types before any update arrives, as every client does."""
    return (
        doc.get("plan", type=Text),
        doc.get("timeline", type=Map),
        doc.get("meta", type=Map),
    )


class ChangeWatch:
    """Records which parts of a candidate document one update touched."""

    def __init__(self, doc: Doc[Any]) -> None:
        self.doc = doc
        self.plan, self.timeline, self.meta = declare_roots(doc)
        # Kept from the events: in Yrs a map's length walks every key it ever had, deleted
        # ones too, so asking on each update would cost the whole history each time.
        self.note_count = len(self.timeline)
        self._subscriptions: list[Subscription] = [
            self.plan.observe(lambda _event: self._touch_plan()),
            self.timeline.observe_deep(self._on_timeline),
            self.meta.observe_deep(self._on_meta),
        ]
        self.reset()

    def reset(self) -> None:
        self.plan_touched = False
        self.meta_keys: set[str] = set()
        self.notes: set[str] = set()  # notes added, changed or deleted
        self.note_fields: dict[str, set[str]] = {}  # note -> its top-level fields changed

    def _touch_plan(self) -> None:
        self.plan_touched = True

    def _on_timeline(self, events: Iterable[Any]) -> None:
        for event in events:
            path = list(event.path)
            if not path:
                for key, change in event.keys.items():
                    self.notes.add(str(key))
                    action = change.get("action")
                    self.note_count += 1 if action == "add" else -1 if action == "delete" else 0
                continue
            note = str(path[0])
            self.notes.add(note)
            fields = self.note_fields.setdefault(note, set())
            if len(path) == 1:
                fields.update(str(key) for key in getattr(event, "keys", {}) or {})
            else:
                fields.add(str(path[1]))

    def _on_meta(self, events: Iterable[Any]) -> None:
        for event in events:
            path = list(event.path)
            if path:
                self.meta_keys.add(str(path[0]))
            else:
                self.meta_keys.update(str(key) for key in event.keys)


def judge(
    watch: ChangeWatch, before: Map[Any], user: str, permissions: frozenset[Permission]
) -> str | None:
    """Why the update just applied to `watch.doc` may not stand, or None if it may.

    `before` is the committed replica's timeline (the state before the update)."""
    unknown = set(watch.doc.keys()) - ROOTS
    if unknown:
        return f"unknown shared type {sorted(unknown)[0]!r}: the document has plan, timeline, meta"
    if watch.plan_touched:
        if Permission.EDIT not in permissions:
            return "your role may not edit the plan"
        if len(watch.plan) > MAX_PLAN_CHARS:
            return f"the plan would be over {MAX_PLAN_CHARS} characters"
    if watch.meta_keys:
        if Permission.EDIT not in permissions:
            return "your role may not change the room's details"
        problem = _meta_problem(watch.meta, watch.meta_keys)
        if problem:
            return problem
    if watch.notes:
        if Permission.ANNOTATE not in permissions:
            return "your role may not annotate the timeline"
        if watch.note_count > MAX_NOTES:
            return f"the timeline would have over {MAX_NOTES} notes"
        for note in sorted(watch.notes):
            problem = _note_problem(watch, before, note, user)
            if problem:
                return f"timeline note {note[:40]!r}: {problem}"
    return None


def _note_problem(watch: ChangeWatch, before: Map[Any], note: str, user: str) -> str | None:
    if note not in watch.timeline:
        # A deletion needs only the author, not the whole note read back.
        author = _author(before, note)
        if author is not None and author != user:
            return "only its author may delete a note"
        return None
    old = _annotation(before, note)
    now = read_annotation(note, watch.timeline[note])
    if isinstance(now, str):
        return now
    if len(now.text) > MAX_NOTE_CHARS or any(len(r.text) > MAX_NOTE_CHARS for r in now.replies):
        return f"note text is over {MAX_NOTE_CHARS} characters"
    if old is None:
        if now.author != user:
            return "a new note's author must be you"
        return None
    if now.author != old.author:
        return "a note's author cannot change"
    changed = watch.note_fields.get(note, set())
    if old.author != user and changed - {"replies"}:
        return "only its author may change a note; reply to it instead"
    if any(r.author != user for r in now.replies[len(old.replies) :]):
        return "a new reply's author must be you"
    if len(now.replies) < len(old.replies) or any(
        a != b and a.author != user for a, b in zip(old.replies, now.replies, strict=False)
    ):
        return "only its author may change or remove a reply"
    return None


def _author(timeline: Map[Any], note: str) -> str | None:
    if note not in timeline:
        return None
    value = timeline[note]
    author = value.get("author") if isinstance(value, Map | dict) else None
    return author if isinstance(author, str) else None


def _annotation(timeline: Map[Any], note: str) -> Annotation | None:
    if note not in timeline:
        return None
    found = read_annotation(note, timeline[note])
    return found if isinstance(found, Annotation) else None


def _meta_problem(meta: Map[Any], keys: set[str]) -> str | None:
    for key in sorted(keys):
        if key not in meta:
            continue
        value = meta[key]
        limit = META_STRINGS.get(key)
        if limit is not None and not (
            value is None or (isinstance(value, str) and len(value) <= limit)
        ):
            return f"meta.{key} must be text of at most {limit} characters"
        if key == "framework" and not (value is None or isinstance(value, dict | Map)):
            return "meta.framework must be a map"
    return None
