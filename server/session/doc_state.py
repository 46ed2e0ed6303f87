"""A room's shared document content as one worker holds it, kept two ways.

*Cold*, it is encoded bytes (`encoded`, plus the updates committed since in `tail`, folded in as
they come): a room being watched but not written to here costs a tenth of a replica's memory,
and other workers' entries are relayed without being applied to anything. *Hot*, after a write
here, there is also one pycrdt replica (`hot`) with a `ChangeWatch`: a client's update is
applied to it and judged (server/documents/rules.py); a refused one is rolled back by rebuilding
the replica from the bytes, which still hold exactly what was committed. A room nobody here
wrote to for `doc_hot_seconds` goes cold again (server/session/documents.py).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from pycrdt import Array, Doc, Map, Text, get_state, get_update, merge_updates

from server import yjs_wire
from server.clips.model import ClipNote
from server.documents.actions import Action, read_actions, write_action
from server.documents.lessons import NOTES_BOUND, Lesson, unbound_notes
from server.documents.rules import ChangeWatch, NoteFacts, declare_roots, judge, note_facts
from server.rooms.roles import Permission

log = logging.getLogger(__name__)

# What pycrdt raises for bytes that are not an update it can apply: ValueError when they do not
# decode, RuntimeError when they decode but do not fit (found by tests/test_fuzz.py). A Rust
# panic inside Yrs is turned into a ValueError by `untrusted`.
BAD_UPDATE = (ValueError, RuntimeError)
T = TypeVar("T")


def untrusted(call: Callable[[], T]) -> T:
    """Run a pycrdt call on bytes that came from outside (a client's, or the log's, which a
    damaged store could spoil). Some hostile updates make Yrs panic (an unwrap of
    None, found by tests/test_fuzz.py); pyo3 raises that as pyo3_runtime.PanicException, a
    BaseException its module does not let us import, so it is recognised by name and becomes
    a ValueError: the update is refused and the replica rebuilt, like any bad update."""
    try:
        return call()
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise ValueError(f"the CRDT library failed on it ({exc})") from None


EMPTY_UPDATE = Doc().get_update()
# A cold room's tail is folded into `encoded` past about this many updates, or this many bytes
# (or half the state's size): merging costs about the state's size, so folding in proportion
# keeps it cheap. A hot room serves from its replica and needs the tail only to roll back, so it
# folds 8x less often. Each fold point is drawn within +-25 %: rooms that started together would
# otherwise all fold in the same moment (bench.fanout saw 100 rooms stall the worker 100-250 ms).
FOLD_ENTRIES = 256
FOLD_BYTES = 64 * 1024
HOT_FOLD_FACTOR = 8


class DocState:
    def __init__(self, room: str) -> None:
        self.room = room
        self.encoded = EMPTY_UPDATE
        self.tail: list[bytes] = []
        self._tail_bytes = 0
        self._fold_scale = random.uniform(0.75, 1.25)
        self._state_vector: bytes | None = None  # of `encoded`, once asked for
        self.hot: Doc[Any] | None = None
        self.watch: ChangeWatch | None = None
        # Facts of notes as committed, learnt while hot: a later change to one is judged without
        # reading what it was from a second replica.
        self.facts: dict[str, NoteFacts | None] = {}
        self.written_here_at = 0.0  # monotonic time of the last write through this worker
        # Yjs clients that sent a refused change: they keep it, so their later changes would
        # leave a gap that Yjs clients hold back and pycrdt does not. Refusing those too keeps
        # every other client in agreement until that client starts a new document.
        self.tainted: set[int] = set()
        self.added: set[str] = set()  # notes the last accepted client update added

    def take_remote(self, update: bytes, entry_id: str) -> bool:
        """Another worker's entry: committed, and applied to the replica if hot. False for a
        damaged entry (it is skipped)."""
        if self.hot is not None and self.watch is not None:
            self.watch.reset()
            try:
                untrusted(partial(self.hot.apply_update, update))
            except BAD_UPDATE as exc:
                # Only judged updates reach the log, so this is a damaged entry: skip it rather
                # than stop applying everything after it.
                log.error("room %s: log entry %s does not apply: %s", self.room, entry_id, exc)
                self.rebuild()
                return False
            for note in self.watch.notes:
                self.facts.pop(note, None)  # learnt again from the replica when next needed
        self.commit(update)
        return True

    def commit(self, update: bytes) -> None:
        """`update` is now part of the room's committed state."""
        self.tail.append(update)
        self._tail_bytes += len(update)
        scale = self._fold_scale * (HOT_FOLD_FACTOR if self.hot is not None else 1)
        if len(self.tail) >= FOLD_ENTRIES * scale or self._tail_bytes >= scale * max(
            FOLD_BYTES, len(self.encoded) // 2
        ):
            self._fold()

    def _fold(self) -> None:
        # Always from the bytes, never from the replica: it may also hold structs a client sent
        # that wait for others (pending in Yrs), which nobody has judged yet.
        if not self.tail:
            return
        try:
            self.encoded = untrusted(partial(merge_updates, self.encoded, *self.tail))
        except BAD_UPDATE:
            self.encoded = self._merge_one_by_one()
        self.tail.clear()
        self._tail_bytes = 0
        self._state_vector = None
        self._fold_scale = random.uniform(0.75, 1.25)

    def _merge_one_by_one(self) -> bytes:
        state = self.encoded
        for update in self.tail:
            try:
                state = untrusted(partial(merge_updates, state, update))
            except BAD_UPDATE as exc:
                log.error("room %s: a stored update does not merge, skipped: %s", self.room, exc)
        return state

    def committed(self) -> bytes:
        """The room's whole committed state as one update (compaction, exports, re-seeding)."""
        self._fold()
        return self.encoded

    def state_vector(self) -> bytes:
        if self.hot is not None:
            return self.hot.get_state()
        self._fold()
        if self._state_vector is None:
            self._state_vector = get_state(self.encoded)
        return self._state_vector

    def replica(self) -> Doc[Any]:
        """A new replica of the committed state, its roots declared."""
        doc: Doc[Any] = Doc()
        declare_roots(doc)
        try:
            untrusted(partial(doc.apply_update, self.encoded))
        except BAD_UPDATE as exc:
            log.error("room %s: the stored state does not apply: %s", self.room, exc)
        for update in self.tail:
            try:
                untrusted(partial(doc.apply_update, update))
            except BAD_UPDATE as exc:
                log.error("room %s: a stored update does not apply, skipped: %s", self.room, exc)
        return doc

    def heat(self) -> Doc[Any]:
        if self.hot is None:
            self.rebuild()
        assert self.hot is not None
        return self.hot

    def rebuild(self, replica: Doc[Any] | None = None) -> None:
        """(Re)make the replica from the committed bytes: when the room gets hot, and to roll
        back an update we refused. The watch is attached after the state is in: its observers
        need not see it."""
        if self.watch is not None:
            self.watch.close()
        self.hot = self.replica() if replica is None else replica
        self.watch = ChangeWatch(self.hot)
        self.facts.clear()

    def cool(self) -> None:
        """Drop the replica, keeping the state as bytes (nobody wrote here for a while)."""
        if self.hot is None:
            return
        self._fold()
        if self.watch is not None:
            self.watch.close()
        self.hot = None
        self.watch = None
        self.facts.clear()

    def sync_step2_for(self, state_vector: bytes) -> bytes:
        if self.hot is not None:
            return yjs_wire.sync_step2(untrusted(partial(self.hot.get_update, state_vector)))
        return yjs_wire.sync_step2(untrusted(partial(get_update, self.committed(), state_vector)))

    def apply_client_update(
        self, update: bytes, user: str, permissions: frozenset[Permission]
    ) -> tuple[str | None, bool]:
        """Judge and apply one client's update: (why it was refused, whether it must be stored).
        `added` then holds the notes it added (see `bind_added`)."""
        try:
            if self.tainted and self._carries(update, self.tainted):
                return (
                    "this client's document holds a change the room refused: start a new"
                    " document (reload) to go on",
                    False,
                )
            if self.hot is None and self._nothing_new(update):
                return None, False  # a joiner's sync step 2, say: the room stays cold
        except BAD_UPDATE as exc:
            return f"not a Yjs update: {exc}", False
        self.written_here_at = time.monotonic()
        doc = self.heat()
        watch = self.watch
        assert watch is not None
        before = doc.get_state()
        watch.reset()
        try:
            untrusted(partial(doc.apply_update, update))
        except BAD_UPDATE as exc:
            self.rebuild()
            return f"not a Yjs update: {exc}", False
        touched = watch.plan_touched or watch.meta_keys or watch.notes or watch.action_keys
        if not touched and doc.get_state() == before:
            return None, False  # nothing new (a reconnecting client's echo): nothing to store
        writer = Permission.EDIT in permissions or Permission.ANNOTATE in permissions
        prior = _Prior(self)
        verdict = judge(watch, prior.facts_of, user, permissions, prior.author_of_action)
        problem = verdict.problem
        if problem is None and not writer:
            problem = "your role may read the document, not change it"
        if problem is not None:
            self._taint(update, before)
            self.rebuild(prior.replica)
            return problem, False
        self.facts.update(verdict.after)
        self.commit(update)
        self.added = watch.added  # a new set at each reset: safe to keep
        return None, True

    def bind_added(self, added: set[str]) -> bytes | None:
        """The `added` notes (`added` after an accepted update) that have no `video` get the
        room's lesson (`meta.video`, what was on screen): a server edit, stored and relayed
        like any update. Clients set it themselves; this covers one that does not (an older
        page, a script)."""
        watch = self.watch
        if not added or watch is None:
            return None
        # The room's video first: on the hot path (a room with no lesson) that is all it costs.
        video = watch.meta.get("video")
        if not isinstance(video, str) or not video:
            return None
        timeline = watch.timeline
        unbound = [
            note
            for note in added
            if isinstance(value := timeline.get(note), Map) and not value.get("video")
        ]
        return self.bind_notes({note: video for note in unbound}) if unbound else None

    def bind_notes(
        self, bound: dict[str, str], history: list[Lesson] | None = None
    ) -> bytes | None:
        """Give notes their lesson (`video`), and with `history` (a migration) record the
        room's lessons and that its notes are bound now (`meta.schema`)."""

        def bind(doc: Doc[Any]) -> None:
            timeline = doc.get("timeline", type=Map)
            for note, video in bound.items():
                value = timeline.get(note)
                if isinstance(value, Map) and not value.get("video"):
                    value["video"] = video
            if history is not None:
                lessons = doc.get("lessons", type=Map)
                for lesson in history:
                    if lesson.video not in lessons:
                        lessons[lesson.video] = lesson.entry()
                doc.get("meta", type=Map)["schema"] = NOTES_BOUND

        update = self._server_edit(bind)
        for note in bound:
            self.facts.pop(note, None)  # learnt again, with the video, when next needed
        return update

    def attach_lesson(self, lesson: Lesson) -> bytes | None:
        """The room shows `lesson` now (a live lesson's recording, or one an admin chose): it
        becomes `meta.video`, and one of the room's lessons if it was not already."""

        def attach(doc: Doc[Any]) -> None:
            meta = doc.get("meta", type=Map)
            if meta.get("video") != lesson.video:
                meta["video"] = lesson.video
            lessons = doc.get("lessons", type=Map)
            known = lessons.get(lesson.video)
            # Seeding may have listed it from the room record, which cannot tell a recording.
            if not isinstance(known, dict) or known.get("kind") != lesson.kind:
                lessons[lesson.video] = lesson.entry()

        return self._server_edit(attach)

    def _taint(self, update: bytes, before: bytes) -> None:
        # The clients whose changes were refused: the update's author, and any client whose
        # clock the refused update moved.
        assert self.hot is not None
        known = yjs_wire.decode_state_vector(before)
        grown = yjs_wire.decode_state_vector(self.hot.get_state())
        self.tainted |= {c for c, clock in grown.items() if clock > known.get(c, 0)}
        author = yjs_wire.first_client(update)
        if author is not None:
            self.tainted.add(author)

    def _nothing_new(self, update: bytes) -> bool:
        """Whether the committed state already holds all of `update`, read from the bytes."""
        return untrusted(partial(get_update, update, self.state_vector())) == EMPTY_UPDATE

    @staticmethod
    def _carries(update: bytes, clients: set[int]) -> bool:
        """Whether `update` holds structs of any of `clients`: removing what a client could
        ever have written changes it exactly then."""
        whole = untrusted(partial(get_update, update, yjs_wire.EMPTY_STATE))
        return any(
            untrusted(partial(get_update, update, yjs_wire.covering(c))) != whole for c in clients
        )

    def seed(
        self,
        title: str,
        framework: dict[str, Any] | None,
        video: Lesson | None = None,
    ) -> tuple[bytes | None, list[tuple[str, float]]]:
        """Fill in the room's details once, as map keys: concurrent seeding by two workers
        resolves to one value and never duplicates content. Also (notes, created) of the notes
        a room from before notes carried their lesson still has without one, to migrate."""
        unbound: list[tuple[str, float]] = []

        def fill(doc: Doc[Any]) -> None:
            meta = doc.get("meta", type=Map)
            if "title" not in meta:
                meta["title"] = title
            if framework is not None and "framework" not in meta:
                meta["framework"] = framework
            if video is not None:
                if "video" not in meta:
                    meta["video"] = video.video
                lessons = doc.get("lessons", type=Map)
                if not lessons and meta.get("video") == video.video:
                    lessons[video.video] = video.entry()
            if meta.get("schema") != NOTES_BOUND:
                unbound.extend(unbound_notes(doc.get("timeline", type=Map)))
                if not unbound:
                    meta["schema"] = NOTES_BOUND

        return self._server_edit(fill), unbound

    def set_meta(self, key: str, value: str) -> bytes | None:
        """A server-side edit of one `meta` key: an ordinary CRDT update, stored and relayed
        like a client's."""

        def change(doc: Doc[Any]) -> None:
            meta = doc.get("meta", type=Map)
            if meta.get(key) != value:
                meta[key] = value

        return self._server_edit(change)

    def carry_actions(self, actions: list[Action]) -> bytes | None:
        """A cycle's action steps from its last session, into this new one (server edit)."""

        def change(doc: Doc[Any]) -> None:
            held = doc.get("actions", type=Map)
            for action in actions:
                if action.id not in held:
                    write_action(held, action)

        return self._server_edit(change) if actions else None

    def carry_notes(self, notes: list[ClipNote], video: str) -> bytes | None:
        """A clip's carried notes, into a room of the clip (server edit), on its media."""

        def change(doc: Doc[Any]) -> None:
            timeline = doc.get("timeline", type=Map)
            for note in notes:
                if note.id not in timeline:
                    timeline[note.id] = clip_note_map(note, video)

        return self._server_edit(change) if notes else None

    def actions(self) -> list[Action]:
        doc = self.hot if self.hot is not None else self.replica()
        return read_actions(doc.get("actions", type=Map))

    def _server_edit(self, edit: Callable[[Doc[Any]], None]) -> bytes | None:
        """Make an edit on the replica and commit it; the update, or None if the edit changed
        nothing."""
        was_cold = self.hot is None
        doc = self.heat()
        updates: list[bytes] = []
        subscription = doc.observe(lambda event: updates.append(event.update))
        try:
            with doc.transaction():
                edit(doc)
        finally:
            doc.unobserve(subscription)
        if not updates or updates[0] == EMPTY_UPDATE:  # one transaction: at most one update
            if was_cold:
                self.cool()  # a room opened to be read need not hold a replica
            return None
        self.written_here_at = time.monotonic()
        self.commit(updates[0])
        return updates[0]

    def snapshot_doc(self) -> Doc[Any]:
        """A copy for readers (exports) that must not see later edits mid-read."""
        return self.replica()


class _Prior:
    """What touched notes were before the update being judged: the facts learnt while hot, else
    read from a replica of the committed bytes, made at most once per judgement (and, if the
    update is refused, kept as the rolled-back replica)."""

    def __init__(self, content: DocState) -> None:
        self.content = content
        self.replica: Doc[Any] | None = None

    def facts_of(self, note: str) -> NoteFacts | None:
        facts = self.content.facts
        if note in facts:
            return facts[note]
        if self.replica is None:
            self.replica = self.content.replica()
        found = note_facts(self.replica.get("timeline", type=Map), note)
        facts[note] = found
        return found

    def author_of_action(self, key: str) -> str | None:
        """An action's author before the update (None: it is new). Action steps change
        seldom: the committed replica is read each time."""
        if self.replica is None:
            self.replica = self.content.replica()
        value = self.replica.get("actions", type=Map).get(key)
        author = value.get("author") if isinstance(value, Map) else None
        return author if isinstance(author, str) else None


def clip_note_map(note: ClipNote, video: str) -> Map[Any]:
    """A carried note as the timeline holds one (docs/documents.md), on the clip's media."""
    fields: dict[str, Any] = {
        "start": note.start,
        "text": Text(note.text),
        "tags": Array(list(note.tags)),
        "author": note.author,
        "created": time.time(),
        "replies": Array([]),
        "video": video,
    }
    if note.end is not None and note.end > note.start:
        fields["end"] = note.end
    if note.author_name:
        fields["authorName"] = note.author_name
    return Map(fields)
