"""Who may change what in a room's shared document, and what the document must stay.

An update is applied to the room's replica while a `ChangeWatch` records what it touched; `judge`
then says whether it may stand, reading what the touched notes were before through a `Before`
lookup (server/session/doc_state.py keeps those facts, so a judged add needs no second replica).
A refused update is rolled back and never reaches the store or another client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pycrdt import Doc, Map, Text

from server.documents.actions import MAX_ACTIONS, read_action
from server.documents.model import Annotation, read_annotation
from server.rooms.roles import Permission

ROOTS = frozenset({"plan", "timeline", "meta", "lessons", "actions"})
SERVER_META = frozenset({"schema"})  # meta keys only the server writes
MAX_PLAN_CHARS = 200_000
MAX_NOTES = 5_000
MAX_NOTE_CHARS = 10_000
META_STRINGS = {"title": 200, "video": 200}


class NoteFacts(NamedTuple):
    """What the judge needs of a note as the room holds it: its author as written (even in an
    entry that breaks the model), and the note if it is valid."""

    author: str | None
    annotation: Annotation | None


# A note's facts before the update being judged, or None when the room had no such note.
Before = Callable[[str], NoteFacts | None]


@dataclass
class Verdict:
    problem: str | None
    # The touched notes as they are now (None: deleted): facts the next judgement may use.
    after: dict[str, NoteFacts | None] = field(default_factory=dict)


def declare_roots(doc: Doc[Any]) -> tuple[Text, Map[Any], Map[Any]]:
    """Give the roots their types before any update arrives, as every client does: the plan,
    timeline and meta it returns, `lessons` (server/documents/lessons.py) and `actions`
    (server/documents/actions.py)."""
    doc.get("lessons", type=Map)
    doc.get("actions", type=Map)
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
        self.lessons: Map[Any] = doc.get("lessons", type=Map)
        self.actions: Map[Any] = doc.get("actions", type=Map)
        # Kept from the events: in Yrs a map's length walks every key it ever had, deleted
        # ones too, so asking on each update would cost the whole history each time.
        self.note_count = len(self.timeline)
        # On the Yrs types themselves, not through pycrdt's wrappers: those turn every event's
        # every attribute into Python objects first, which was most of the cost of judging.
        # Here an event's `path` and `keys` are read only when needed.
        self._subscriptions: list[Any] = [
            self.plan.integrated.observe(lambda _event: self._touch_plan()),
            self.timeline.integrated.observe_deep(self._on_timeline),
            self.meta.integrated.observe_deep(self._on_meta),
            self.lessons.integrated.observe_deep(lambda _events: self._touch_lessons()),
            self.actions.integrated.observe_deep(self._on_actions),
        ]
        self.reset()

    def close(self) -> None:
        """Detach from the document. Needed before dropping it: the Yrs document holds our
        callbacks, which hold the document, a cycle Python's collector cannot see, so without
        this every dropped replica (1.7 MiB for 500 notes) would stay in memory for good."""
        for subscription in self._subscriptions:
            subscription.drop()
        self._subscriptions.clear()

    def reset(self) -> None:
        self.plan_touched = False
        self.lessons_touched = False
        self.meta_keys: set[str] = set()
        self.notes: set[str] = set()  # notes added, changed or deleted
        self.added: set[str] = set()  # notes whose key the timeline did not have before
        self.note_fields: dict[str, set[str]] = {}  # note -> its top-level fields changed
        self.action_keys: set[str] = set()  # actions added, changed or deleted

    def _touch_plan(self) -> None:
        self.plan_touched = True

    def _touch_lessons(self) -> None:
        self.lessons_touched = True

    def _on_timeline(self, events: Iterable[Any]) -> None:
        for event in events:
            path = list(event.path)
            if not path:
                for key, change in event.keys.items():
                    self.notes.add(str(key))
                    action = change.get("action")
                    if action == "add":
                        self.added.add(str(key))
                    self.note_count += 1 if action == "add" else -1 if action == "delete" else 0
                continue
            note = str(path[0])
            self.notes.add(note)
            fields = self.note_fields.setdefault(note, set())
            if len(path) == 1:
                if type(event).__name__ == "MapEvent":  # a note that is a map, as it should be
                    fields.update(str(key) for key in event.keys)
            else:
                fields.add(str(path[1]))

    def _on_actions(self, events: Iterable[Any]) -> None:
        for event in events:
            path = list(event.path)
            if path:
                self.action_keys.add(str(path[0]))
            elif type(event).__name__ == "MapEvent":
                self.action_keys.update(str(key) for key in event.keys)

    def _on_meta(self, events: Iterable[Any]) -> None:
        for event in events:
            path = list(event.path)
            if path:
                self.meta_keys.add(str(path[0]))
            elif type(event).__name__ == "MapEvent":
                self.meta_keys.update(str(key) for key in event.keys)


def judge(
    watch: ChangeWatch,
    before: Before,
    user: str,
    permissions: frozenset[Permission],
    before_actions: Callable[[str], str | None] = lambda _key: None,
) -> Verdict:
    """Whether the update just applied to `watch.doc` may stand (`problem` None) or why not.

    `before` gives a touched note's facts as they were before the update; `before_actions`
    an action's author before it (None: a new action)."""
    verdict = Verdict(None)
    unknown = set(watch.doc.keys()) - ROOTS
    if unknown:
        verdict.problem = (
            f"unknown shared type {sorted(unknown)[0]!r}: the document has plan, timeline,"
            " meta, lessons, actions"
        )
        return verdict
    if watch.lessons_touched:
        verdict.problem = "the room's lessons are kept by the server"
        return verdict
    if watch.plan_touched:
        if Permission.EDIT not in permissions:
            verdict.problem = "your role may not edit the plan"
            return verdict
        if len(watch.plan) > MAX_PLAN_CHARS:
            verdict.problem = f"the plan would be over {MAX_PLAN_CHARS} characters"
            return verdict
    if watch.meta_keys:
        if Permission.EDIT not in permissions:
            verdict.problem = "your role may not change the room's details"
            return verdict
        verdict.problem = _meta_problem(watch.meta, watch.meta_keys)
        if verdict.problem:
            return verdict
    if watch.action_keys:
        verdict.problem = _actions_problem(watch, before_actions, user, permissions)
        if verdict.problem:
            return verdict
    if watch.notes:
        if Permission.ANNOTATE not in permissions:
            verdict.problem = "your role may not annotate the timeline"
            return verdict
        if watch.note_count > MAX_NOTES:
            verdict.problem = f"the timeline would have over {MAX_NOTES} notes"
            return verdict
        for note in sorted(watch.notes):
            old = None if note in watch.added else before(note)
            problem = _note_problem(watch, old, note, user, verdict.after)
            if problem:
                verdict.problem = f"timeline note {note[:40]!r}: {problem}"
                return verdict
    return verdict


def _actions_problem(
    watch: ChangeWatch,
    author_before: Callable[[str], str | None],
    user: str,
    permissions: frozenset[Permission],
) -> str | None:
    """Coach and teacher (`edit`) write the action steps; an action keeps its author."""
    if Permission.EDIT not in permissions:
        return "your role may not change the action steps"
    if len(watch.actions) > MAX_ACTIONS:
        return f"there would be over {MAX_ACTIONS} action steps"
    for key in sorted(watch.action_keys):
        if key not in watch.actions:
            continue  # deleted: either of them may
        now = read_action(key, watch.actions[key])
        if isinstance(now, str):
            return f"action {key[:40]!r}: {now}"
        was = author_before(key)
        if was is None and now.author != user:
            return f"action {key[:40]!r}: a new action's author must be you"
        if was is not None and now.author != was:
            return f"action {key[:40]!r}: its author cannot change"
    return None


def _note_problem(
    watch: ChangeWatch,
    was: NoteFacts | None,
    note: str,
    user: str,
    after: dict[str, NoteFacts | None],
) -> str | None:
    if note not in watch.timeline:
        after[note] = None
        if was is not None and was.author is not None and was.author != user:
            return "only its author may delete a note"
        return None
    now = read_annotation(note, watch.timeline[note])
    if isinstance(now, str):
        return now
    after[note] = NoteFacts(now.author, now)
    if len(now.text) > MAX_NOTE_CHARS or any(len(r.text) > MAX_NOTE_CHARS for r in now.replies):
        return f"note text is over {MAX_NOTE_CHARS} characters"
    old = None if was is None else was.annotation
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


def note_facts(timeline: Map[Any], note: str) -> NoteFacts | None:
    """A note's facts read from a replica's timeline (None when it has no such note)."""
    if note not in timeline:
        return None
    value = timeline[note]
    author = value.get("author") if isinstance(value, Map | dict) else None
    found = read_annotation(note, value)
    return NoteFacts(
        author if isinstance(author, str) else None,
        found if isinstance(found, Annotation) else None,
    )


def _meta_problem(meta: Map[Any], keys: set[str]) -> str | None:
    if keys & SERVER_META:
        return f"meta.{sorted(keys & SERVER_META)[0]} is kept by the server"
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
